import io

import librosa
import numpy as np
import pytest
import soundfile as sf

from emotion.audio.decode import decode_audio, load_audio
from emotion.core.errors import DecodeError, RejectedInput
from tests.conftest import real_audio_files, write_tone


def test_zero_byte_file_is_rejected():
    with pytest.raises(DecodeError, match="empty file"):
        decode_audio(b"")


def test_random_bytes_are_rejected():
    with pytest.raises(DecodeError, match="cannot decode audio"):
        decode_audio(np.random.default_rng(0).bytes(4000))


def test_an_mp4_named_as_audio_is_said_to_be_one(tmp_path):
    """A review: an mp4 named .wav was rejected with libsndfile's "Format not recognised"."""
    from tests.conftest import write_turned_clip

    mp4 = write_turned_clip(tmp_path / "a.mp4", [np.zeros((32, 32, 3), np.uint8)] * 3, rotate=0).read_bytes()
    with pytest.raises(DecodeError, match=r"^cannot decode audio: not WAV or FLAC but an mp4 \(ISO media\) file: "
                                          r"name it \.mp4$"):
        decode_audio(mp4)


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


@pytest.mark.parametrize(("cut", "message"), [
    (40, r"not a complete FLAC file: it ends inside its header \(40 bytes\)"),  # libsndfile: "unimplemented format"
    (100, r"not a complete FLAC file: none of its 22050 samples decode \(100 bytes\)"),  # "Internal psf_fseek() failed."
    (0.5, r"FLAC is damaged or cut off: the decoder loses sync after \d+ of its 22050 samples"),  # "flac decoder lost sync."
    (-1, r"FLAC is damaged or cut off: the decoder loses sync after \d+ of its 22050 samples"),
])
def test_a_cut_off_flac_is_named_in_words(tmp_path, cut, message):
    """As a cut-off WAV is (``WAV is cut off: ...``), not in libsndfile's words; one line."""
    data = write_tone(tmp_path / "a.flac").read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else cut
    with pytest.raises(DecodeError, match=rf"^{message}$") as err:
        decode_audio(data[:n])
    assert "\n" not in str(err.value) and "psf_" not in str(err.value)
    assert decode_audio(data)[0].shape[0] == 22050  # the whole file is fine


def test_a_flac_after_an_id3_tag_is_read_and_checked(tmp_path):
    data = write_tone(tmp_path / "a.flac").read_bytes()
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10)  # an ID3v2 tag of 10 bytes before the stream
    with pytest.raises(DecodeError, match="^FLAC is damaged or cut off: the decoder loses sync after"):
        decode_audio(tag + data[: len(data) // 2])


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
    import emotion.audio.decode as audio

    buf = io.BytesIO()
    sf.write(buf, np.zeros(22050 * 3), 22050, format="WAV")
    monkeypatch.setattr(audio, "MAX_SECONDS", 2.0)
    read = []
    monkeypatch.setattr(audio.sf, "read", lambda *a, **k: read.append(1))
    with pytest.raises(RejectedInput, match="3 s long, over the limit of 2 s"):
        decode_audio(buf.getvalue())
    assert not read  # refused from the header, nothing decoded


# -- the audio track of mp4 clips ---------------------------------------------------------
def mux_mp4(y: np.ndarray, sr: int, codec: str = "aac", *, video: bool = False, audio: bool = True) -> bytes:
    """``y`` (float [n] or [n, channels]) as the audio track of an in-memory mp4; ``alac`` is lossless."""
    from fractions import Fraction

    import av

    y = y[:, None] if y.ndim == 1 else y
    layout = "mono" if y.shape[1] == 1 else "stereo"
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        vs = st = None
        if video:
            vs = out.add_stream("libx264", rate=30)
            vs.width, vs.height, vs.pix_fmt = 64, 64, "yuv420p"
        fmt = "s16p" if codec == "alac" else "fltp"
        if audio:
            st = out.add_stream(codec, rate=sr)
            st.layout, st.format = layout, fmt
        if vs is not None:
            for _ in range(10):
                for packet in vs.encode(av.VideoFrame.from_ndarray(np.full((64, 64, 3), 128, np.uint8), format="rgb24")):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
        if st is not None:
            for s in range(0, len(y), 1024):
                c = y[s : s + 1024].T
                c = np.round(np.clip(c, -1, 1) * 32767).astype(np.int16) if codec == "alac" else c.astype(np.float32)
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(c), format=fmt, layout=layout)
                af.sample_rate, af.pts, af.time_base = sr, s, Fraction(1, sr)
                for packet in st.encode(af):
                    out.mux(packet)
            for packet in st.encode():
                out.mux(packet)
    return buf.getvalue()


def _speech(stem: str, duration: float = 1.4) -> tuple[np.ndarray, int]:
    from emotion.audio.synth import SynthParams, synth_clip
    from emotion.core.ids import parse_id

    y, sr = synth_clip(parse_id(stem), SynthParams(duration=duration))
    return (y.mean(axis=1) if y.ndim == 2 else y).astype(np.float32), sr


@pytest.mark.parametrize("stem", ["03-01-05-02-01-01-21", "03-01-03-01-02-01-02", "03-01-08-01-01-01-04"])
def test_mp4_lossless_track_gives_exactly_the_features_of_the_wav(stem):
    """Same samples in an mp4 (ALAC, lossless) and in a WAV: decoding, mono mix and resampling agree exactly."""
    from emotion.audio.seed import AudioFeatureExtractor, AudioFeatureParams

    y, sr = _speech(stem)
    y16 = np.round(np.clip(y, -1, 1) * 32767).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, y16, sr, format="WAV", subtype="PCM_16")
    ex = AudioFeatureExtractor(AudioFeatureParams())
    wav = load_audio(buf.getvalue(), 22050)
    mp4 = load_audio(mux_mp4(y16.astype(np.float32) / 32767, sr, "alac"), 22050, video=True)
    assert mp4.shape == wav.shape  # encoder padding cut to the declared duration
    np.testing.assert_allclose(mp4, wav, atol=1e-6)
    np.testing.assert_allclose(ex(mp4), ex(wav), rtol=1e-5, atol=1e-4)


def test_mp4_aac_speech_features_agree_closely_with_the_wav(tmp_path):
    """The synthetic AV clips (AAC, lossy, as RAVDESS) against their speech written as a float WAV.

    Measured on 30 clips: feature vectors correlate at >= 0.995, the median
    difference is 0.23 of a feature's spread over clips, and every clip's
    nearest WAV (standardised features) is its own in 29 of 30; the loss is
    AAC's (the same samples in lossless ALAC agree exactly, above).
    """
    from emotion.audio.seed import AudioFeatureExtractor, AudioFeatureParams
    from emotion.audio.synth import SynthParams, synth_clip
    from emotion.core.ids import Modality, RavdessId
    from emotion.video.synth import VideoSynthParams, video_ids, write_clip

    vp = VideoSynthParams(actors=(1, 2, 21), modalities=(1,), duration=1.4, seed=5)
    ex = AudioFeatureExtractor(AudioFeatureParams())
    wav_f, mp4_f = [], []
    for rid in video_ids(vp)[::6]:
        path = tmp_path / f"{rid.stem}.mp4"
        write_clip(path, rid, vp)
        y, sr = synth_clip(RavdessId(Modality.AUDIO_ONLY, *rid.fields()[1:]), SynthParams(duration=vp.duration, seed=vp.seed))
        buf = io.BytesIO()
        sf.write(buf, (y.mean(axis=1) if y.ndim == 2 else y).astype(np.float32), sr, format="WAV", subtype="FLOAT")
        wav_f.append(ex(load_audio(buf.getvalue(), 22050)))
        mp4_f.append(ex(load_audio(path.read_bytes(), 22050, video=True)))
    W, M = np.array(wav_f), np.array(mp4_f)
    assert min(np.corrcoef(w, m)[0, 1] for w, m in zip(W, M, strict=True)) >= 0.99
    z = np.abs(M - W) / W.std(axis=0)
    assert np.median(z) < 0.4
    zw, zm = (W - W.mean(0)) / W.std(0), (M - W.mean(0)) / W.std(0)
    nearest = ((zm[:, None, :] - zw[None, :, :]) ** 2).sum(-1).argmin(axis=1)
    assert (nearest == np.arange(len(W))).mean() >= 0.8


def test_mp4_stereo_48k_is_mixed_to_mono_like_a_wav():
    y, sr = _speech("03-01-06-01-01-01-05")
    stereo = np.stack([y, 0.5 * y], axis=1)
    s16 = np.round(stereo * 32767).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, s16, sr, format="WAV", subtype="PCM_16")
    mp4 = load_audio(mux_mp4(s16.astype(np.float32) / 32767, sr, "alac"), 16000, video=True)
    np.testing.assert_allclose(mp4, load_audio(buf.getvalue(), 16000), atol=1e-6)


def test_mp4_without_audio_or_with_silence_has_no_audio():
    from emotion.core.errors import NoAudioError

    with pytest.raises(NoAudioError, match="no audio track"):
        load_audio(mux_mp4(np.zeros(1), 16000, video=True, audio=False), 22050, video=True)
    with pytest.raises(NoAudioError, match="silent"):
        load_audio(mux_mp4(np.zeros(48000, np.float32), 48000, video=True), 22050, video=True)
    with pytest.raises(RejectedInput, match="audio is silent"):  # a silent WAV stays a plain reject
        load_audio(_wav(np.zeros(22050, np.float32), 22050), 22050)


def _wav(y: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV")
    return buf.getvalue()


def test_bad_mp4_bytes_are_decode_errors():
    from emotion.audio.decode import decode_video_audio

    with pytest.raises(DecodeError, match="empty file"):
        decode_video_audio(b"")
    with pytest.raises(DecodeError, match="cannot open video"):
        decode_video_audio(np.random.default_rng(0).bytes(5000))
    y, sr = _speech("03-01-05-02-01-01-21", duration=3.0)
    data = mux_mp4(y, sr, "aac")  # index at the end: a cut loses it
    with pytest.raises(DecodeError):
        decode_video_audio(data[: len(data) // 2])


@pytest.mark.real_data
def test_real_mp4_speech_matches_its_audio_only_recording():
    """RAVDESS AV clips carry the recording of the audio-only clip with the same id (modality 03)."""
    from emotion.audio.seed import AudioFeatureExtractor, AudioFeatureParams
    from emotion.core.errors import NoAudioError
    from tests.conftest import REAL_AUDIO, real_video_files

    ex = AudioFeatureExtractor(AudioFeatureParams())
    videos = real_video_files()
    checked = 0
    for v in videos:
        if v.name.startswith("02-"):
            with pytest.raises(NoAudioError, match="silent"):
                load_audio(v.read_bytes(), 22050, video=True)
            continue
        flac = REAL_AUDIO / v.parent.name / ("03" + v.name[2:]).replace(".mp4", ".flac")
        mp4 = ex(load_audio(v.read_bytes(), 22050, video=True))
        ref = ex(load_audio(flac.read_bytes(), 22050))
        assert np.corrcoef(mp4, ref)[0, 1] > 0.9995  # measured 0.99995-0.99998 (AAC at 48 kHz)
        checked += 1
    assert checked == 3 and len(videos) == 5
