"""Extraction as plain functions: inventory, plan, and one chunk of work.

The orchestration layers call these; they never import Prefect or Dask, so a
Dask worker running :func:`extract_audio_chunk` needs only this package.

1. :func:`take_inventory` lists the clips under a data root, validates their
   ids, and hashes their content. Files that fail here become rejects.
2. :func:`plan_extraction` compares the inventory with the rows already in the
   store: clips whose ``(path, content_hash)`` is stored are skipped, the rest
   are processed, and rows of deleted or changed clips are marked stale.
3. :func:`extract_audio_chunk` decodes a chunk of clips, computes features,
   and writes one Parquet part; bad clips come back as rejects.

The audio step reads ``.wav``, ``.flac`` and the audio track of ``.mp4``
clips. A clip without audio is not a reject: video-only clips (modality 02,
whose track is silent) are set aside at inventory without decoding, and an
mp4 whose track is missing or silent is set aside at decoding; both are
listed as ``no_audio`` with a reason, and their frames are extracted as usual.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emotion.audio.decode import load_audio
from emotion.audio.seed import AudioFeatureParams
from emotion.core.errors import InvalidIdError, NoAudioError, RejectedInput
from emotion.core.ids import Modality, RavdessId, parse_id
from emotion.core.params import stable_hash
from emotion.featuresets import Extractor, FeatureParams, make_extractor
from emotion.store.sources import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, DataRoot, content_hash, extension
from emotion.store.store import LABEL_COLUMNS, Store, label_fields, params_metadata
from emotion.video.frames import FrameParams, encode_png, sample_frames
from emotion.video.landmarks import encode_landmarks


@dataclass(frozen=True)
class ClipRef:
    """One clip to process: its path under the data root and content hash."""

    path: str
    content_hash: str


@dataclass
class Inventory:
    clips: list[tuple[ClipRef, RavdessId, int]] = field(default_factory=list)  # (ref, id, size)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    no_audio: list[dict[str, Any]] = field(default_factory=list)  # clips without audio (not rejects)

    def manifest(self) -> pd.DataFrame:
        rows = [{"path": r.path, "content_hash": r.content_hash, "size": size, **rid.labels()}
                for r, rid, size in self.clips]
        cols = ["path", "content_hash", "size", *LABEL_COLUMNS]
        return pd.DataFrame(rows, columns=cols)


def printable(name: str) -> str:
    """``name`` as valid UTF-8 text: bytes of a non-UTF-8 file name (surrogate escapes) are shown as ``\\xNN``."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def reject(path: str, reason: str, stage: str) -> dict[str, Any]:
    return {"path": printable(path), "reason": " ".join(printable(reason).split()), "stage": stage}


@dataclass(frozen=True)
class Step:
    """One kind of extraction: which files it takes, what it computes, where rows go.

    ``audio``: ``.wav``/``.flac`` clips and the audio track of ``.mp4`` clips
    -> one feature row per clip in ``features/audio``; ``video``: ``.mp4`` clips -> one row per kept frame
    in ``frames``. Both are keyed by the parameters' hash.
    """

    modality: str
    params: FeatureParams | FrameParams
    chunk_size: int

    @property
    def dataset(self) -> str:
        return "features/audio" if self.modality == "audio" else "frames"

    @property
    def extensions(self) -> frozenset[str]:
        return AUDIO_EXTENSIONS | VIDEO_EXTENSIONS if self.modality == "audio" else VIDEO_EXTENSIONS

    @property
    def key(self) -> str:
        return self.params.key

    def accept(self, rid: RavdessId) -> str | None:
        if self.modality == "video" and rid.modality == Modality.AUDIO_ONLY:
            return f"an mp4 named as audio-only (modality 03) in {rid.stem}: expected modality 01 or 02"
        return None

    def absent(self, relpath: str, rid: RavdessId) -> str | None:
        """Why a valid clip has nothing for this step (not a reject), or None."""
        if self.modality == "audio" and extension(relpath) in VIDEO_EXTENSIONS and rid.modality == Modality.VIDEO_ONLY:
            return NO_AUDIO_VIDEO_ONLY
        return None


NO_AUDIO_VIDEO_ONLY = "no audio: video-only clip (modality 02)"


def audio_step(params: FeatureParams | None = None, chunk_size: int = 40) -> Step:
    return Step("audio", params or AudioFeatureParams(), chunk_size)


def video_step(params: FrameParams | None = None, chunk_size: int = 6) -> Step:
    return Step("video", params or FrameParams(), chunk_size)


def take_inventory(
    root: DataRoot,
    extensions: Iterable[str] = AUDIO_EXTENSIONS,
    accept: Callable[[RavdessId], str | None] | None = None,
    absent: Callable[[str, RavdessId], str | None] | None = None,
) -> Inventory:
    """Discover, validate and hash every clip; problems become rejects.

    ``accept`` may refuse a valid id with a reason (e.g. a modality this
    step does not handle). ``absent`` may set a valid clip aside with a
    reason, unread and not as a reject (a video-only clip has no audio). Of two files with the same id, the first by path
    is kept and the other rejected.
    """
    inv = Inventory()
    seen: dict[str, str] = {}
    by_content: dict[str, str] = {}  # content hash -> the clip that has it (one recording under two ids)
    for cand in root.discover(extensions):
        if printable(cand.relpath) != cand.relpath:  # the store keeps UTF-8 text only
            inv.rejects.append(reject(cand.relpath, "file name is not valid UTF-8", "discover"))
            continue
        if cand.problem:
            inv.rejects.append(reject(cand.relpath, cand.problem, "discover"))
            continue
        try:
            rid = parse_id(cand.relpath)
        except InvalidIdError as exc:
            inv.rejects.append(reject(cand.relpath, str(exc), "id"))
            continue
        why = accept(rid) if accept else None
        if why:
            inv.rejects.append(reject(cand.relpath, why, "id"))
            continue
        none = absent(cand.relpath, rid) if absent else None
        if none:
            inv.no_audio.append(reject(cand.relpath, none, "id"))
            continue
        if rid.stem in seen:
            inv.rejects.append(reject(cand.relpath, f"duplicate id {rid.stem}: already given by {seen[rid.stem]}", "id"))
            continue
        try:
            data = root.read_bytes(cand.relpath)
        except RejectedInput as exc:
            inv.rejects.append(reject(cand.relpath, exc.reason, "read"))
            continue
        digest = content_hash(data)
        if data and digest in by_content:  # (empty files are rejected at decoding, each for itself)
            inv.rejects.append(reject(cand.relpath, f"same recording as {by_content[digest]} (identical content "
                                                    "under another id)", "id"))
            continue
        seen[rid.stem] = cand.relpath
        by_content[digest] = cand.relpath
        inv.clips.append((ClipRef(cand.relpath, digest), rid, len(data)))
    return inv


@dataclass
class Plan:
    """What a run does: which clips to process, what is stale in the store."""

    todo: list[ClipRef]
    skipped: int
    removed: list[str]  # paths whose rows go because the clip is gone
    stale_parts: dict[str, set[tuple[str, str]]]  # part -> (path, hash) rows to drop
    drop_parts: list[str]  # parts to delete whole (full rebuild)


def plan_extraction(inventory: Inventory, stored: pd.DataFrame, *, full: bool = False) -> Plan:
    """Diff the inventory against the stored ``(path, content_hash, _part)`` rows."""
    current = {ref.path: ref for ref, _, _ in inventory.clips}
    wanted = {(r.path, r.content_hash) for r in current.values()}
    have = set(zip(stored["path"], stored["content_hash"], strict=True)) if len(stored) else set()
    have_keys = {(p, h) for p, h in have}
    if full:
        parts = sorted(set(stored["_part"])) if len(stored) else []
        stored_paths = set(stored["path"]) if len(stored) else set()
        return Plan(list(current.values()), 0, sorted(stored_paths - set(current)), {}, parts)
    todo = [r for r in current.values() if (r.path, r.content_hash) not in have_keys]
    stale: dict[str, set[tuple[str, str]]] = {}
    for p, h, part in zip(stored["path"], stored["content_hash"], stored["_part"], strict=True):
        if (p, h) not in wanted:
            stale.setdefault(part, set()).add((p, h))
    stored_paths = {p for p, _ in have_keys}
    removed = sorted(stored_paths - set(current))
    return Plan(todo, len(current) - len(todo), removed, stale, [])


def duplicate_rows(stored: pd.DataFrame) -> dict[str, set[tuple[str, str]]]:
    """Rows of a clip that also has rows in a newer part, by part.

    They appear when a chunk ran twice (its worker died after writing, and
    Dask ran it again elsewhere) or a killed run is resumed; dropping them
    leaves every clip in exactly one part.
    """
    if stored.empty:
        return {}
    newest = stored.groupby("path")["_part"].transform("max")
    older = stored[stored["_part"] != newest]
    out: dict[str, set[tuple[str, str]]] = {}
    for p, h, part in zip(older["path"], older["content_hash"], older["_part"], strict=True):
        out.setdefault(part, set()).add((p, h))
    return out


def data_version(clips: Iterable[ClipRef]) -> str:
    """The version of a data snapshot: a hash of every clip's path and content hash (8 hex digits).

    Extraction records it beside the features it writes, so the runs that
    read them name the same version as the extraction that wrote them.
    """
    return stable_hash(sorted({(r.path, r.content_hash) for r in clips}), 8)


def chunked(items: Sequence[ClipRef], size: int) -> list[list[ClipRef]]:
    size = max(1, size)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


@dataclass
class ChunkResult:
    part: str | None
    processed: int  # clips that gave rows
    rejects: list[dict[str, Any]]
    seconds: float
    worker: str
    no_audio: list[dict[str, Any]] = field(default_factory=list)  # mp4s whose audio track is missing or silent


@lru_cache(maxsize=4)
def _extractor(params: FeatureParams) -> Extractor:
    """The extractor of ``params``' feature set, built once per process (filter banks are cached)."""
    return make_extractor(params)


@lru_cache(maxsize=4)
def _root(url: str) -> DataRoot:
    return DataRoot(url)


@lru_cache(maxsize=4)
def _store(url: str) -> Store:
    return Store(url)


def feature_schema(params: FeatureParams) -> pa.Schema:
    fields = label_fields() + [pa.field(n, pa.float32()) for n in params.column_names()]
    return pa.schema(fields, metadata=params_metadata(params))


def frame_schema(params: FrameParams) -> pa.Schema:
    fields = label_fields() + [
        pa.field("frame_index", pa.int32()), pa.field("time", pa.float32()),
        pa.field("face_found", pa.bool_()),  # null when no face detection was asked for
        pa.field("face_x", pa.int32()), pa.field("face_y", pa.int32()),
        pa.field("face_w", pa.int32()), pa.field("face_h", pa.int32()),
        pa.field("height", pa.int16()), pa.field("width", pa.int16()),
        pa.field("image", pa.binary()),  # PNG, 8-bit gray
    ]
    if params.landmarks:  # the face's 468 landmarks in the aligned crop (x, y as shares of its side), float16
        fields.append(pa.field("landmarks", pa.binary()))
    return pa.schema(fields, metadata=params_metadata(params))


def audio_row(root: DataRoot, ref: ClipRef, extractor: Extractor) -> dict[str, Any]:
    """Decode one clip and compute its feature row; raises RejectedInput."""
    rid = parse_id(ref.path)
    data = root.read_bytes(ref.path)
    y = load_audio(data, extractor.params.sample_rate, video=extension(ref.path) in VIDEO_EXTENSIONS)
    vec = extractor(y)
    row: dict[str, Any] = {"path": ref.path, "content_hash": content_hash(data), **rid.labels()}
    row.update(zip(extractor.names, vec.tolist(), strict=True))
    return row


def frame_rows(root: DataRoot, ref: ClipRef, params: FrameParams) -> list[dict[str, Any]]:
    """Decode one video clip into rows of kept frames; raises RejectedInput."""
    rid = parse_id(ref.path)
    data = root.read_bytes(ref.path)
    base = {"path": ref.path, "content_hash": content_hash(data), **rid.labels()}
    rows = []
    for f in sample_frames(data, params):
        x, y, w, h = f.face_box or (None, None, None, None)
        row = {**base, "frame_index": f.index, "time": f.time, "face_found": f.face_found,
               "face_x": x, "face_y": y, "face_w": w, "face_h": h,
               "height": f.image.shape[0], "width": f.image.shape[1], "image": encode_png(f.image)}
        if params.landmarks:
            row["landmarks"] = None if f.landmarks is None else encode_landmarks(f.landmarks)
        rows.append(row)
    if not rows:
        raise RejectedInput("video has no frames to keep")
    return rows


def extract_chunk(step: Step, clips: Sequence[ClipRef], data_url: str, store_url: str, run_tag: str = "",
                  on_clip: Callable[[int], None] | None = None) -> ChunkResult:
    """Process ``clips`` for ``step`` and write their rows as one Parquet part (temporaries tagged ``run_tag``).

    ``on_clip(n)`` is called after each clip with the number of clips of the chunk done so far (processed,
    rejected or without audio), so that progress can move with clips rather than chunks.
    """
    t0 = time.perf_counter()
    root, store = _root(data_url), _store(store_url)
    rows: list[dict[str, Any]] = []
    rejects = []
    no_audio = []
    n_ok = 0
    for ref in clips:
        try:
            if isinstance(step.params, FrameParams):
                rows.extend(frame_rows(root, ref, step.params))
            else:
                rows.append(audio_row(root, ref, _extractor(step.params)))
            n_ok += 1
        except NoAudioError as exc:
            no_audio.append(reject(ref.path, f"no audio: {exc.reason}", "decode"))
        except RejectedInput as exc:
            rejects.append(reject(ref.path, exc.reason, "decode"))
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop the others
            rejects.append(reject(ref.path, f"unexpected {type(exc).__name__}: {exc}", "decode"))
        if on_clip is not None:
            on_clip(n_ok + len(rejects) + len(no_audio))
    part = None
    if rows:
        schema = frame_schema(step.params) if isinstance(step.params, FrameParams) else feature_schema(step.params)
        table, bad = _to_table(rows, schema)
        rejects.extend(bad)
        n_ok -= len({r["path"] for r in bad})
        if table.num_rows:
            part = f"{store.dataset_dir(step.dataset, step.key)}/{Store.new_part_name()}"
            store.write_table(part, table, tag=run_tag)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    return ChunkResult(part, n_ok, rejects, time.perf_counter() - t0, worker, no_audio)


def _to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> tuple[pa.Table, list[dict[str, Any]]]:
    """The rows as one table; a clip whose rows Arrow cannot store becomes a reject instead of sinking the chunk."""
    try:
        return pa.Table.from_pylist(rows, schema=schema), []
    except (pa.ArrowException, UnicodeError, ValueError, TypeError, OverflowError):
        pass
    good: list[dict[str, Any]] = []
    why: dict[str, str] = {}
    for r in rows:
        try:
            pa.Table.from_pylist([r], schema=schema)
            good.append(r)
        except (pa.ArrowException, UnicodeError, ValueError, TypeError, OverflowError) as exc:
            why.setdefault(r["path"], f"cannot store its row: {type(exc).__name__}")
    good = [r for r in good if r["path"] not in why]
    return pa.Table.from_pylist(good, schema=schema), [reject(p, w, "store") for p, w in why.items()]


def extract_audio_chunk(
    clips: Sequence[ClipRef], data_url: str, store_url: str, params: FeatureParams
) -> ChunkResult:
    """Compute audio features for ``clips`` and write them as one Parquet part."""
    return extract_chunk(audio_step(params), clips, data_url, store_url)


def compact(store: Store, folder: str, stale: dict[str, set[tuple[str, str]]]) -> int:
    """Rewrite each part in ``stale`` without the listed rows; returns rows dropped."""
    dropped = 0
    for name, keys in sorted(stale.items()):
        path = f"{folder}/{name}"
        with store.fs.open(path, "rb") as fh:
            table = pq.read_table(fh)
        keep = np.array([(p, h) not in keys for p, h in zip(
            table["path"].to_pylist(), table["content_hash"].to_pylist(), strict=True)], dtype=bool)
        dropped += int((~keep).sum())
        if keep.any():
            store.write_table(f"{folder}/{Store.new_part_name()}", table.filter(pa.array(keep)))
        store.remove([path])
    return dropped
