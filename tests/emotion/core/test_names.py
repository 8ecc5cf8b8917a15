"""The catalog of names agrees with the modules that build each model and feature set, and checks names."""

from __future__ import annotations

import pytest

from emotion.core import names
from emotion.core.errors import UsageError


def test_names_agree_with_what_builds_them():
    from emotion.audio.opensmile import OPENSMILE_SETS
    from emotion.models.catalog import MODELS
    from emotion.models.frame_nets import NN_MODELS

    assert tuple(MODELS) == names.AUDIO_MODELS
    assert tuple(NN_MODELS) == names.VIDEO_MODELS
    assert tuple(OPENSMILE_SETS) == names.OPENSMILE_SETS
    for name, spec in MODELS.items():
        assert spec.feature_sets == names.MODEL_FEATURE_SETS.get(name, ())


def test_split_and_parse_models():
    assert names.split_models(("lr", "cnn", "fusion-late", "svc")) == (("lr", "svc"), ("cnn",), ("fusion-late",))
    assert names.parse_models(["lr,svc", "lr", " cnn "], "rf") == ("lr", "svc", "cnn")
    assert names.parse_models(None, "rf,xgb") == ("rf", "xgb")
    with pytest.raises(UsageError, match="unknown model 'knn'"):
        names.parse_models(["knn"], "rf")


@pytest.mark.parametrize("values", [[","], [""], [" , ,"], [",", ""]])
def test_a_model_option_that_names_no_model_is_refused(values):
    with pytest.raises(UsageError, match=r"^--model '.*' names no model; choose from rf, svc, lr, "):
        names.parse_models(values, "rf")


def test_defaults_follow_the_feature_set():
    assert names.default_models("seed") == names.DEFAULT_MODELS
    assert names.default_models("extended") == ("lr",)
    assert names.default_models("logmel") == ("melcnn",)
    names.check_features("melcnn", "logmel")
    with pytest.raises(UsageError, match="add --features logmel") as err:
        names.check_features("melcnn", "seed")
    assert str(err.value) == "model 'melcnn' reads the logmel feature set, not 'seed'; add --features logmel"
    # a served run (train-audio, evaluate-loso, the pipeline): their parameter features
    assert err.value.served_message() == "model 'melcnn' reads the logmel feature set, not 'seed'; set features to logmel"


def test_the_catalog_imports_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys, emotion.core.names; heavy = [m for m in ('numpy', 'sklearn', 'librosa', 'tensorflow', 'cv2', "
            "'pandas', 'pyarrow', 'prefect') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_the_command_that_writes_a_stored_set():
    cmd = names.extract_command
    assert cmd("features/audio", "extended-0123abcd", "/s", "/d") == \
        "emotion extract /d --out /s --modality audio --features extended"
    assert cmd("features/audio", "extended-0123abcd", recorded={"params": {"speeds": [0.9, 1.1]}}) == \
        "emotion extract DATA --out OUT --modality audio --features extended --augment"
    assert cmd("features/audio", "extended-0123abcd", recorded={"params": {"speeds": [0.8, 1.25]}}).endswith(
        "--features extended --augment 0.8,1.25")
    assert cmd("features/video", "landmarks-0123abcd", recorded={"frames": "face128-every10-4567cdef"}) == \
        "emotion extract DATA --out OUT --modality video --features landmarks --frame-size 128 --every 10"
    assert cmd("frames", "face96-every5-0123abcd", "s3://b/s") == \
        "emotion extract DATA --out s3://b/s --modality video --face-crop --frame-size 96 --every 5"
    # the haar detector's records have no "detector" (as the first release's), the mesh's do
    assert cmd("frames", "face256-every20-0123abcd", recorded={"params": {"every": 20}}) == \
        "emotion extract DATA --out OUT --modality video --face-crop --face-detector haar"
    assert cmd("frames", "face256-every20-0123abcd", recorded={"params": {"detector": "mesh"}}) == \
        "emotion extract DATA --out OUT --modality video --face-crop"
    assert cmd("frames", "full256-every20-0123abcd") == "emotion extract DATA --out OUT --modality video"
    assert cmd("frames", "full256-every20-0123abcd", "/my store", "/my data") == \
        "emotion extract '/my data' --out '/my store' --modality video"  # a command to paste as it is


def test_the_extraction_that_writes_a_stored_set_as_a_served_run_does_it():
    advice = names.extract_advice("features/audio", "extended-0123abcd", "/s", "/d",
                                  recorded={"params": {"speeds": [0.9, 1.1]}})
    assert advice.cli == "run `emotion extract /d --out /s --modality audio --features extended --augment` first"
    assert advice.served == ("run the extract flow with data=/d, out=/s, modality=audio, features=extended, "
                             "augment=[0.9, 1.1] first")
    frames = names.extract_advice("frames", "face96-every5-0123abcd", "s3://b/s", recorded={"params": {"every": 5}})
    assert frames.cli == ("run `emotion extract DATA --out s3://b/s --modality video --face-crop --face-detector haar "
                          "--frame-size 96 --every 5` first")
    assert frames.served == ("run the extract flow with data=DATA, out=s3://b/s, modality=video, frames.face_crop=true, "
                             "frames.detector=haar, frames.size=96, frames.every=5 first")
    verify = names.extract_run("features/audio", "seed-0123abcd", "/s", "/d", verify=True)
    assert (verify.cli, verify.served) == ("`emotion extract /d --out /s --modality audio --features seed --verify`",
                                           "the extract flow with data=/d, out=/s, modality=audio, features=seed, "
                                           "verify=true")
