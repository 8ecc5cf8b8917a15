"""Video models end to end: frames in the store -> frame CNN and FER transfer -> per-clip evaluation."""

from __future__ import annotations

import json
import posixpath
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emotion.core.errors import ModelIntegrityError
from emotion.models.persist import load_run
from emotion.store.store import Store
from emotion.video.frames import FrameParams
from flows.cli import main

pytestmark = pytest.mark.slow

SPLIT = "train=1-2,test=21"
SPLIT_ID = "train01-02_test21"


@pytest.fixture(scope="module")
def video_run(tiny_video_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("videorun") / "store"
    argv = ["run", str(tiny_video_corpus), "--out", str(out), "--modality", "video", "--split", SPLIT,
            "--epochs", "3", "--workers", "2", "--json"]
    return out, argv


def test_run_video_trains_both_models_and_evaluates_per_clip(video_run, capsys):
    out, argv = video_run
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    # one frame set: the aligned face crops, for the CNN and the transfer model alike
    sets = {k: v["feature_set"] for k, v in r["extract"]["modalities"].items()}
    assert sets == {"video": FrameParams(face_crop=True).key}
    assert all(m["processed"] == 180 for m in r["extract"]["modalities"].values())
    models = {m["model"]: m for m in r["train"]["models"]}
    assert set(models) == {"cnn", "fer"}
    store = Store(str(out))
    for m in models.values():
        # actor 21's 30 recordings, each once: its video-only clips (02) are its audio-video clips (01) without sound
        assert m["modality"] == "video" and m["n_test"] == 30 and not m["reused"]
        folder = m["run_dir"]
        files = set(store.fs.ls(folder, detail=False))
        names = {posixpath.basename(f) for f in files}
        assert {"metrics.json", "params.json", "run.json", "model.keras", "confusion_matrix.png", "curves.png",
                "predictions.parquet", "frame_predictions.parquet", "history.json"} <= names
        metrics = store.read_json(posixpath.join(folder, "metrics.json"))
        for key in ("accuracy", "macro_f1", "uar", "per_class", "confusion_matrix", "labels", "n_train", "n_test",
                    "train_actors", "test_actors", "cv_accuracy", "model"):
            assert key in metrics, key
        assert metrics["modality"] == "video" and metrics["test_actors"] == [21]
        assert metrics["features"].startswith("face")
        clips = pd.read_parquet(posixpath.join(folder, "predictions.parquet"))
        assert len(clips) == 30 and clips["path"].is_unique and clips["path"].str.contains("/01-").all()
        p = clips[[c for c in clips if c.startswith("p_")]].to_numpy()
        assert p.shape[1] == 8 and abs(p.sum(axis=1) - 1).max() < 1e-4
        frames = pd.read_parquet(posixpath.join(folder, "frame_predictions.parquet"))
        assert len(frames) >= 85 and {"path", "frame_index", "time", "top1", "p1", "top2", "p2", "true"} <= set(frames)
        assert (frames["p1"] >= frames["p2"]).all() and (frames["top1"] != frames["top2"]).all()
        run = store.read_json(posixpath.join(folder, "run.json"))
        assert run["model_file"]["format"] == "keras" and run["modality"] == "video"
        est, _ = load_run(store, folder)  # the recorded hash is checked
        assert est.predict_proba(np.zeros((2, 256, 256), np.uint8)).shape == (2, 8)
    summary = store.read_json(store.path("runs", SPLIT_ID, "summary.json"))
    assert summary["best_by_modality"]["video"] in {"cnn", "fer"}


def test_rerun_reuses_complete_runs_and_train_command_works(video_run, capsys):
    out, argv = video_run
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    assert all(m["reused"] for m in r["train"]["models"])
    assert all(m["processed"] == 0 and m["skipped"] == 180 for m in r["extract"]["modalities"].values())
    assert main(["train", str(out), "--model", "cnn", "--split", SPLIT, "--epochs", "3", "--json"]) == 0
    t = json.loads(capsys.readouterr().out)
    assert [m["model"] for m in t["models"]] == ["cnn"] and t["models"][0]["reused"]


def _frame_store(root: Path, actors: tuple[int, ...]) -> Store:
    """A store of the 32-pixel face crops `train --frame-size 32` reads: 8 clips of 3 frames per actor, one part per
    actor (as an extraction's chunks write them), each emotion a brightness."""
    import pyarrow as pa

    from emotion.core.ids import parse_id
    from emotion.extract.chunk import frame_schema
    from emotion.video.frames import encode_png

    params = FrameParams(size=32, face_crop=True)
    store = Store(str(root))
    folder = store.dataset_dir("frames", params.key)
    rng = np.random.default_rng(0)
    for actor in actors:
        rows = []
        for emotion in range(1, 9):
            rid = parse_id(f"01-01-{emotion:02d}-01-01-01-{actor:02d}.mp4")
            img = np.clip(rng.normal(30 * emotion, 10, (32, 32)), 0, 255).astype(np.uint8)
            rows += [{"path": f"Actor_{actor:02d}/{rid.stem}.mp4", "content_hash": f"h{actor}-{emotion}",
                      **rid.labels(), "frame_index": 20 * i, "time": 20 * i / 30, "face_found": True, "face_x": 0,
                      "face_y": 0, "face_w": 32, "face_h": 32, "height": 32, "width": 32, "image": encode_png(img),
                      "landmarks": None} for i in range(3)]
        store.write_table(f"{folder}/{Store.new_part_name()}", pa.Table.from_pylist(rows, schema=frame_schema(params)))
    return store


def test_video_training_survives_an_extract_rewriting_the_frame_parts(tmp_path, monkeypatch, capsys):
    """An extract committing during training may rewrite every frame part under a new name (compaction): training
    reads its own copy of the frames, taken once, so the epochs after the rewrite still find them."""
    from emotion.extract.chunk import compact
    from emotion.video.frameset import FrameSet

    store = _frame_store(tmp_path / "store", (1, 2, 21))
    folder = store.dataset_dir("frames", FrameParams(size=32, face_crop=True).key)
    real, passes = FrameSet.batches, []

    def then_rewrite(self, *args, **kwargs):
        yield from real(self, *args, **kwargs)
        passes.append(1)
        if len(passes) == 1:  # after the first epoch
            compact(store, folder, {posixpath.basename(p): set() for p in store.list_parts(folder)})

    monkeypatch.setattr(FrameSet, "batches", then_rewrite)
    code = main(["train", str(store.root), "--model", "cnn", "--split", SPLIT, "--frame-size", "32", "--epochs", "3",
                 "--json"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert len(passes) >= 3  # epochs (and the test clips) read after the rewrite


def test_the_seed_of_the_command_line_trains_the_video_models(tmp_path, capsys):
    """`--seed` reached the audio models only: the frame models always chose their validation actors, weights and
    augmentation with seed 0, under one run version. Now each seed is a run of its own, with its own validation
    actors."""
    from emotion.training.video import validation_actors

    store = _frame_store(tmp_path / "store", (1, 2, 3, 4, 21))
    train = (1, 2, 3, 4)
    other = next(s for s in range(1, 100) if validation_actors(train, s) != validation_actors(train, 0))
    runs = {}
    for seed in (0, other):
        argv = ["train", str(store.root), "--model", "cnn,fer", "--split", "train=1-4,test=21", "--frame-size", "32",
                "--epochs", "1", "--json"] + (["--seed", str(seed)] if seed else [])
        assert main(argv) == 0, capsys.readouterr().err
        for m in json.loads(capsys.readouterr().out)["models"]:
            runs[m["model"], seed] = store.read_json(posixpath.join(m["run_dir"], "run.json"))
    for model in ("cnn", "fer"):
        first, second = runs[model, 0], runs[model, other]
        assert first["estimator_params"]["seed"] == 0 and second["estimator_params"]["seed"] == other
        assert first["version"] != second["version"]
        assert first["val_actors"] == list(validation_actors(train, 0))
        assert second["val_actors"] == list(validation_actors(train, other)) != first["val_actors"]
        assert sorted(second["fit_actors"] + second["val_actors"]) == list(train)


def test_a_video_model_without_validation_actors_is_a_warning_on_the_console(tmp_path, capsys):
    """One training actor: none is held out, nothing judges the epochs; this was silent."""
    store = _frame_store(tmp_path / "store", (1, 21))
    assert main(["train", str(store.root), "--model", "cnn", "--split", "train=1,test=21", "--frame-size", "32",
                 "--epochs", "2", "--json"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if "no validation actors" in line]
    assert len(lines) == 1 and "WARNING" in lines[0], captured.err
    assert lines[0].endswith("cnn: no validation actors (1 training actor with frames; one is held out for validation "
                             "from 3 up): all 2 epochs run (no early stopping) and the last epoch's weights are kept; "
                             "the run has no validation score, so any video model with one is selected before it")
    (m,) = json.loads(captured.out)["models"]
    assert m["cv_accuracy"] is None  # no validation score


def test_tampered_video_model_is_refused(video_run, tmp_path):
    out, _ = video_run
    store = Store(str(out))
    summary = store.read_json(store.path("runs", SPLIT_ID, "summary.json"))
    folder = next(m["run_dir"] for m in summary["models"] if m["model"] == "cnn")
    copy = tmp_path / "run"
    shutil.copytree(folder, copy)
    model = copy / "model.keras"
    data = bytearray(model.read_bytes())
    data[-100] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="does not match"):
        load_run(Store(str(tmp_path)), str(copy))


def test_video_training_without_frames_is_a_clear_error(tmp_path, capsys):
    store = tmp_path / "empty"
    store.mkdir()
    assert main(["train", str(store), "--model", "cnn", "--split", SPLIT]) == 1
    assert f"emotion extract DATA --out {store} --modality video --face-crop` first" in capsys.readouterr().err


def test_fusion_and_predict_on_video_files(video_run, tiny_video_corpus: Path, capsys, tmp_path):
    out, _ = video_run
    argv = ["run", str(tiny_video_corpus), "--out", str(out), "--split", SPLIT, "--model", "fusion-late,fusion-early",
            "--features", "seed", "--workers", "2", "--json"]
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    audio = r["extract"]["modalities"]["audio"]
    assert audio["processed"] == 90 and audio["no_audio"] == 90  # modality 01 has speech, 02 is video-only
    models = {m["model"]: m for m in r["train"]["models"]}
    assert set(models) == {"fusion-late", "fusion-early"}
    store = Store(str(out))
    for m in models.values():
        metrics = store.read_json(posixpath.join(m["run_dir"], "metrics.json"))
        # one row per recording: the audio-video clip (01), not its video-only twin (02) as well
        assert metrics["modality"] == "fusion" and metrics["n_test"] == 30
        assert metrics["n_test_audio_missing"] == 0
        assert set(metrics["audio_visual_clips"]) == {"fused", "audio_only", "video_only"}
    assert 0 <= store.read_json(posixpath.join(models["fusion-late"]["run_dir"], "metrics.json"))["audio_weight"] <= 1
    report = (out / "runs" / SPLIT_ID / "report.md").read_text()
    assert "fusion-late" in report and "cnn" in report

    # predict: a speech clip (voice and face), a video-only clip (face alone), both with a frame timeline
    speech = tiny_video_corpus / "Actor_21" / "01-01-03-02-01-01-21.mp4"
    silent = tiny_video_corpus / "Actor_21" / "02-01-03-02-01-01-21.mp4"
    assert main(["predict", str(speech), str(silent), "--store", str(out), "--split", SPLIT, "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert [p["file"] for p in preds] == [str(speech), str(silent)]
    for p in preds:
        assert set(p["probabilities"]) == {"neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"}
        assert abs(sum(p["probabilities"].values()) - 1) < 1e-6
        assert p["emotion"] == max(p["probabilities"], key=p["probabilities"].get)
        assert "/fusion-" in p["model"]
        assert [t["frame_index"] for t in p["timeline"]] == [0, 20, 40]
        assert "/cnn/" in p["timeline_model"] or "/fer/" in p["timeline_model"]
        assert all(len(t["top"]) == 2 and t["top"][0]["probability"] >= t["top"][1]["probability"] for t in p["timeline"])
    assert preds[0]["modalities_used"] == ["audio", "video"]
    assert preds[1]["modalities_used"] == ["video"] and preds[1]["notes"][0].startswith("audio absent")
    # the plain-text output shows the timeline and the outcome
    assert main(["predict", str(silent), "--store", str(out), "--split", SPLIT]) == 0
    text = capsys.readouterr().out
    assert "audio absent" in text and "(time, top two emotions):" in text
    assert "frame   20" in text and "clip outcome of this face model:" in text
    assert "is the fused model's" in text  # the timeline's own outcome, and whose the outcome above is
    # a voice recorded at 16 kHz (the synthetic actor 24's), below the seed features' 22050 Hz: said once, by the
    # fused model that read it
    from emotion.core.ids import parse_id
    from emotion.video.synth import VideoSynthParams, write_clip

    narrow = tmp_path / "01-01-03-02-01-01-24.mp4"
    write_clip(narrow, parse_id(narrow.name), VideoSynthParams(duration=1.4, seed=5))
    assert main(["predict", str(narrow), "--store", str(out), "--split", SPLIT, "--json"]) == 0
    [p] = json.loads(capsys.readouterr().out)
    assert "/fusion-" in p["model"] and p["modalities_used"] == ["audio", "video"]
    assert [n for n in p["notes"] if "recorded at" in n] == [
        "note: the voice was recorded at 16000 Hz, below the 22050 Hz its features are computed at: nothing above "
        "8000 Hz, where full-band recordings (RAVDESS: 48000 Hz) have energy: the answer may be less sure"]
    # --seed and --cv-folds reach the fused models (they were fitted with seed 0 and 3 folds whatever was given),
    # and make a run of their own
    assert main(["train", str(out), "--split", SPLIT, "--model", "fusion-late", "--seed", "3", "--cv-folds", "2",
                 "--json"]) == 0
    (again,) = json.loads(capsys.readouterr().out)["models"]
    params = store.read_json(posixpath.join(again["run_dir"], "run.json"))["estimator_params"]
    assert (params["seed"], params["cv_folds"]) == (3, 2)
    assert again["version"] != models["fusion-late"]["version"] and not again["reused"]


def test_landmark_features_train_feature_models_with_speaker_norm_and_predict(video_run, tiny_video_corpus: Path,
                                                                                capsys):
    """The landmarks set: built from the stored face crops, trained by lr/svc, speaker-normalised, predicted."""
    from emotion.video.landmarks import LandmarkParams

    out, _ = video_run
    lp = LandmarkParams()
    argv = ["run", str(tiny_video_corpus), "--out", str(out), "--split", SPLIT, "--modality", "video",
            "--features", "landmarks", "--model", "lr", "--speaker-norm", "--n-iter", "3", "--cv-folds", "2", "--workers", "2",
            "--json"]
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    faces = r["extract"]["modalities"]["landmarks"]["faces"]
    assert faces["feature_set"] == lp.key and faces["clips"] == 180 and faces["face_rate"] >= 0.95
    (m,) = r["train"]["models"]
    assert m["model"] == "lr" and m["modality"] == "video" and m["features"] == "landmarks" and m["speaker_norm"]
    assert m["accuracy"] >= 0.9, m  # the drawn faces move mouth, brows and eyes with the emotion
    store = Store(str(out))
    table = store.read_features("video", lp.key)
    assert len(table) == 180 and table[lp.feature_names()].notna().all().all()
    run = store.read_json(posixpath.join(m["run_dir"], "run.json"))
    assert run["modality"] == "video" and run["feature_params"]["name"] == "landmarks"
    # the audio side is refused this set with a one-line error; the train command reuses the run
    assert main(["train", str(out), "--split", SPLIT, "--features", "landmarks", "--model", "lr", "--speaker-norm",
                 "--n-iter", "3", "--cv-folds", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"][0]["reused"]
    assert main(["extract", str(tiny_video_corpus), "--out", str(out), "--modality", "audio", "--features",
                 "landmarks"]) == 2
    assert "measured on video frames" in capsys.readouterr().err
    # predict with the landmark model's run folder: an mp4's face geometry, no timeline
    clip = tiny_video_corpus / "Actor_21" / "02-01-05-02-01-01-21.mp4"
    assert main(["predict", str(clip), "--model", m["run_dir"], "--json"]) == 0
    (p,) = json.loads(capsys.readouterr().out)
    assert p["model"] == m["run_dir"] and p["modalities_used"] == ["video"] and p["emotion"] == "angry"
    assert p["timeline"] is None and f"the face model {m['run_dir']} reads the clip's landmark statistics as a " \
        "whole: no per-frame timeline (a frame model's, cnn or fer, gives one: give its run folder as --model)" \
        in p["notes"]  # said, and by which model, so that a missing timeline is not taken for a fault
