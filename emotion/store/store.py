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

Only files named like the parts the store writes (:meth:`Store.new_part_name`)
count as parts; a stray ``.parquet`` file is ignored. The writer merges small
parts once there are many (:meth:`Store.merge_small_parts`). One writer at a time:
:meth:`Store.writer_lock` (:mod:`emotion.store.lock`). Readers take a snapshot: the parts are listed
once and read; when one vanishes under them (a writer compacted it), they list
again, a bounded number of times. A damaged part is named by its path. Every
page the store writes carries a CRC-32 that readers check: a part whose bytes
changed after writing (a bad disk, a partial overwrite) is named as damaged,
never read as other numbers.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath
import re
import stat
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from emotion.core import jsontext, names
from emotion.core.errors import Advice, DamagedPartError, StoreError, storage_errors, storage_reason
from emotion.store.lock import check_writable, writer_lock

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
PART_NAME = re.compile(r"^part-\d{20}-[0-9a-f]{8}\.parquet$")  # what Store.new_part_name writes
READ_RETRIES = 5  # a reader re-lists the parts this many times when one vanishes under it
# Small parts accumulate: every run with changes adds one and compaction rewrites others. Once a folder holds more
# than MAX_SMALL_PARTS parts under SMALL_PART_BYTES, the writer merges them into parts of about MERGE_TARGET_BYTES
# (sizes in the store, as listed), so what a rerun or a training reads stays a few files however many runs came before.
SMALL_PART_BYTES = 8 << 20
MAX_SMALL_PARTS = 16
MERGE_TARGET_BYTES = 32 << 20
MAX_JSON_BYTES = 16 << 20  # run.json, metrics.json, params.json...: never read past this
STORE_FILE = "store.json"  # what the store was built from (its data root)
# what to do about a store built from another data root, as the command line's options and the parameters of the
# flows that extract (extract's, the pipeline's) give it
_OTHER_ROOT = Advice("use another --out, or --replace-data to rebuild it from the new root",
                     "set out to another store, or replace_data to true to rebuild it from the new root")


def label_fields() -> list[pa.Field]:
    """The Arrow fields every per-clip table starts with: path, content hash and the RAVDESS labels."""
    fields = [pa.field("path", pa.string()), pa.field("content_hash", pa.string())]
    for c in LABEL_COLUMNS:
        fields.append(pa.field(c, pa.string() if c in ("gender", "emotion_label") else pa.int8()))
    return fields


def params_metadata(params: Any) -> dict[str, str]:
    """A table's Parquet metadata: the parameters that made it (``to_dict``) and their hash."""
    return {"emotion.params": json.dumps(params.to_dict(), sort_keys=True), "emotion.params_hash": params.hash()}


def is_part(path: str) -> bool:
    """Whether ``path`` names a part the store wrote (not a stray Parquet file, not a temporary)."""
    return bool(PART_NAME.match(posixpath.basename(path)))


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (at most 200 characters), or its type's name when it has none."""
    return (" ".join(str(exc).split()) or type(exc).__name__)[:200]


class _Watched:
    """A part's file handle that remembers a failure of the storage itself, as opposed to bytes that do not parse
    (pyarrow raises both as ``OSError``)."""

    _CALLS = frozenset({"read", "readinto", "read1", "readall", "seek", "tell", "peek"})

    def __init__(self, fh: Any) -> None:
        self._fh = fh
        self.failure: BaseException | None = None

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._fh, name)
        if name not in self._CALLS:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except Exception as exc:
                self.failure = exc
                raise

        return call


class _Vanished(Exception):
    """A part listed a moment ago is gone (a writer replaced it): list again."""


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
    def write_bytes(self, path: str, data: bytes, tag: str = "") -> None:
        """Write ``data`` to ``path`` atomically (temp name, then rename).

        ``tag`` names the run in the temporary file's name (see
        :meth:`remove_stale_temporaries`).

        A full disk, a read-only store or missing permissions raise
        :class:`StoreError` naming the file; what was there stays intact.
        """
        try:
            self._write_bytes(path, data, tag)
        except storage_errors() as exc:  # a dropped connection to object storage too (botocore's, not an OSError)
            raise StoreError(f"cannot write {self.url_of(path)}: {storage_reason(exc)}") from None

    def _write_bytes(self, path: str, data: bytes, tag: str = "") -> None:
        parent = posixpath.dirname(path)
        if self.is_local:
            os.makedirs(parent, exist_ok=True)
            tagged = f"{tag}-" if tag else ""
            tmp = posixpath.join(parent, f"{TMP_PREFIX}{tagged}{uuid.uuid4().hex}-{posixpath.basename(path)}")
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
        self.write_bytes(path, (jsontext.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())

    def write_table(self, path: str, table: pa.Table, tag: str = "") -> None:
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd", write_page_checksum=True)
        self.write_bytes(path, buf.getvalue(), tag)

    def remove_stale_temporaries(self, folder: str, older_than: float, tag: str = "") -> int:
        """Delete temporary files left behind by killed writers.

        Those older than ``older_than`` (a time.time(): when the run began)
        and those of the run ``tag`` (its writers have all finished when it
        commits, so any left were killed mid-write). Temporaries of another
        run still writing to the same store are neither.
        """
        if not self.is_local or not os.path.isdir(folder):
            return 0  # object stores write in one PUT: no temporaries
        n = 0
        mine = f"{TMP_PREFIX}{tag}-" if tag else None
        for name in os.listdir(folder):
            p = os.path.join(folder, name)
            if name.startswith(TMP_PREFIX) and ((mine and name.startswith(mine)) or os.path.getmtime(p) < older_than):
                os.unlink(p)
                n += 1
        return n

    def remove(self, paths: Iterable[str]) -> None:
        """Delete the files ``paths``, those already gone aside; in one call (an object store deletes up to
        1,000 keys per request). An object store reports no failed key of such a call: its folders are listed
        again, and a file still there raises :class:`StoreError` naming it."""
        todo = list(paths)
        if not todo:
            return
        try:
            self.fs.rm(todo)
        except FileNotFoundError:  # one of them was gone already: the rest one by one
            for p in todo:
                if self.fs.exists(p):
                    self.fs.rm_file(p)
        if self.is_local:
            return
        for parent in sorted({posixpath.dirname(p) for p in todo}):
            self.fs.invalidate_cache(parent)
            there = set(self.fs.ls(parent, detail=False)) if self.fs.isdir(parent) else set()
            left = sorted(p for p in todo if posixpath.dirname(p) == parent and p in there)
            if left:
                raise StoreError(f"cannot delete {self.url_of(left[0])}"
                                 f"{f' and {len(left) - 1} more' if len(left) > 1 else ''}: still there after deleting")

    # -- reading ---------------------------------------------------------
    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def read_limited(self, path: str, limit: int) -> bytes:
        """The bytes of a regular file of at most ``limit`` bytes; special files and larger ones are refused
        before anything is read (a FIFO would block, ``/dev/zero`` never ends)."""
        where = self.url_of(path)
        try:
            if self.is_local:
                st = os.stat(path)
                if not stat.S_ISREG(st.st_mode):
                    raise StoreError(f"{where} is not a regular file; refusing to read it")
                if st.st_size > limit:
                    raise StoreError(f"{where} is {st.st_size} bytes, over the limit of {limit}")
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
                with os.fdopen(fd, "rb") as fh:
                    data = fh.read(limit + 1)
            else:
                size = self.fs.size(path)
                if size is not None and size > limit:
                    raise StoreError(f"{where} is {size} bytes, over the limit of {limit}")
                with self.fs.open(path, "rb") as fh:
                    data = fh.read(limit + 1)
        except FileNotFoundError:
            raise StoreError(f"{where} does not exist") from None
        except IsADirectoryError:
            raise StoreError(f"{where} is a folder, not a file") from None
        except OSError as exc:
            raise StoreError(f"cannot read {where}: {exc.strerror or exc}") from None
        if len(data) > limit:
            raise StoreError(f"{where} is over the limit of {limit} bytes")
        return data

    def read_json(self, path: str) -> Any:
        """A JSON file of the store; missing, oversized or malformed files raise :class:`StoreError` naming it."""
        data = self.read_limited(path, MAX_JSON_BYTES)
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreError(f"{self.url_of(path)} is not valid JSON ({msg})") from None

    def list_parts(self, folder: str) -> list[str]:
        """The parts the store wrote in ``folder``, oldest first (part names sort by time)."""
        self.fs.invalidate_cache(folder)  # object stores cache listings; parts come and go
        if not self.fs.isdir(folder):
            return []
        return sorted((p for p in self.fs.ls(folder, detail=False) if is_part(p)), key=posixpath.basename)

    @contextlib.contextmanager
    def reading_part(self, path: str) -> Iterator[Any]:
        """A stored part, open for pyarrow to parse, with what goes wrong sorted out: a part gone raises
        ``FileNotFoundError``; the storage failing to deliver it (access denied, a timeout) a :class:`StoreError`
        "cannot read part"; bytes that do not parse or fail a page's checksum a :class:`DamagedPartError` naming
        the command that rebuilds it. Only the last kind is ever dropped and recomputed."""
        watched: _Watched | None = None
        try:
            with self.fs.open(path, "rb") as fh:
                watched = _Watched(fh)
                yield watched
        except FileNotFoundError:
            raise
        except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
            failure = exc if watched is None else watched.failure
            if isinstance(failure, FileNotFoundError):
                raise FileNotFoundError(path) from None
            if failure is not None:
                raise StoreError(f"cannot read part {self.url_of(path)}: {one_line(failure)}") from None
            raise self.damaged_part(path, exc) from None

    def _read_part(self, path: str, columns: list[str] | None, whole: bool = False,
                   optional: Mapping[str, pa.DataType] | None = None) -> pa.Table:
        """``columns`` of a part (all when None); ``whole`` reads and checks every column, then keeps ``columns``.
        ``optional``: columns (of ``columns``) that parts written before they existed lack, read as nulls of their
        type there."""
        try:
            with self.reading_part(path) as fh:
                if optional and columns is not None:
                    return self._read_with_optional(fh, columns, whole, optional)
                table = pq.read_table(fh, columns=None if whole else columns, page_checksum_verification=True)
                return table.select(columns) if whole and columns is not None else table
        except FileNotFoundError:
            raise _Vanished(path) from None

    @staticmethod
    def _read_with_optional(fh: Any, columns: list[str], whole: bool, optional: Mapping[str, pa.DataType]) -> pa.Table:
        pf = pq.ParquetFile(fh, page_checksum_verification=True)
        absent = {c for c in optional if c in columns and c not in pf.schema_arrow.names}
        present = [c for c in columns if c not in absent]
        table = pf.read(columns=None if whole else present)
        table = table.select(present)
        for c in absent:
            table = table.append_column(pa.field(c, optional[c]), pa.nulls(table.num_rows, optional[c]))
        return table.select(columns)

    def read_part(self, path: str) -> pa.Table:
        """One part, every column, each page's checksum checked (a damaged part raises :class:`StoreError`)."""
        try:
            return self._read_part(path, None)
        except _Vanished:
            raise FileNotFoundError(path) from None

    def damaged_part(self, path: str, exc: BaseException) -> DamagedPartError:
        """The error for a part whose bytes do not read back, naming it, the reason and the command that rebuilds
        it (``--verify`` reads every part whole: a plain rerun reads only the key columns, which may be intact; a
        landmark table is read whole by any extraction of its frames)."""
        folder = posixpath.dirname(path)
        dataset, key = posixpath.relpath(posixpath.dirname(folder), self.root), posixpath.basename(folder)
        if dataset == "features/video":
            fix = names.extract_run(dataset, key, self.url, self._data_root(), self.recorded_params(folder))
            return DamagedPartError(f"damaged part {self.url_of(path)}: {one_line(exc)} ({fix} measures it again)",
                                    advice=fix)
        fix = names.extract_run(dataset, key, self.url, self._data_root(), self.recorded_params(folder), verify=True)
        return DamagedPartError(f"damaged part {self.url_of(path)}: {one_line(exc)} ({fix} drops it and recomputes "
                                "its clips)", advice=fix)

    def read_parts(self, parts: list[str], columns: list[str] | None = None, *,
                   damaged: list[str] | None = None, whole: bool = False,
                   optional: Mapping[str, pa.DataType] | None = None) -> pd.DataFrame:
        """Rows of ``parts`` with their part's name in ``_part``.

        A damaged part raises :class:`StoreError` naming it, or, when a list is
        given as ``damaged``, is skipped and appended to it. A part that is gone
        raises ``FileNotFoundError`` (see :meth:`read_snapshot`). ``whole``
        reads every column of each part, one part at a time, to find damage
        outside ``columns`` too. ``optional``: columns of ``columns`` that older parts may lack (read as nulls).
        """
        frames = []
        for p in parts:
            try:
                t = self._read_part(p, columns, whole, optional)
            except _Vanished:
                raise FileNotFoundError(p) from None
            except DamagedPartError:
                if damaged is None:
                    raise
                damaged.append(p)
                continue
            frames.append(t.to_pandas().assign(_part=posixpath.basename(p)))
        if not frames:
            return pd.DataFrame(columns=[*(columns or []), "_part"])
        return pd.concat(frames, ignore_index=True)

    def read_snapshot(self, folder: str, columns: list[str] | None = None, *,
                      damaged: list[str] | None = None, whole: bool = False,
                      optional: Mapping[str, pa.DataType] | None = None) -> pd.DataFrame:
        """Rows of every part of ``folder``, as listed at one moment.

        A writer may replace parts meanwhile (compaction); when a listed part is
        gone, the folder is listed again, up to :data:`READ_RETRIES` times.
        """
        for attempt in range(READ_RETRIES):
            seen: list[str] = []
            try:
                df = self.read_parts(self.list_parts(folder), columns, damaged=seen if damaged is not None else None,
                                     whole=whole, optional=optional)
            except FileNotFoundError:
                time.sleep(0.05 * (attempt + 1))
                continue
            if damaged is not None:
                damaged.extend(seen)
            return df
        raise StoreError(f"the parts of {self.url_of(folder)} kept changing while being read "
                         f"({READ_RETRIES} tries); another process is rewriting the store, try again")

    def read_table(self, path: str) -> pd.DataFrame | None:
        if not self.fs.exists(path):
            return None
        try:
            with self.fs.open(path, "rb") as fh:
                return pq.read_table(fh, page_checksum_verification=True).to_pandas()
        except FileNotFoundError:
            return None
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise StoreError(f"damaged table {self.url_of(path)}: {one_line(exc)}") from None

    # -- datasets: features/audio, frames ------------------------------------
    def dataset_dir(self, dataset: str, key: str) -> str:
        """``OUT/<dataset>/<key>``, e.g. ``features/audio/seed-<hash>`` or ``frames/full256-every20-<hash>``."""
        return self.path(dataset, key)

    def features_dir(self, modality: str, key: str) -> str:
        return self.dataset_dir(f"features/{modality}", key)

    def merge_small_parts(self, folder: str, *, small: int = SMALL_PART_BYTES, most: int = MAX_SMALL_PARTS,
                          target: int = MERGE_TARGET_BYTES) -> int:
        """Merge the parts of ``folder`` under ``small`` bytes into parts of about ``target`` bytes (as listed),
        once there are more than ``most`` of them; the number of parts merged (0: nothing to do).

        Readers see the same rows before, during and after: a merged part
        takes, from each part it merges, only the rows of the clips whose
        newest part that is (older duplicates, which a writer killed after
        writing can leave, are dropped, not revived), and it is written under
        a new name before any part it holds is removed; those are removed
        together at the end. Parts are merged oldest first, a run of equal
        schemas at a time (a part written by an older version keeps its own).
        A damaged part is left as it is (readers name it), and one that
        vanished is skipped.
        """
        self.fs.invalidate_cache(folder)
        if not self.fs.isdir(folder):
            return 0
        sizes = {str(e["name"]): int(e.get("size") or 0) for e in self.fs.ls(folder, detail=True)
                 if is_part(str(e["name"])) and e.get("type") == "file"}
        smalls = sorted((p for p, n in sizes.items() if n < small), key=posixpath.basename)
        if len(smalls) <= most:
            return 0
        # each clip's newest part (by name, over every part, the large ones too): the rule readers apply
        keys = self.read_snapshot(folder, columns=["path"], damaged=[])
        newest = keys.groupby("path")["_part"].max().to_dict() if len(keys) else {}
        merged: list[str] = []
        batch: list[tuple[str, pa.Table]] = []
        size = 0

        def flush() -> None:
            nonlocal size
            if len(batch) > 1:
                table = pa.concat_tables([t for _, t in batch])
                if table.num_rows:  # (rows that were all superseded need no part)
                    self.write_table(f"{folder}/{Store.new_part_name()}", table)
                merged.extend(p for p, _ in batch)
            batch.clear()
            size = 0

        for p in smalls:
            try:
                table = self._read_part(p, None)
            except (_Vanished, StoreError):
                continue
            if batch and not table.schema.equals(batch[0][1].schema, check_metadata=True):
                flush()
            name = posixpath.basename(p)
            mine = [newest.get(path) == name for path in table.column("path").to_pylist()]
            batch.append((p, table if all(mine) else table.filter(pa.array(mine, pa.bool_()))))
            size += sizes[p]
            if size >= target:
                flush()
        flush()
        self.remove(merged)
        return len(merged)

    @staticmethod
    def new_part_name() -> str:
        return f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"

    def _data_root(self) -> str:
        """The data root ``store.json`` records (``DATA`` where none is recorded or it does not read)."""
        with contextlib.suppress(StoreError, OSError, AttributeError, TypeError):
            return str(self.read_json(self.path(STORE_FILE)).get("data_root") or "DATA")
        return "DATA"

    def recorded_params(self, folder: str) -> dict[str, Any]:
        """The ``params.json`` of a dataset's folder (empty where it is missing or does not read)."""
        with contextlib.suppress(StoreError, OSError, AttributeError, TypeError, ValueError):
            return dict(self.read_json(f"{folder}/params.json"))
        return {}

    def read_dataset(self, dataset: str, key: str, columns: list[str] | None = None, *,
                     requested: Mapping[str, Any] | None = None,
                     optional: Mapping[str, pa.DataType] | None = None) -> pd.DataFrame:
        """Current rows of a dataset: for each clip path, the rows of its newest part.

        A clip has one row in ``features/*`` and one per kept frame in ``frames``. ``requested``: the parameters
        asked for, as ``params.json`` records them (``{"params": ...}``), so that the error when none are stored
        names the extraction that writes them. ``optional``: columns of ``columns`` that parts written before they
        existed lack, read as nulls there.
        """
        folder = self.dataset_dir(dataset, key)
        cols = None if columns is None else list(dict.fromkeys(["path", *columns]))
        df = self.read_snapshot(folder, columns=cols, optional=optional)
        if df.empty:
            advice = self._extract_advice(dataset, key, requested)
            raise StoreError(f"no {dataset} rows for {key} under {self.url} ({advice})", advice=advice)
        newest = df.groupby("path")["_part"].transform("max")
        df = df[df["_part"] == newest].drop(columns="_part")
        return df.sort_values("path", kind="stable", ignore_index=True)

    def _extract_advice(self, dataset: str, key: str, requested: Mapping[str, Any] | None = None) -> Advice:
        """The extraction that writes ``key`` (``extended-<hash>``) with the ``requested`` parameters from the
        recorded data root, and the sets of ``dataset`` that are stored, with the options that read them: a bare
        `emotion train` reads the seed set, and a run's default stores extended with --augment. As a served run
        does it: the extract flow and its parameters, and the parameters that read a stored set."""
        first = names.extract_advice(dataset, key, self.url, self._data_root(), requested)
        asked = names.feature_options(dataset, key, requested) if requested is not None else None
        stored: list[tuple[str, str]] = []
        if dataset.startswith("features/"):
            with contextlib.suppress(OSError):
                for folder in sorted(self.fs.ls(self.path(dataset), detail=False)):
                    other = posixpath.basename(folder)
                    if other == key or not self.list_parts(folder):
                        continue
                    options = names.feature_option_list(dataset, other, self.recorded_params(folder))
                    if " ".join(o.cli for o in options) == asked:
                        same = f"{other} (the same options, written by another version)"
                        stored.append((same, same))
                    else:
                        stored.append((f"{other} (give {' '.join(o.cli for o in options)})",
                                       f"{other} (set {', '.join(o.served for o in options)})"))
        cli, served = (f"; stored: {', '.join(s[i] for s in stored)}" if stored else "" for i in (0, 1))
        return Advice(f"{first.cli}{cli}", f"{first.served}{served}")

    def read_features(self, modality: str, key: str, requested: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Current feature rows: one per clip path (the newest wins); ``requested`` as for :meth:`read_dataset`."""
        return self.read_dataset(f"features/{modality}", key, requested=requested)

    def dataset_keys(self, dataset: str, key: str, damaged: list[str] | None = None,
                     whole: bool = False) -> pd.DataFrame:
        """``path``, ``content_hash`` and ``_part`` of every stored row (cheap: only these columns are read).

        With a list as ``damaged``, damaged parts are skipped and listed there
        (extraction recomputes their clips and deletes them). ``whole`` reads
        every column of every part, so that damage anywhere in a part is found
        (``extract --verify``).
        """
        return self.read_snapshot(self.dataset_dir(dataset, key), columns=list(KEY_COLUMNS), damaged=damaged,
                                  whole=whole)

    def feature_keys(self, modality: str, key: str, damaged: list[str] | None = None,
                     whole: bool = False) -> pd.DataFrame:
        return self.dataset_keys(f"features/{modality}", key, damaged, whole)

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

    def read_manifest(self, modality: str) -> pd.DataFrame | None:
        """The last extraction's manifest of ``modality`` as written by :meth:`write_manifest`; None without one."""
        return self.read_table(self.path("manifest", f"{modality}.parquet"))

    # -- runs ---------------------------------------------------------------
    def run_dir(self, split_id: str, model: str, version: str) -> str:
        return self.path("runs", split_id, model, version)

    def run_complete(self, run_dir: str) -> bool:
        return self.exists(posixpath.join(run_dir, "run.json"))

    def run_reusable(self, run_dir: str) -> bool:
        """A complete run whose ``run.json`` and ``metrics.json`` read and whose model file is there."""
        if not self.run_complete(run_dir):
            return False
        try:
            info = self.read_json(posixpath.join(run_dir, "run.json"))
            self.read_json(posixpath.join(run_dir, "metrics.json"))
            name = str((info.get("model_file") or {}).get("file") or "")
        except (StoreError, AttributeError):
            return False
        return bool(name) and posixpath.basename(name) == name and self.exists(posixpath.join(run_dir, name))

    # -- one writer at a time, and the data root ------------------------------
    def writer_lock(self, what: str = "extract") -> contextlib.AbstractContextManager[None]:
        """Hold the store's writer lock for the block, or raise :class:`StoreError` saying who holds it
        (:func:`emotion.store.lock.writer_lock`)."""
        return writer_lock(self.fs, self.root, self.url, self.is_local, what)

    def check_writable(self) -> None:
        """Raise :class:`StoreError` naming the file when the store cannot be written
        (:func:`emotion.store.lock.check_writable`)."""
        check_writable(self.fs, self.root, self.url, self.is_local)

    def check_data_root(self, data_url: str, *, replace: bool = False, origin: str | None = None) -> None:
        """Record the data root the store is built from; refuse another one unless ``replace``.

        Extraction keeps only the clips of the data root it reads, so another root
        would silently drop the first one's rows; it is refused instead. ``origin``
        (:mod:`emotion.core.provenance`: synthetic or recorded) is recorded beside it.
        """
        path = self.path(STORE_FILE)
        if self.exists(path) and not replace:
            try:
                known = str(self.read_json(path).get("data_root") or "")
            except (StoreError, AttributeError):
                known = ""
            if known and known != data_url:
                raise StoreError(f"the store {self.url} was built from {known}, not {data_url}: extracting another "
                                 f"data root would drop its rows; {_OTHER_ROOT}", advice=_OTHER_ROOT)
        self.write_json(path, {"data_root": data_url, **({"data_origin": origin} if origin else {})})

    def data_origin(self) -> str:
        """Where the clips of the last extraction came from, as ``store.json`` records it (synthetic, recorded;
        ``unknown`` for a store from before it was recorded; :mod:`emotion.core.provenance`)."""
        from emotion.core.provenance import origin_of

        path = self.path(STORE_FILE)
        try:
            return origin_of(self.read_json(path)) if self.exists(path) else origin_of(None)
        except (StoreError, AttributeError):
            return origin_of(None)
