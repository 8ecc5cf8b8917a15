"""Speaker normalisation: standardise each speaker's features over that speaker's own clips.

Actors differ in pitch, timbre and level far more than one actor's emotions
do; subtracting each speaker's mean and dividing by their standard deviation
(per feature) removes much of that. It uses no labels, so it is applied alike
to training and test speakers, and inside cross-validation it leaks nothing:
a held-out actor is normalised only with statistics of their own clips.

At prediction time the statistics come from a group of clips of one speaker
(the more, and the more varied in emotion, the better). Without such a group
the fallback is the pooled statistics of the training clips, which removes
no speaker effect: :func:`normalize_for_prediction` says which was used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from emotion.core.errors import UsageError

EPS = 1e-6


@dataclass(frozen=True)
class Stats:
    """Per-feature mean and standard deviation."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray) -> Stats:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) == 0:
            raise UsageError("speaker statistics need a non-empty 2-D feature matrix")
        std = X.std(axis=0)
        # a feature constant for this speaker (or a single clip) is centred, not scaled
        return cls(X.mean(axis=0), np.where(std > EPS, std, 1.0))

    def apply(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Stats:
        return cls(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64))


def speaker_standardize(X: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """``X`` with every speaker's rows standardised by that speaker's own mean and std (labels unused)."""
    X = np.asarray(X)
    speakers = np.asarray(speakers)
    if len(X) != len(speakers):
        raise UsageError(f"{len(X)} feature rows but {len(speakers)} speaker ids")
    out = np.empty(X.shape, dtype=np.float32)
    for s in np.unique(speakers):
        rows = speakers == s
        out[rows] = Stats.of(X[rows]).apply(X[rows])
    return out


def normalize_for_prediction(
    X: np.ndarray, fallback: Stats, *, same_speaker: bool, min_clips: int = 8
) -> tuple[np.ndarray, str]:
    """Normalise clips to predict; returns the matrix and the mode used.

    ``same_speaker``: the rows are clips of one speaker. With at least
    ``min_clips`` of them, they are standardised by their own statistics
    (``"speaker"``); otherwise by ``fallback``, the pooled training
    statistics (``"global-fallback"``), which does not remove the speaker's
    own offsets and so is less accurate.
    """
    if same_speaker and len(X) >= min_clips:
        return Stats.of(X).apply(X), "speaker"
    return fallback.apply(X), "global-fallback"
