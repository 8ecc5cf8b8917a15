"""Reading finished runs back: their metrics and their verified model."""

from __future__ import annotations

import posixpath
from typing import Any

from sklearn.base import BaseEstimator

from emotion.errors import ModelIntegrityError, StoreError
from emotion.persist import load_model
from emotion.store import Store

MAX_MODEL_BYTES = 2 << 30  # a model file is never read past this (checked from its size first)


def model_file_path(run_dir: str, record: Any, where: str | None = None) -> str:
    """The model file named in ``run.json``: a plain file name inside the run folder, nothing else.

    A name with a folder in it (``../../etc/hostname``, ``/etc/hostname``) is refused.
    """
    where = where or run_dir
    name = record.get("file") if isinstance(record, dict) else None
    if not isinstance(name, str) or not name:
        raise ModelIntegrityError(f"{where}: run.json records no model file")
    if name in (".", "..", "run.json") or "/" in name or "\\" in name or "\x00" in name:
        raise ModelIntegrityError(f"{where}: run.json names the model file {name!r}, which is not a file of "
                                  "the run folder; refusing it")
    return posixpath.join(run_dir, name)


def load_run(store: Store, run_dir: str) -> tuple[BaseEstimator, dict[str, Any]]:
    """The model of a complete run folder (hash-checked) and its ``run.json``."""
    if not store.run_complete(run_dir):
        raise StoreError(f"{run_dir} is not a complete run (no run.json)")
    info = store.read_json(posixpath.join(run_dir, "run.json"))
    record = info.get("model_file") if isinstance(info, dict) else None
    path = model_file_path(run_dir, record)
    data = store.read_limited(path, MAX_MODEL_BYTES)
    return load_model(data, record or {}, source=path), info
