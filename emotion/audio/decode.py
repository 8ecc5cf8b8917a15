"""Decoding audio bytes into mono float32 at a target sample rate.

Matches ``librosa.load(path, sr=target)``: soundfile decodes, channels are
averaged, and soxr (``soxr_hq``) resamples.

The audio track of an mp4 (AAC in RAVDESS audio-video clips) is decoded in
process by PyAV (FFmpeg inside the wheel; no system ffmpeg), then mixed to mono
and resampled exactly like a WAV, so it goes through the same feature code.
"""

from __future__ import annotations

import io
import re

import numpy as np
import soundfile as sf
import soxr

from emotion.core.errors import DecodeError, NoAudioError, RejectedInput
from emotion.core.media import ffmpeg_reason, open_container

SILENCE_PEAK = 1e-4  # -80 dBFS: quieter than any usable recording
MAX_SECONDS = 600.0  # longer recordings are refused before they are decoded (memory bound)


def wav_truncation(data: bytes) -> str | None:
    """Why a RIFF/WAVE file is cut off, or None: its ``data`` chunk declares more bytes than follow.

    libsndfile reads such a file as a shorter, valid one; the header tells the truth.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"data":
            available = len(data) - pos - 8
            if size != 0xFFFFFFFF and available < size:  # 0xFFFFFFFF: size unknown (streamed)
                return f"WAV is cut off: {available} of its {size} data bytes are present"
            return None
        pos += 8 + size + (size & 1)
    return "WAV has no data chunk"


def flac_samples(data: bytes) -> int | None:
    """The number of samples per channel a FLAC file's STREAMINFO declares (0: not said), None when ``data`` is no
    FLAC file (no ``fLaC`` at its start, after an ID3v2 tag if any); raises :class:`DecodeError` when the file
    ends inside its header (its metadata blocks), which libsndfile names only as ``Internal psf_fseek() failed``."""
    pos = 0
    if data[:3] == b"ID3" and len(data) >= 10:  # an ID3v2 tag before the stream: its size is synchsafe
        pos = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(data[6:10])) + (10 if data[5] & 0x10 else 0)
    if data[pos : pos + 4] != b"fLaC":
        return None
    pos += 4
    total = None
    while True:
        if pos + 4 > len(data):
            break
        kind, size = data[pos] & 0x7F, int.from_bytes(data[pos + 1 : pos + 4], "big")
        if pos + 4 + size > len(data):
            break
        if kind == 0 and size >= 18:  # STREAMINFO: the total samples are the 36 bits after rate, channels, depth
            total = int.from_bytes(data[pos + 4 + 13 : pos + 4 + 18], "big") & 0xFFFFFFFFF
        if data[pos] & 0x80:  # the last metadata block
            if total is None:
                raise DecodeError("not a complete FLAC file: it has no STREAMINFO block")
            return total
        pos += 4 + size
    raise DecodeError(f"not a complete FLAC file: it ends inside its header ({len(data)} bytes)")


def flac_damage(data: bytes, total: int) -> str:
    """Why a FLAC file that libsndfile stopped reading (lost sync, failed seek) is unusable: how many of its
    ``total`` declared samples decode before it stops."""
    got = 0
    try:
        with sf.SoundFile(io.BytesIO(data)) as fh:
            while True:
                block = fh.read(1024, dtype="float32")  # small blocks: the count stops near where decoding did
                if not len(block):
                    break
                got += len(block)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError):
        pass
    if not got:
        return f"not a complete FLAC file: none of its {total or 'declared'} samples decode ({len(data)} bytes)"
    of = f" of its {total}" if total else ""
    return f"FLAC is damaged or cut off: the decoder loses sync after {got}{of} samples"


def other_format(data: bytes) -> str | None:
    """What a file that libsndfile cannot read holds, when its first bytes say (an mp4 named .wav): None if unsure."""
    if data[4:8] == b"ftyp":
        return "an mp4 (ISO media) file: name it .mp4"
    if data[:4] == b"OggS":
        return "an Ogg file"
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0 and (data[1] >> 1) & 3 == 1:  # MPEG Layer III
        return "an MP3 file"  # (not an ID3 tag, which may lead a FLAC file too)
    return None


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """Decode WAV/FLAC bytes to ``(samples[frames, channels] float32, sample_rate)``."""
    if not data:
        raise DecodeError("empty file (0 bytes)")
    cut = wav_truncation(data)
    if cut:
        raise DecodeError(cut)
    flac = flac_samples(data)  # a FLAC file cut inside its header is named here
    try:
        info = sf.info(io.BytesIO(data))
        if info.samplerate and info.frames / info.samplerate > MAX_SECONDS:
            raise RejectedInput(f"audio is {info.frames / info.samplerate:.0f} s long, over the limit of {MAX_SECONDS:.0f} s")
        y, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        if flac is not None:  # libsndfile's words ("flac decoder lost sync", "Internal psf_fseek() failed") say little
            raise DecodeError(flac_damage(data, flac)) from None
        if (kind := other_format(data)) is not None:  # libsndfile says "Format not recognised"
            raise DecodeError(f"cannot decode audio: not WAV or FLAC but {kind}") from None
        msg = str(exc).splitlines()[-1] if str(exc) else type(exc).__name__
        msg = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", msg).strip() or type(exc).__name__
        raise DecodeError(f"cannot decode audio: {msg}") from None
    if y.shape[0] == 0:
        raise DecodeError("audio has no samples")
    if not np.isfinite(y).all():
        raise DecodeError("audio contains NaN or infinite samples")
    return y, int(sr)


_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


def _frame_samples(frame: object) -> np.ndarray:
    """One decoded PyAV audio frame as float32 ``[samples, channels]`` in [-1, 1]."""
    a = np.asarray(frame.to_ndarray())  # type: ignore[attr-defined]
    fmt = frame.format  # type: ignore[attr-defined]
    channels = len(frame.layout.channels)  # type: ignore[attr-defined]
    a = a.reshape(channels, -1) if fmt.is_planar else a.reshape(-1, channels).T
    base = fmt.name.rstrip("p")
    if base in _INT_SCALE:
        offset = 128.0 if base == "u8" else 0.0
        return ((a.astype(np.float64) - offset) / _INT_SCALE[base]).astype(np.float32).T
    return a.astype(np.float32).T


def decode_video_audio(data: bytes) -> tuple[np.ndarray, int]:
    """Decode the first audio track of a video container (mp4) to ``(samples[frames, channels] float32, rate)``.

    Encoder priming is dropped by FFmpeg (the mp4 edit list) and the padding of
    the last AAC frame is cut to the track's declared duration, so the samples
    line up with the audio that was encoded. Raises :class:`NoAudioError` when
    the clip has no audio track, :class:`DecodeError` when it cannot be read.
    """
    import av

    container = open_container(data)
    with container:
        if not container.streams.audio:
            raise NoAudioError("no audio track in the clip")
        stream = container.streams.audio[0]
        stream.codec_context.thread_type = "NONE"  # type: ignore[attr-defined]
        sr = int(stream.codec_context.sample_rate or stream.rate or 0)
        if sr <= 0:
            raise DecodeError("audio track has no sample rate")
        tb = float(stream.time_base) if stream.time_base else 0.0
        declared = int(round(float(stream.duration) * tb * sr)) if stream.duration and tb else 0
        if declared > MAX_SECONDS * sr:
            raise RejectedInput(f"audio is {declared / sr:.0f} s long, over the limit of {MAX_SECONDS:.0f} s")
        chunks: list[np.ndarray] = []
        total = 0
        try:
            for frame in container.decode(stream):
                chunk = _frame_samples(frame)
                chunks.append(chunk)
                total += chunk.shape[0]
                if total > MAX_SECONDS * sr:
                    raise RejectedInput(f"audio is over the limit of {MAX_SECONDS:.0f} s")
        except av.FFmpegError as exc:
            if not chunks:
                raise DecodeError(f"audio track is corrupt: {ffmpeg_reason(exc)}") from None
    if not chunks or total == 0:
        if declared:  # a track that says how long it is, but none of it decodes: the file is damaged, not silent
            raise DecodeError(f"audio track is cut off: none of its {declared} samples decode")
        raise NoAudioError("the audio track has no samples")
    y = np.concatenate(chunks, axis=0)
    if declared:
        if y.shape[0] < declared - max(2048, declared // 50):  # complete tracks decode all but the last frame's padding
            raise DecodeError(f"audio track is cut off: {y.shape[0]} of its {declared} samples decode")
        y = y[:declared]
    if not np.isfinite(y).all():
        raise DecodeError("audio contains NaN or infinite samples")
    return y, sr


def to_mono(y: np.ndarray) -> np.ndarray:
    """Average channels of a ``[frames, channels]`` array (as librosa.to_mono)."""
    if y.shape[1] == 1:
        return y[:, 0].copy()
    return np.asarray(np.mean(y, axis=1, dtype=np.float32))


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    if orig_sr == target_sr:
        return y
    out = np.asarray(soxr.resample(y, orig_sr, target_sr, quality="soxr_hq"), dtype=np.float32)
    n = int(np.ceil(y.shape[0] * target_sr / orig_sr))  # librosa's fix=True length
    if out.shape[0] > n:
        return out[:n]
    return np.pad(out, (0, n - out.shape[0])) if out.shape[0] < n else out


def load_audio(data: bytes, target_sr: int, *, video: bool = False) -> np.ndarray:
    """Mono float32 samples at ``target_sr``; rejects silent audio.

    With ``video``, ``data`` is a video container (mp4) and its audio track is
    used; a missing or silent track raises :class:`NoAudioError` (a video-only
    clip), not a plain rejection.
    """
    return load_audio_rate(data, target_sr, video=video)[0]


def band_limited(recorded_sr: int, target_sr: int) -> str | None:
    """Why audio recorded at ``recorded_sr`` lacks part of what features computed at ``target_sr`` measure (an 8 kHz
    telephone recording has nothing above 4 kHz: upsampling leaves that band empty), or None."""
    if recorded_sr >= target_sr:
        return None
    return (f"recorded at {recorded_sr} Hz, below the {target_sr} Hz its features are computed at: nothing above "
            f"{recorded_sr // 2} Hz, where full-band recordings (RAVDESS: 48000 Hz) have energy")


def load_audio_rate(data: bytes, target_sr: int, *, video: bool = False) -> tuple[np.ndarray, int]:
    """:func:`load_audio`, and the sample rate the audio was recorded at."""
    y, sr = decode_video_audio(data) if video else decode_audio(data)
    mono = resample(to_mono(y), sr, target_sr)
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    if peak < SILENCE_PEAK:
        # all samples zero: a video-only clip's track, or a file with nothing recorded; "-240 dBFS" said so obscurely
        level = "digital silence: every sample is zero" if peak == 0 else f"peak {20 * np.log10(peak):.0f} dBFS"
        if video:
            raise NoAudioError(f"the audio track is silent ({level})")
        raise RejectedInput(f"audio is silent ({level})")
    return mono, sr


LONG_INPUT_SECONDS = 30.0  # the models learn from clips of a few seconds


def unlike_speech(y: np.ndarray, sr: int) -> str | None:
    """Why mono samples look unlike the short speech clips the models are trained on, or None.

    A cheap screen, not a speech detector: a (nearly) constant signal, a
    recording much longer than a clip, or a spectrum as flat as noise's over
    most of the signal (speech and tones are far from flat).
    """
    seconds = len(y) / sr if sr else 0.0
    y0 = np.asarray(y, dtype=np.float64) - float(np.mean(y)) if len(y) else np.zeros(0)
    if not len(y0) or float(np.std(y0)) < 1e-3 * max(float(np.max(np.abs(y))), 1e-12):
        return "the signal is (nearly) constant: no speech in it"
    n = 2048
    frames = [y0[i : i + n] for i in range(0, len(y0) - n + 1, n)][:2000]
    if frames:
        power = np.abs(np.fft.rfft(np.stack(frames) * np.hanning(n), axis=1)) ** 2 + 1e-20
        energy = power.sum(axis=1)
        loud = power[energy > 0.01 * np.max(energy)]
        flatness = np.exp(np.mean(np.log(loud), axis=1)) / np.mean(loud, axis=1)
        if float(np.median(flatness)) > 0.3:
            return f"the spectrum is as flat as noise's (flatness {float(np.median(flatness)):.2f}): no speech found"
    if seconds > LONG_INPUT_SECONDS:
        return f"the input is {seconds:.0f} s long; the model was trained on clips of a few seconds"
    return None
