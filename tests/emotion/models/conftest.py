"""Tiny data the model tests share: 8 separable classes, 6 actors of 32 clips each."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = np.tile(np.arange(8), 24)
    groups = np.repeat(np.arange(1, 7), 32)
    X = rng.standard_normal((len(y), 12)).astype(np.float32)
    X[:, :8] += 2.5 * np.eye(8)[y]
    return X, y, groups
