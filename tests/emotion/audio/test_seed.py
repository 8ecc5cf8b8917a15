import librosa
import numpy as np
import pytest

from emotion.audio.decode import load_audio
from emotion.audio.seed import AudioFeatureExtractor, AudioFeatureParams
from emotion.core.errors import RejectedInput, UsageError
from emotion.featuresets import feature_set
from tests.conftest import real_audio_files, write_tone


def baseline_vector(path) -> dict[str, float]:
    """The baseline recipe written directly with librosa, as a reader would."""
    y, sr = librosa.load(path, sr=22050)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13)
    blocks = {"": mfcc, "_delta": librosa.feature.delta(mfcc), "_delta2": librosa.feature.delta(mfcc, order=2)}
    out = {}
    for kind, b in blocks.items():
        for i in range(13):
            for stat in ("mean", "max", "min", "std"):
                out[f"mfcc{i + 1:02d}{kind}_{stat}"] = getattr(np, stat)(b[i])
    rms = librosa.feature.rms(y=y)[0]
    for stat in ("mean", "max", "min", "std"):
        out[f"rms_{stat}"] = getattr(np, stat)(rms)
    return out


def check_against_baseline(path):
    ex = AudioFeatureExtractor(AudioFeatureParams())
    vec = ex(load_audio(path.read_bytes(), 22050))
    ref = baseline_vector(path)
    assert ex.names == list(ref)
    np.testing.assert_allclose(vec, np.array(list(ref.values()), dtype=np.float32), rtol=1e-4, atol=1e-4)


def test_names_say_what_they_are():
    names = AudioFeatureParams().feature_names()
    assert len(names) == 13 * 3 * 4 + 4 == len(set(names))
    assert names[:4] == ["mfcc01_mean", "mfcc01_max", "mfcc01_min", "mfcc01_std"]
    assert "mfcc13_delta2_std" in names and names[-1] == "rms_std"


@pytest.mark.parametrize("sr, channels", [(48000, 2), (16000, 1)])
def test_values_match_direct_librosa(tmp_path, sr, channels):
    check_against_baseline(write_tone(tmp_path / "x.wav", seconds=2.0, sr=sr, channels=channels))


@pytest.mark.real_data
def test_values_match_direct_librosa_on_real_clips():
    for p in real_audio_files()[::240]:
        check_against_baseline(p)


def test_clip_shorter_than_delta_window_is_rejected():
    ex = AudioFeatureExtractor(AudioFeatureParams())
    with pytest.raises(RejectedInput, match="clip too short"):
        ex(np.full(2000, 0.1, dtype=np.float32))


def test_params_hash_is_stable_and_sensitive():
    a, b = AudioFeatureParams(), AudioFeatureParams(n_mfcc=20)
    assert a.hash() == AudioFeatureParams().hash() and a.hash() != b.hash()
    assert AudioFeatureParams.from_dict(a.to_dict()) == a
    assert a.key.startswith("seed-")


def test_bad_params_and_set_names():
    with pytest.raises(UsageError, match="unknown statistic"):
        AudioFeatureParams(stats=("median",))
    with pytest.raises(UsageError, match="unknown feature set"):
        feature_set("nope")
