"""Reading finished runs back: their metrics and their verified model."""

from __future__ import annotations

import posixpath
from typing import Any

from sklearn.base import BaseEstimator

from emotion.errors import StoreError
from emotion.persist import load_model
from emotion.store import Store


def load_run(store: Store, run_dir: str) -> tuple[BaseEstimator, dict[str, Any]]:
    """The model of a complete run folder (hash-checked) and its ``run.json``."""
    if not store.run_complete(run_dir):
        raise StoreError(f"{run_dir} is not a complete run (no run.json)")
    info = store.read_json(posixpath.join(run_dir, "run.json"))
    record = info["model_file"]
    path = posixpath.join(run_dir, record["file"])
    with store.fs.open(path, "rb") as fh:
        data = fh.read()
    return load_model(data, record, source=path), info
