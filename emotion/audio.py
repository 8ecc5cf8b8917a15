"""Decoding audio bytes into mono float32 at a target sample rate.

Matches ``librosa.load(path, sr=target)``: soundfile decodes, channels are
averaged, and soxr (``soxr_hq``) resamples.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
import soxr

from emotion.errors import DecodeError, RejectedInput

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


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """Decode WAV/FLAC bytes to ``(samples[frames, channels] float32, sample_rate)``."""
    if not data:
        raise DecodeError("empty file (0 bytes)")
    cut = wav_truncation(data)
    if cut:
        raise DecodeError(cut)
    try:
        info = sf.info(io.BytesIO(data))
        if info.samplerate and info.frames / info.samplerate > MAX_SECONDS:
            raise RejectedInput(f"audio is {info.frames / info.samplerate:.0f} s long, over the limit of {MAX_SECONDS:.0f} s")
        y, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        msg = str(exc).splitlines()[-1] if str(exc) else type(exc).__name__
        raise DecodeError(f"cannot decode audio: {msg}") from None
    if y.shape[0] == 0:
        raise DecodeError("audio has no samples")
    if not np.isfinite(y).all():
        raise DecodeError("audio contains NaN or infinite samples")
    return y, int(sr)


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


def load_audio(data: bytes, target_sr: int) -> np.ndarray:
    """Mono float32 samples at ``target_sr``; rejects silent audio."""
    y, sr = decode_audio(data)
    mono = resample(to_mono(y), sr, target_sr)
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    if peak < SILENCE_PEAK:
        raise RejectedInput(f"audio is silent (peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS)")
    return mono
