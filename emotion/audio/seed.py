"""Audio features: the baseline recipe as a typed, hashable parameter set.

The ``seed`` feature set is the baseline: audio loaded at 22050 Hz, 13 MFCC
with their first and second deltas, each summarised over frames by mean, max,
min and std, plus the same four statistics of the RMS energy.

:class:`AudioFeatureExtractor` computes exactly what
``librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13)``, ``librosa.feature.delta`` and
``librosa.feature.rms(y=y)`` give, but builds the mel filter bank once per
process instead of on every call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import librosa
import numpy as np

from emotion.core.errors import RejectedInput, UsageError
from emotion.core.params import HashedParams

STATS = ("mean", "max", "min", "std")
_STAT_FUNCS: dict[str, Callable[..., Any]] = {"mean": np.mean, "max": np.max, "min": np.min, "std": np.std}


@dataclass(frozen=True)
class AudioFeatureParams(HashedParams):
    """Everything that changes the values of the audio features.

    Its :meth:`hash` names the feature set in the store; change any field (or
    ``revision``, when the code's output changes) and features are recomputed.
    """

    name: str = "seed"
    sample_rate: int = 22050
    n_mfcc: int = 13
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    delta_width: int = 9
    stats: tuple[str, ...] = STATS
    rms: bool = True
    revision: int = 1

    def __post_init__(self) -> None:
        unknown = [s for s in self.stats if s not in _STAT_FUNCS]
        if unknown:
            raise UsageError(f"unknown statistic(s) {unknown}; choose from {list(_STAT_FUNCS)}")
        if self.n_mfcc < 1 or self.sample_rate < 1000 or self.hop_length < 1 or self.n_fft < 16:
            raise UsageError("feature parameters out of range (n_mfcc, sample_rate, hop_length, n_fft)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stats"] = list(self.stats)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AudioFeatureParams:
        d = dict(d)
        d["stats"] = tuple(d.get("stats", STATS))
        return cls(**d)

    @property
    def min_frames(self) -> int:
        return self.delta_width

    def feature_names(self) -> list[str]:
        names: list[str] = []
        for kind in ("", "_delta", "_delta2"):
            for i in range(1, self.n_mfcc + 1):
                names.extend(f"mfcc{i:02d}{kind}_{s}" for s in self.stats)
        if self.rms:
            names.extend(f"rms_{s}" for s in self.stats)
        return names


FEATURE_SETS: dict[str, AudioFeatureParams] = {"seed": AudioFeatureParams()}


@lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)


class AudioFeatureExtractor:
    """Turns mono samples at ``params.sample_rate`` into one feature vector."""

    def __init__(self, params: AudioFeatureParams) -> None:
        self.params = params
        self.names = params.feature_names()
        self._mel = _mel_basis(params.sample_rate, params.n_fft, params.n_mels)

    def frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.params.hop_length

    def mfcc(self, y: np.ndarray) -> np.ndarray:
        p = self.params
        power = np.abs(librosa.stft(y, n_fft=p.n_fft, hop_length=p.hop_length)) ** 2
        log_mel = librosa.power_to_db(self._mel @ power)
        return librosa.feature.mfcc(S=log_mel, n_mfcc=p.n_mfcc)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        p = self.params
        n_frames = self.frames(y.shape[-1])
        if n_frames < p.min_frames:
            raise RejectedInput(
                f"clip too short: {y.shape[-1] / p.sample_rate:.3f} s gives {n_frames} frames, "
                f"at least {p.min_frames} needed"
            )
        mfcc = self.mfcc(y)
        blocks = [mfcc, librosa.feature.delta(mfcc, width=p.delta_width),
                  librosa.feature.delta(mfcc, width=p.delta_width, order=2)]
        parts = [np.stack([_STAT_FUNCS[s](b, axis=1) for s in p.stats], axis=1).reshape(-1) for b in blocks]
        if p.rms:
            rms = librosa.feature.rms(y=y, frame_length=p.n_fft, hop_length=p.hop_length)[0]
            parts.append(np.array([_STAT_FUNCS[s](rms) for s in p.stats]))
        out = np.concatenate(parts).astype(np.float32)
        if not np.isfinite(out).all():
            raise RejectedInput("features are not finite (NaN or inf)")
        return out
