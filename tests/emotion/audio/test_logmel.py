import numpy as np
import pytest

from emotion.audio.logmel import LogMelExtractor, LogMelParams, centred_window
from emotion.core.errors import RejectedInput, UsageError
from emotion.featuresets import feature_set, make_extractor, params_from_dict

SR = 16000


def burst(total: float, start: float, length: float, freq: float = 1000.0) -> np.ndarray:
    """Quiet noise with a tone from ``start`` for ``length`` seconds."""
    rng = np.random.default_rng(0)
    y = rng.standard_normal(int(total * SR)) * 1e-4
    t = np.arange(int(length * SR)) / SR
    i = int(start * SR)
    y[i: i + len(t)] += 0.3 * np.sin(2 * np.pi * freq * t)
    return y.astype(np.float32)


def test_registered_with_band_major_names_and_hash():
    p = feature_set("logmel")
    assert isinstance(p, LogMelParams) and p.key.startswith("logmel-")
    names = p.feature_names()
    assert len(names) == p.n_mels * p.n_frames == 2400
    assert names[:2] == ["logmel_b01_t000", "logmel_b01_t001"] and names[p.n_frames] == "logmel_b02_t000"
    assert params_from_dict(p.to_dict()) == p
    assert LogMelParams(n_frames=64).hash() != p.hash()
    assert isinstance(make_extractor(p), LogMelExtractor)
    with pytest.raises(UsageError, match="Nyquist"):
        LogMelParams(fmax=9000.0)


def test_window_is_centred_on_the_active_part_and_padded_with_the_background():
    p = LogMelParams()
    ex = LogMelExtractor(p)
    # a 0.6 s tone at 2.0-2.6 s of a 4 s clip: its centre (2.3 s) lands at the window's centre
    S = ex.spectrogram(burst(4.0, 2.0, 0.6))
    assert S.shape == (p.n_mels, p.n_frames)
    loud = np.flatnonzero(S.max(axis=0) > S.max() - 20)
    frame_s = p.hop_length / SR
    assert abs((loud.mean() - p.n_frames / 2) * frame_s) < 0.05
    assert abs(len(loud) * frame_s - 0.6) < 0.1
    # a clip shorter than the window: the missing frames hold each band's quietest value in the clip
    short = burst(1.0, 0.3, 0.4)
    S = ex.spectrogram(short)
    assert S.shape == (p.n_mels, p.n_frames)
    np.testing.assert_allclose(S[:, 0], S.min(axis=1), rtol=0, atol=1e-4)
    np.testing.assert_allclose(S[:, -1], S.min(axis=1), rtol=0, atol=1e-4)
    v = ex(short)
    assert v.dtype == np.float32 and v.shape == (2400,)
    np.testing.assert_array_equal(v.reshape(p.image_shape), S.astype(np.float32))


def test_centred_window_and_too_short_clip():
    assert centred_window((10, 30), 80) == (-20, 60)
    assert centred_window((0, 200), 80) == (60, 140)
    with pytest.raises(RejectedInput, match="clip too short"):
        LogMelExtractor(LogMelParams())(np.zeros(500, np.float32) + 0.1)


def test_real_clip_speech_fills_the_window():
    from emotion.audio.decode import load_audio
    from tests.conftest import real_audio_files

    [f] = real_audio_files(1)
    p = LogMelParams()
    S = LogMelExtractor(p).spectrogram(load_audio(f.read_bytes(), p.sample_rate, video=False))
    energy = S.max(axis=0)
    # RAVDESS statements last about 1.5-2 s: the loud part sits inside the 2.4 s window, around its centre
    loud = np.flatnonzero(energy > energy.max() - 25)
    assert loud.min() > 0 and loud.max() < p.n_frames - 1
    assert abs((loud.min() + loud.max()) / 2 - p.n_frames / 2) < 12
