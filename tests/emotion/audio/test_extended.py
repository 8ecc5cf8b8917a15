import numpy as np
import pytest

from emotion.audio.decode import load_audio
from emotion.audio.extended import (
    FUNCTIONALS,
    PROSODY,
    SEGMENT_STATS,
    ExtendedFeatureExtractor,
    ExtendedFeatureParams,
    functionals,
    yin,
)
from emotion.audio.seed import AudioFeatureParams
from emotion.core.errors import RejectedInput, UsageError
from emotion.featuresets import feature_set, make_extractor
from tests.conftest import real_audio_files

P = ExtendedFeatureParams()
SR = P.sample_rate


def tone(f0: float, seconds: float = 2.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def test_names_shape_and_order():
    names = P.feature_names()
    n_functionals = len(P.descriptors()) * len(FUNCTIONALS)
    assert len(names) == len(set(names)) == n_functionals + 1 + (len(P.descriptors()) - 2) * len(SEGMENT_STATS) + len(PROSODY)
    assert names[:7] == [f"logmel01_{f}" for f in FUNCTIONALS]
    for n in ("logmel07_p90", "mfcc20_delta_slope", "centroid_mean", "contrast6_std", "chroma12_p50", "zcr_range",
              "energy_delta_std", "f0_mean", "f0_delta_std", "rolloff_p10", "flatness_mean", "bandwidth_slope",
              "alpha_ratio_mean", "hammarberg_p50", "slope0500_std", "slope5001500_mean", "hnr_p90"):
        assert n in names
    assert names[n_functionals] == "voiced_ratio"
    for n in ("mfcc03_vmean", "zcr_umean", "energy_dabs", "logmel40_dstd", "hnr_vstd", "f0_p25", "active_seconds"):
        assert n in names
    assert not any(n.startswith(("f0_vmean", "f0_delta_dabs")) for n in names)  # pitch exists on voiced frames only
    assert names[-len(PROSODY):] == list(PROSODY)
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


def test_voiced_and_unvoiced_statistics_and_timing():
    """Two 0.5 s vowels (220 Hz) around 0.3 s of hiss: the statistics split along voicing, timing counts the vowels."""
    rng = np.random.default_rng(0)
    hiss = (0.05 * rng.standard_normal(int(0.3 * SR))).astype(np.float32)
    y = np.concatenate([tone(220, 0.5), hiss, tone(220, 0.5)])
    d = dict(zip(P.feature_names(), ExtendedFeatureExtractor(P)(y), strict=True))
    assert d["zcr_umean"] > 5 * d["zcr_vmean"]  # hiss crosses zero far more often than a 220 Hz vowel
    assert d["hnr_vmean"] > d["hnr_umean"] + 10
    assert d["voiced_seg_mean"] == pytest.approx(0.5, abs=0.06) and d["voiced_seg_std"] < 0.05
    assert d["active_seconds"] == pytest.approx(1.3, abs=0.05)
    assert d["voiced_rate"] == pytest.approx(2 / d["active_seconds"], rel=0.01)
    assert d["f0_p25"] == pytest.approx(24, abs=0.1) and d["f0_p75"] == pytest.approx(24, abs=0.1)
    assert d["energy_dabs"] > 0  # level changes at the vowel edges
    steady = dict(zip(P.feature_names(), ExtendedFeatureExtractor(P)(tone(220)), strict=True))
    assert steady["centroid_dabs"] < 0.05 * d["centroid_dabs"]


def test_speed_copies_are_stored_beside_the_clip():
    """With speeds, a row holds the clip's vector and that of each copy; a faster copy is higher and shorter."""
    aug = ExtendedFeatureParams(speeds=(0.9, 1.1))
    assert aug.key != P.key  # another set in the store
    assert (aug.copies, P.copies) == (3, 1) and aug.without_copies() == P and aug.augment_speeds() == (0.9, 1.1)
    names, variants = aug.feature_names(), aug.variant_names()
    assert names == P.feature_names() and [v[0] for v in variants] == ["sp090__logmel01_mean", "sp110__logmel01_mean"]
    assert aug.column_names() == names + variants[0] + variants[1]
    v = ExtendedFeatureExtractor(aug)(tone(220))
    assert v.shape == (3 * len(names),)
    own, slow, fast = (dict(zip(names, v[i * len(names):(i + 1) * len(names)], strict=True)) for i in range(3))
    np.testing.assert_array_equal(v[: len(names)], ExtendedFeatureExtractor(P)(tone(220)))
    assert fast["f0_mean"] - own["f0_mean"] == pytest.approx(12 * np.log2(1.1), abs=0.05)  # semitones up
    assert slow["f0_mean"] - own["f0_mean"] == pytest.approx(12 * np.log2(0.9), abs=0.05)
    assert fast["active_seconds"] == pytest.approx(own["active_seconds"] / 1.1, rel=0.02)
    from emotion.featuresets import params_from_dict

    back = params_from_dict(aug.to_dict())
    assert back == aug and back.speeds == (0.9, 1.1) and hash(back)  # JSON lists come back as a hashable tuple
    for bad in ((1.0,), (0.9, 0.9), (3.0,), (0.2,)):
        with pytest.raises(UsageError, match="augmentation speeds"):
            ExtendedFeatureParams(speeds=bad)
