"""Where a run keeps its model file: a plain file name inside the run folder, read with a size limit."""

from __future__ import annotations

import posixpath
from typing import Any

from emotion.core.errors import ModelIntegrityError

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
