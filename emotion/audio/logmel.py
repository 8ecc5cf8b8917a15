"""The ``logmel`` feature set: a fixed-size log-mel spectrogram of each clip, for the spectrogram CNN.

Unlike the functional sets (one statistic per column), this set keeps the
time axis: ``n_mels`` log-mel band energies (dB) on ``n_frames`` frames of
``hop_length`` samples, a window of ``n_frames * hop_length / sample_rate``
seconds (2.4 s by default) centred on the *active* part of the clip (from the
first to the last frame within ``top_db`` of the loudest; RAVDESS clips carry
about a second of silence around the speech). A window reaching past either
end of the clip is filled with each band's quietest value in the clip, the
clip's own background level. A longer active part is cropped, never
time-stretched, so speaking rate stays a cue.

The vector is the spectrogram in band-major order: column
``logmel_bMM_tTTT`` is band ``MM`` (1 = lowest) at frame ``TTT``, so
``vector.reshape(n_mels, n_frames)`` gives the image back
(:meth:`LogMelParams.image_shape`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import librosa
import numpy as np

from emotion.core.errors import RejectedInput, UsageError
from emotion.core.params import HashedParams


@dataclass(frozen=True)
class LogMelParams(HashedParams):
    """Everything that changes the values of the ``logmel`` spectrograms."""

    name: str = "logmel"
    sample_rate: int = 16000
    n_fft: int = 1024  # 64 ms analysis window
    hop_length: int = 640  # 40 ms between frames
    n_mels: int = 40
    n_frames: int = 60  # 60 x 40 ms = 2.4 s
    fmin: float = 50.0
    fmax: float = 8000.0
    top_db: float = 40.0  # active part: frames within top_db of the loudest
    revision: int = 1

    def __post_init__(self) -> None:
        if self.sample_rate < 8000 or self.n_fft < 64 or self.hop_length < 1 or self.n_mels < 8 or self.n_frames < 8:
            raise UsageError("logmel parameters out of range (sample_rate, n_fft, hop_length, n_mels, n_frames)")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise UsageError(f"logmel band {self.fmin}-{self.fmax} Hz is not within 0 and the Nyquist frequency")

    @property
    def min_frames(self) -> int:
        return 3  # enough to find an active part; the window is padded to n_frames

    @property
    def image_shape(self) -> tuple[int, int]:
        """(bands, frames) of the spectrogram a vector reshapes to."""
        return self.n_mels, self.n_frames

    def feature_names(self) -> list[str]:
        return [f"logmel_b{b:02d}_t{t:03d}" for b in range(1, self.n_mels + 1) for t in range(self.n_frames)]


@lru_cache(maxsize=8)
def _mel(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)


def centred_window(active: tuple[int, int], n_frames: int) -> tuple[int, int]:
    """The ``n_frames`` frame indices [start, stop) centred on the active part [first, stop); may exceed the clip."""
    a0, a1 = active
    start = (a0 + a1) // 2 - n_frames // 2
    return start, start + n_frames


class LogMelExtractor:
    """Turns mono samples at ``params.sample_rate`` into the flattened ``logmel`` spectrogram."""

    def __init__(self, params: LogMelParams) -> None:
        self.params = params
        self.names = params.feature_names()
        self._mel = _mel(params.sample_rate, params.n_fft, params.n_mels, params.fmin, params.fmax)

    def spectrogram(self, y: np.ndarray) -> np.ndarray:
        """The (n_mels, n_frames) log-mel window of ``y``, in dB."""
        p = self.params
        n_frames = 1 + len(y) // p.hop_length
        if n_frames < p.min_frames:
            raise RejectedInput(f"clip too short: {len(y) / p.sample_rate:.3f} s gives {n_frames} frames, "
                                f"at least {p.min_frames} needed")
        power = np.abs(librosa.stft(y, n_fft=p.n_fft, hop_length=p.hop_length, center=True))[:, :n_frames] ** 2
        logmel = librosa.power_to_db(self._mel @ power, ref=1.0, amin=1e-10, top_db=None)
        energy = 10 * np.log10(power.sum(axis=0) + 1e-20)
        active = np.flatnonzero(energy >= energy.max() - p.top_db)
        start, stop = centred_window((int(active[0]), int(active[-1]) + 1), p.n_frames)
        out = np.repeat(logmel.min(axis=1, keepdims=True), p.n_frames, axis=1)
        lo, hi = max(start, 0), min(stop, n_frames)
        out[:, lo - start: hi - start] = logmel[:, lo:hi]
        return out

    def __call__(self, y: np.ndarray) -> np.ndarray:
        out = self.spectrogram(y).reshape(-1).astype(np.float32)
        if not np.isfinite(out).all():
            raise RejectedInput("features are not finite (NaN or inf)")
        return out
