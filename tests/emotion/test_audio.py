import io

import librosa
import numpy as np
import pytest
import soundfile as sf

from emotion.audio import decode_audio, load_audio
from emotion.errors import DecodeError, RejectedInput
from tests.conftest import real_audio_files, write_tone


def test_zero_byte_file_is_rejected():
    with pytest.raises(DecodeError, match="empty file"):
        decode_audio(b"")


def test_random_bytes_are_rejected():
    with pytest.raises(DecodeError, match="cannot decode audio"):
        decode_audio(np.random.default_rng(0).bytes(4000))


def test_truncated_wav_is_rejected(tmp_path):
    data = write_tone(tmp_path / "a.wav").read_bytes()
    with pytest.raises(DecodeError):
        decode_audio(data[:30])  # cut inside the header
    with pytest.raises(DecodeError, match="WAV is cut off: .* of its 44100 data bytes"):
        decode_audio(data[: len(data) // 2])  # cut mid-data: libsndfile alone would read a shorter clip
    assert decode_audio(data)[0].shape[0] == 22050  # the whole file is fine


def test_truncated_flac_is_rejected(tmp_path):
    p = tmp_path / "a.flac"
    write_tone(p)
    data = p.read_bytes()
    with pytest.raises(DecodeError):
        decode_audio(data[:40])


def test_silent_audio_is_rejected():
    buf = io.BytesIO()
    sf.write(buf, np.zeros(22050), 22050, format="WAV")
    with pytest.raises(RejectedInput, match="silent"):
        load_audio(buf.getvalue(), 22050)


@pytest.mark.parametrize("sr, channels", [(48000, 2), (16000, 1), (22050, 1), (44100, 2)])
def test_load_matches_librosa_load(tmp_path, sr, channels):
    p = write_tone(tmp_path / "x.wav", sr=sr, channels=channels)
    ours = load_audio(p.read_bytes(), 22050)
    ref, _ = librosa.load(p, sr=22050)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.real_data
def test_real_flac_matches_librosa_load():
    for p in real_audio_files()[::300]:
        ours = load_audio(p.read_bytes(), 22050)
        ref, _ = librosa.load(p, sr=22050)
        np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_hour_long_audio_is_refused_before_decoding(monkeypatch):
    import emotion.audio as audio

    buf = io.BytesIO()
    sf.write(buf, np.zeros(22050 * 3), 22050, format="WAV")
    monkeypatch.setattr(audio, "MAX_SECONDS", 2.0)
    read = []
    monkeypatch.setattr(audio.sf, "read", lambda *a, **k: read.append(1))
    with pytest.raises(RejectedInput, match="3 s long, over the limit of 2 s"):
        decode_audio(buf.getvalue())
    assert not read  # refused from the header, nothing decoded
