import numpy as np
import pytest

from emotion.audio import load_audio
from emotion.errors import RejectedInput, UsageError
from emotion.features import AudioFeatureParams
from emotion.features_extended import FUNCTIONALS, ExtendedFeatureExtractor, ExtendedFeatureParams, functionals, yin
from emotion.featuresets import feature_set, make_extractor
from tests.conftest import real_audio_files

P = ExtendedFeatureParams()
SR = P.sample_rate


def tone(f0: float, seconds: float = 2.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def test_names_shape_and_order():
    names = P.feature_names()
    assert len(names) == len(set(names)) == len(P.descriptors()) * len(FUNCTIONALS) + 1
    assert names[:7] == [f"logmel01_{f}" for f in FUNCTIONALS]
    for n in ("logmel07_p90", "mfcc20_delta_slope", "centroid_mean", "contrast6_std", "chroma12_p50", "zcr_range",
              "energy_delta_std", "f0_mean", "f0_delta_std", "rolloff_p10", "flatness_mean", "bandwidth_slope",
              "alpha_ratio_mean", "hammarberg_p50", "slope0500_std", "slope5001500_mean", "hnr_p90"):
        assert n in names
    assert names[-1] == "voiced_ratio"
    v = ExtendedFeatureExtractor(P)(tone(220))
    assert v.shape == (len(names),) and v.dtype == np.float32 and np.isfinite(v).all()


def test_pure_tone_values():
    d = dict(zip(P.feature_names(), ExtendedFeatureExtractor(P)(tone(220)), strict=True))
    assert d["f0_mean"] == pytest.approx(12 * np.log2(220 / 55), abs=0.05)  # 24 semitones above 55 Hz
    assert d["f0_std"] < 0.05 and d["f0_slope"] == pytest.approx(0, abs=0.1)
    assert d["voiced_ratio"] > 0.95
    assert d["centroid_mean"] == pytest.approx(220, rel=0.05)
    assert d["zcr_mean"] == pytest.approx(2 * 220 / SR, rel=0.05)
    assert d["energy_mean"] == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.5)  # RMS of the sine, in dB
    chroma = [d[f"chroma{i:02d}_mean"] for i in range(1, 13)]
    assert int(np.argmax(chroma)) == 9 and chroma[9] == pytest.approx(1.0)  # A (220 Hz): pitch classes start at C
    assert d["energy_slope"] == pytest.approx(0, abs=0.5)


def test_rising_pitch_has_positive_slope_and_noise_is_unvoiced():
    t = np.arange(2 * SR) / SR
    glide = (0.3 * np.sin(2 * np.pi * (150 * t + 25 * t**2))).astype(np.float32)  # 150 -> 250 Hz
    d = dict(zip(P.feature_names(), ExtendedFeatureExtractor(P)(glide), strict=True))
    assert d["f0_slope"] == pytest.approx(12 * np.log2(250 / 150) / 2, rel=0.15)  # semitones per second
    noise = np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32) * 0.1
    dn = dict(zip(P.feature_names(), ExtendedFeatureExtractor(P)(noise), strict=True))
    assert dn["voiced_ratio"] < 0.05
    assert dn["flatness_mean"] > 10 * d["flatness_mean"]
    # voice quality: white noise has the alpha ratio of its bandwidths (950 Hz vs 4 kHz) and a negative HNR
    assert dn["alpha_ratio_mean"] == pytest.approx(10 * np.log10(950 / 4000), abs=0.7)
    assert dn["hnr_mean"] < 0 < 20 < d["hnr_mean"]
    assert abs(dn["hammarberg_mean"]) < 3 and d["hammarberg_mean"] > 40


def test_yin_against_librosa():
    import librosa

    y = tone(180, 1.0) + 0.3 * tone(360, 1.0)
    f0, ap = yin(y, SR, 60, 500, 1024, 256)
    ref = librosa.yin(y, fmin=60, fmax=500, sr=SR, frame_length=1024, hop_length=256)
    assert len(f0) == len(ref)
    np.testing.assert_allclose(np.median(f0), 180, rtol=0.01)
    np.testing.assert_allclose(np.median(f0), np.median(ref), rtol=0.01)
    assert np.median(ap) < 0.05


def test_functionals():
    x = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])
    m, sd, p10, p50, p90, rng, slope = functionals(x, 0.5)[0]
    assert (m, p50, rng) == (2.0, 2.0, 4.0)
    assert sd == pytest.approx(np.std(x)) and p10 == pytest.approx(0.4) and p90 == pytest.approx(3.6)
    assert slope == pytest.approx(2.0)  # one unit per frame of 0.5 s
    assert functionals(np.zeros((3, 0)), 0.5).shape == (3, len(FUNCTIONALS))


def test_silence_around_speech_is_ignored():
    ex = ExtendedFeatureExtractor(P)
    y = tone(220, 1.0)
    padded = np.concatenate([np.zeros(SR, np.float32), y, np.zeros(SR, np.float32)])
    a = dict(zip(ex.names, ex(y), strict=True))
    b = dict(zip(ex.names, ex(padded), strict=True))
    for k in ("f0_mean", "centroid_mean", "energy_mean", "logmel05_mean"):
        assert b[k] == pytest.approx(a[k], abs=0.5)


def test_short_clip_rejected_and_bad_params():
    with pytest.raises(RejectedInput, match="clip too short"):
        ExtendedFeatureExtractor(P)(np.full(1000, 0.1, np.float32))
    with pytest.raises(UsageError, match="Nyquist"):
        ExtendedFeatureParams(n_contrast_bands=6)
    with pytest.raises(UsageError, match="two periods"):
        ExtendedFeatureParams(f0_min=20)


def test_registered_with_its_own_hash():
    assert feature_set("extended") == P
    assert P.key.startswith("extended-") and P.key != AudioFeatureParams().key
    assert ExtendedFeatureParams.from_dict(P.to_dict()) == P
    assert ExtendedFeatureParams(n_mels=64).hash() != P.hash()
    assert isinstance(make_extractor(P), ExtendedFeatureExtractor)
    with pytest.raises(UsageError, match="unknown feature set 'nope'; choose from seed, extended"):
        feature_set("nope")


@pytest.mark.real_data
def test_real_clips_give_plausible_pitch():
    for path in real_audio_files()[:120:60]:  # actor 01 (male) and actor 02 (female)
        y = load_audio(path.read_bytes(), SR)
        d = dict(zip(P.feature_names(), ExtendedFeatureExtractor(P)(y), strict=True))
        hz = 55 * 2 ** (d["f0_p50"] / 12)
        assert 70 < hz < 400 and 0.2 < d["voiced_ratio"] <= 1
