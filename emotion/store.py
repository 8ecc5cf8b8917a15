"""The output store: Parquet tables and run folders under one root.

Layout (``OUT`` is a local folder or an fsspec URL)::

    OUT/features/audio/<set>-<hash>/part-<time>-<id>.parquet  one row per clip
    OUT/features/audio/<set>-<hash>/params.json               the feature parameters
    OUT/frames/<set>-<hash>/part-<time>-<id>.parquet           one row per kept video frame (PNG)
    OUT/manifest/<modality>.parquet                           every input seen by the last run
    OUT/rejects/<modality>.parquet                            file, reason, stage, time
    OUT/manifest/no_audio.parquet                             clips without audio (video-only mp4s): path, reason
    OUT/runs/<split-id>/<model>/<version>/                    one trained model and its evaluation

Every file is written under a temporary name and renamed into place (a single
PUT on object stores), so a crash never leaves a partial file that a later
read picks up. A run folder counts as complete only once its ``run.json``,
written last, is there.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from emotion.errors import StoreError

# Columns that identify a clip; every row of every table carries them.
KEY_COLUMNS = ("path", "content_hash")
LABEL_COLUMNS = (
    "actor", "gender", "modality", "vocal_channel", "emotion", "emotion_label",
    "intensity", "statement", "repetition",
)
REJECT_SCHEMA = pa.schema([
    ("path", pa.string()), ("reason", pa.string()), ("stage", pa.string()), ("time", pa.timestamp("ms", tz="UTC")),
])
TMP_PREFIX = ".tmp-"


def _now_ms() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").floor("ms")


@dataclass
class Store:
    """Read and write the pipeline's outputs under ``url``."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        self.root = self.root.rstrip("/") or "/"
        if self.is_local:
            self.root = os.path.abspath(self.root)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def url_of(self, path: str) -> str:
        """``path`` as a user passes it: a local path, or a URL with its protocol."""
        if self.is_local:
            return path
        proto = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{proto}://{path}"

    # -- writing ---------------------------------------------------------
    def write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` atomically (temp name, then rename).

        A full disk, a read-only store or missing permissions raise
        :class:`StoreError` naming the file; what was there stays intact.
        """
        try:
            self._write_bytes(path, data)
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise StoreError(f"cannot write {self.url_of(path)}: {reason}") from None

    def _write_bytes(self, path: str, data: bytes) -> None:
        parent = posixpath.dirname(path)
        if self.is_local:
            os.makedirs(parent, exist_ok=True)
            tmp = posixpath.join(parent, f"{TMP_PREFIX}{uuid.uuid4().hex}-{posixpath.basename(path)}")
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        else:  # one PUT is atomic on object stores
            self.fs.pipe_file(path, data)

    def write_json(self, path: str, obj: Any) -> None:
        self.write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())

    def write_table(self, path: str, table: pa.Table) -> None:
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        self.write_bytes(path, buf.getvalue())

    def remove_stale_temporaries(self, folder: str, older_than: float) -> int:
        """Delete temporary files that writers killed before ``older_than`` (a time.time()) left behind."""
        if not self.is_local or not os.path.isdir(folder):
            return 0  # object stores write in one PUT: no temporaries
        n = 0
        for name in os.listdir(folder):
            p = os.path.join(folder, name)
            if name.startswith(TMP_PREFIX) and os.path.getmtime(p) < older_than:
                os.unlink(p)
                n += 1
        return n

    def remove(self, paths: Iterable[str]) -> None:
        for p in paths:
            if self.fs.exists(p):
                self.fs.rm_file(p)

    # -- reading ---------------------------------------------------------
    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def read_json(self, path: str) -> Any:
        try:
            return json.loads(self.fs.cat_file(path))
        except FileNotFoundError:
            raise StoreError(f"{path} does not exist") from None

    def list_parts(self, folder: str) -> list[str]:
        """Parquet parts in ``folder``, oldest first (part names sort by time)."""
        self.fs.invalidate_cache(folder)  # object stores cache listings; parts come and go
        if not self.fs.isdir(folder):
            return []
        names = [p for p in self.fs.ls(folder, detail=False) if p.endswith(".parquet")]
        return sorted((p for p in names if not posixpath.basename(p).startswith(TMP_PREFIX)),
                      key=posixpath.basename)

    def read_parts(self, parts: list[str], columns: list[str] | None = None) -> pd.DataFrame:
        frames = []
        for p in parts:
            with self.fs.open(p, "rb") as fh:
                t = pq.read_table(fh, columns=columns)
            frames.append(t.to_pandas().assign(_part=posixpath.basename(p)))
        if not frames:
            return pd.DataFrame(columns=[*(columns or []), "_part"])
        return pd.concat(frames, ignore_index=True)

    def read_table(self, path: str) -> pd.DataFrame | None:
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "rb") as fh:
            return pq.read_table(fh).to_pandas()

    # -- datasets: features/audio, frames ------------------------------------
    def dataset_dir(self, dataset: str, key: str) -> str:
        """``OUT/<dataset>/<key>``, e.g. ``features/audio/seed-<hash>`` or ``frames/full256-every20-<hash>``."""
        return self.path(dataset, key)

    def features_dir(self, modality: str, key: str) -> str:
        return self.dataset_dir(f"features/{modality}", key)

    @staticmethod
    def new_part_name() -> str:
        return f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"

    def read_dataset(self, dataset: str, key: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Current rows of a dataset: for each clip path, the rows of its newest part.

        A clip has one row in ``features/*`` and one per kept frame in ``frames``.
        """
        folder = self.dataset_dir(dataset, key)
        cols = None if columns is None else list(dict.fromkeys(["path", *columns]))
        df = self.read_parts(self.list_parts(folder), columns=cols)
        if df.empty:
            raise StoreError(f"no {dataset} rows for {key} under {self.url} (run `emotion extract` first)")
        newest = df.groupby("path")["_part"].transform("max")
        df = df[df["_part"] == newest].drop(columns="_part")
        return df.sort_values("path", kind="stable", ignore_index=True)

    def read_features(self, modality: str, key: str) -> pd.DataFrame:
        """Current feature rows: one per clip path (the newest wins)."""
        return self.read_dataset(f"features/{modality}", key)

    def dataset_keys(self, dataset: str, key: str) -> pd.DataFrame:
        """``path``, ``content_hash`` and ``_part`` of every stored row (cheap)."""
        return self.read_parts(self.list_parts(self.dataset_dir(dataset, key)), columns=list(KEY_COLUMNS))

    def feature_keys(self, modality: str, key: str) -> pd.DataFrame:
        return self.dataset_keys(f"features/{modality}", key)

    # -- rejects and manifest ----------------------------------------------
    def write_rejects(self, modality: str, rows: list[dict[str, Any]]) -> None:
        table = pa.Table.from_pylist(
            [{"path": r["path"], "reason": r["reason"], "stage": r["stage"], "time": r.get("time") or _now_ms()}
             for r in rows], schema=REJECT_SCHEMA)
        self.write_table(self.path("rejects", f"{modality}.parquet"), table)

    def read_rejects(self, modality: str) -> pd.DataFrame:
        df = self.read_table(self.path("rejects", f"{modality}.parquet"))
        return df if df is not None else REJECT_SCHEMA.empty_table().to_pandas()

    def write_no_audio(self, rows: list[dict[str, Any]]) -> None:
        """``manifest/no_audio.parquet``: clips of the last audio run that have no audio, with the reason (not rejects)."""
        table = pa.Table.from_pylist(
            [{"path": r["path"], "reason": r["reason"], "stage": r["stage"], "time": r.get("time") or _now_ms()}
             for r in rows], schema=REJECT_SCHEMA)
        self.write_table(self.path("manifest", "no_audio.parquet"), table)

    def read_no_audio(self) -> pd.DataFrame:
        df = self.read_table(self.path("manifest", "no_audio.parquet"))
        return df if df is not None else REJECT_SCHEMA.empty_table().to_pandas()

    def write_manifest(self, modality: str, df: pd.DataFrame) -> None:
        self.write_table(self.path("manifest", f"{modality}.parquet"), pa.Table.from_pandas(df, preserve_index=False))

    # -- runs ---------------------------------------------------------------
    def run_dir(self, split_id: str, model: str, version: str) -> str:
        return self.path("runs", split_id, model, version)

    def run_complete(self, run_dir: str) -> bool:
        return self.exists(posixpath.join(run_dir, "run.json"))
