"""Augmented copies of each clip, stored beside its own features in one row.

A feature set with augmentation (``extended`` with ``speeds``) stores, for
every clip, its own vector followed by the vector of each copy (the clip
played faster or slower), all of the same length ``d``. A row of ``k * d``
values is thus ``k`` feature vectors of one recording:

* training: every copy is a further training example of the same actor and
  emotion (:func:`stack_copies`); actor-grouped CV keeps an actor's copies
  in one fold, and speaker normalisation of the whole row per actor
  standardises each copy with statistics of that actor's copies of the same
  kind;
* prediction: the model's class probabilities are averaged over the copies
  (``predict_copies`` in :mod:`emotion.models.tuning`, test-time augmentation).

With no copies (``k = 1``) both are the plain operation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emotion.core.errors import UsageError


def copies_of(X: np.ndarray, k: int) -> np.ndarray:
    """``X`` (rows x ``k * d``) as (``k`` x rows x ``d``): copy ``j`` of every row."""
    X = np.asarray(X)
    if k < 1 or X.ndim != 2 or X.shape[1] % k:
        raise UsageError(f"a feature matrix of {X.shape[1] if X.ndim == 2 else '?'} columns does not hold {k} copies")
    n, width = X.shape
    return X.reshape(n, k, width // k).transpose(1, 0, 2)


def stack_copies(X: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every copy as a training row: (``k * rows`` x ``d``) and the labels repeated (copy-major: the
    first ``rows`` rows are the clips themselves)."""
    c = copies_of(X, k)
    return c.reshape(-1, c.shape[2]), np.tile(np.asarray(y), k)


def speeds_text(speeds: Sequence[float]) -> str:
    """``[0.9, 1.1]`` -> ``"0.9x, 1.1x"``, as reports and model cards name the copies."""
    return ", ".join(f"{s:g}x" for s in speeds)
