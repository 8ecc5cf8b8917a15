"""Extraction as plain functions: inventory, plan, and one chunk of work.

The orchestration layers call these; they never import Prefect or Dask, so a
Dask worker running :func:`extract_audio_chunk` needs only this package.

1. :func:`take_inventory` lists the clips under a data root and validates
   their ids. Given the previous run's manifest (``known``), a clip whose
   listing fingerprint (size and modification time, or ETag) is unchanged
   keeps its recorded content hash and is not read; a new or changed clip is
   left unhashed, for the worker that processes it. Without ``known``
   (``--verify``) every clip is read and hashed here. Files that fail here
   become rejects.
2. :func:`plan_extraction` compares the inventory with the rows already in the
   store: clips whose ``(path, content_hash)`` is stored are skipped, the rest
   (and every clip of unknown hash) are processed, and rows of deleted or
   changed clips are marked stale.
3. :func:`extract_chunk` reads a chunk of clips, hashes each one, computes
   features (unless the hash shows the stored row is still current) and
   writes one Parquet part; bad clips come back as rejects, and every clip
   read comes back with its hash.
4. :func:`manifest_frame` records every clip with its fingerprint, hash and
   outcome, for the next run's inventory.

The audio step reads ``.wav``, ``.flac`` and the audio track of ``.mp4``
clips. A clip without audio is not a reject: video-only clips (modality 02,
whose track is silent) are set aside at inventory without decoding, and an
mp4 whose track is missing or silent is set aside at decoding; both are
listed as ``no_audio`` with a reason, and their frames are extracted as usual.
"""

from __future__ import annotations

import dataclasses
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
    """One clip to process: its path under the data root and content hash.

    ``content_hash`` is None when it is not known yet (a new clip, or one whose listing fingerprint ``meta``
    changed): the worker that reads the clip hashes it. ``stored_hash`` is the hash of the clip's row in the
    store, if any: a worker that finds the same hash leaves that row as it is instead of recomputing it.
    """

    path: str
    content_hash: str | None = None
    meta: str = ""
    stored_hash: str | None = None


OK, REJECTED, NO_AUDIO = "ok", "rejected", "no_audio"
MANIFEST_COLUMNS = ["path", "content_hash", "size", "meta", "status", "reason", "stage", "params_key", *LABEL_COLUMNS]


@dataclass
class Inventory:
    clips: list[tuple[ClipRef, RavdessId, int]] = field(default_factory=list)  # (ref, id, size)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    no_audio: list[dict[str, Any]] = field(default_factory=list)  # clips without audio (not rejects)
    # clips unchanged since a run (with the same parameters) that rejected them or found no audio in them:
    # their outcome is repeated (in ``rejects``/``no_audio`` too) without reading them again
    settled: list[tuple[ClipRef, RavdessId, int, dict[str, Any]]] = field(default_factory=list)
    read: int = 0  # clips read (and hashed) by the inventory itself: all of them without ``known``, else none
    # every clip's listing is as the previous manifest recorded it (no clip new, changed or gone): the data version
    # the last extraction recorded still holds
    unchanged_listing: bool = False

    def manifest(self) -> pd.DataFrame:
        return manifest_frame(self, {}, [], [], "")

    @property
    def unhashed(self) -> int:
        """Clips whose content hash is left to the workers."""
        return sum(ref.content_hash is None for ref, _, _ in self.clips)


def manifest_frame(inv: Inventory, hashes: dict[str, str], rejects: Sequence[dict[str, Any]],
                   no_audio: Sequence[dict[str, Any]], params_key: str) -> pd.DataFrame:
    """One row per clip that passed the inventory: path, content hash, size, listing fingerprint, outcome.

    ``hashes`` are the hashes the workers found (they win over the inventory's); ``rejects`` and ``no_audio``
    give the outcome of clips that were rejected or have no audio (``status`` ``rejected``/``no_audio`` with
    ``reason`` and ``stage``; ``ok`` otherwise). ``params_key`` names the parameters the outcomes hold for.
    """
    outcome = {r["path"]: (REJECTED, r) for r in rejects} | {r["path"]: (NO_AUDIO, r) for r in no_audio}
    rows = []
    for ref, rid, size in [*inv.clips, *((r, i, n) for r, i, n, _ in inv.settled)]:
        status, why = outcome.get(ref.path, (OK, None))
        rows.append({"path": ref.path, "content_hash": hashes.get(ref.path) or ref.content_hash, "size": size,
                     "meta": ref.meta, "status": status, "reason": why["reason"] if why else None,
                     "stage": why["stage"] if why else None, "params_key": params_key, **rid.labels()})
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def load_known(store: Store, modality: str) -> pd.DataFrame:
    """The previous run's manifest of ``modality`` (empty when there is none, or it predates fingerprints)."""
    df = store.read_table(store.path("manifest", f"{modality}.parquet"))
    if df is None or "meta" not in df.columns:
        return pd.DataFrame(columns=MANIFEST_COLUMNS)
    return df


def printable(name: str) -> str:
    """``name`` as valid UTF-8 text: bytes of a non-UTF-8 file name (surrogate escapes) are shown as ``\\xNN``."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def reject(path: str, reason: str, stage: str) -> dict[str, Any]:
    return {"path": printable(path), "reason": " ".join(printable(reason).split()), "stage": stage}


DUPLICATE_REASON = "same recording as {} (identical content under another id)"


def duplicate_reject(path: str, original: str) -> dict[str, Any]:
    """The reject of a clip whose content is that of ``original`` (one recording under two ids)."""
    return reject(path, DUPLICATE_REASON.format(original), "id")


def is_duplicate_reject(outcome: dict[str, Any]) -> bool:
    return outcome.get("stage") == "id" and str(outcome.get("reason") or "").startswith("same recording as ")


def duplicate_recordings(inv: Inventory, hashes: dict[str, str], rejected: Iterable[str]) -> list[dict[str, Any]]:
    """Rejects for clips of ``inv`` whose content is that of another clip, once every hash is known.

    The inventory compares only the hashes it knows (those of unchanged clips); a new or changed clip is hashed
    by its worker (``hashes``), so the comparison is finished here, after the workers return, without reading
    anything. As in the inventory, the first clip by path keeps the recording and the later ones are rejected
    naming it; clips already ``rejected`` and empty files take no part.
    """
    skip = set(rejected)
    by_content: dict[str, str] = {}
    out = []
    for ref, _, size in sorted(inv.clips, key=lambda c: c[0].path):
        digest = hashes.get(ref.path) or ref.content_hash
        if ref.path in skip or not size or digest is None:
            continue
        if digest in by_content:
            out.append(duplicate_reject(ref.path, by_content[digest]))
        else:
            by_content[digest] = ref.path
    return out


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
    known: pd.DataFrame | None = None,
    params_key: str | None = "",
) -> Inventory:
    """Discover and validate every clip; problems become rejects.

    ``known`` is the previous run's manifest (:func:`load_known`). A clip
    whose listing fingerprint matches its row there keeps the recorded
    content hash, unread; if that run (with parameters ``params_key``)
    rejected it or found no audio in it, the outcome is repeated, unread. A
    new or changed clip is left unhashed (the worker hashes it). With
    ``params_key`` None no outcome is repeated (``--full``). Without
    ``known`` every clip is read and hashed here (``--verify``): a change
    that keeps size and time is caught, and unreadable files are rejected.

    ``accept`` may refuse a valid id with a reason (e.g. a modality this
    step does not handle). ``absent`` may set a valid clip aside with a
    reason, unread and not as a reject (a video-only clip has no audio). Of two files with the same id, the first by path
    is kept and the other rejected.
    """
    inv = Inventory()
    seen: dict[str, str] = {}
    by_content: dict[str, str] = {}  # content hash -> the clip that has it (one recording under two ids)
    prior: dict[str, dict[str, Any]] = {}
    if known is not None and len(known):
        prior = {r["path"]: r for r in known.to_dict("records") if r.get("meta")}
    listed: set[str] = set()
    changed = False
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
        if known is None:
            try:
                data = root.read_bytes(cand.relpath)
            except RejectedInput as exc:
                inv.rejects.append(reject(cand.relpath, exc.reason, "read"))
                continue
            inv.read += 1
            ref, size = ClipRef(cand.relpath, content_hash(data), cand.meta), len(data)
        else:
            row = prior.get(cand.relpath) or {}
            same = row.get("meta") == cand.meta
            listed.add(cand.relpath)
            changed = changed or not same
            digest = row.get("content_hash") if same else None
            ref, size = ClipRef(cand.relpath, digest if isinstance(digest, str) else None, cand.meta), cand.size
            # a duplicate is not repeated from the record: whether it still is one depends on the other clip
            if (same and params_key is not None and row.get("status") in (REJECTED, NO_AUDIO)
                    and row.get("params_key") == params_key and not is_duplicate_reject(row)):
                status = row["status"]
                outcome = reject(cand.relpath, row["reason"], row.get("stage") or "decode")
                (inv.rejects if status == REJECTED else inv.no_audio).append(outcome)
                inv.settled.append((ref, rid, cand.size, outcome))
                seen[rid.stem] = cand.relpath
                continue
        if size and ref.content_hash is not None and ref.content_hash in by_content:
            # (empty files are rejected at decoding, each for itself); recorded in the manifest with its hash, so
            # that the next run rejects it again unread while both clips are unchanged
            outcome = duplicate_reject(cand.relpath, by_content[ref.content_hash])
            inv.rejects.append(outcome)
            inv.settled.append((ref, rid, size, outcome))
            continue
        seen[rid.stem] = cand.relpath
        if ref.content_hash is not None:
            by_content[ref.content_hash] = cand.relpath
        inv.clips.append((ref, rid, size))
    inv.unchanged_listing = bool(prior) and not changed and listed == set(prior)
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
    """Diff the inventory against the stored ``(path, content_hash, _part)`` rows.

    A clip of unknown hash is processed; its stored row, if any, is not marked stale here (the worker may find
    the same content): :func:`stale_rows` decides once the workers have said what they read.
    """
    current = {ref.path: ref for ref, _, _ in inventory.clips}
    have = set(zip(stored["path"], stored["content_hash"], strict=True)) if len(stored) else set()
    have_keys = {(p, h) for p, h in have}
    if full:
        parts = sorted(set(stored["_part"])) if len(stored) else []
        stored_paths = set(stored["path"]) if len(stored) else set()
        return Plan(list(current.values()), 0, sorted(stored_paths - set(current)), {}, parts)
    stored_hash = dict(zip(stored["path"], stored["content_hash"], strict=True)) if len(stored) else {}
    todo = [dataclasses.replace(r, stored_hash=stored_hash.get(r.path)) if r.content_hash is None else r
            for r in current.values() if r.content_hash is None or (r.path, r.content_hash) not in have_keys]
    unsure = {r.path for r in current.values() if r.content_hash is None}
    wanted = {(r.path, r.content_hash) for r in current.values()}
    stale = stale_rows(stored[~stored["path"].isin(unsure)] if unsure and len(stored) else stored, wanted)
    stored_paths = {p for p, _ in have_keys}
    removed = sorted(stored_paths - set(current))
    return Plan(todo, len(current) - len(todo), removed, stale, [])


def stale_rows(stored: pd.DataFrame, wanted: set[tuple[str, str | None]]) -> dict[str, set[tuple[str, str]]]:
    """Stored ``(path, content_hash)`` rows that are not ``wanted`` (deleted or changed clips), by part."""
    stale: dict[str, set[tuple[str, str]]] = {}
    for p, h, part in zip(stored["path"], stored["content_hash"], stored["_part"], strict=True):
        if (p, h) not in wanted:
            stale.setdefault(part, set()).add((p, h))
    return stale


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
    """The version of a data snapshot: a hash of every clip's path and content hash (8 hex digits; a clip whose
    hash is not known yet counts by its listing fingerprint).

    Extraction records it beside the features it writes, so the runs that
    read them name the same version as the extraction that wrote them.
    """
    return stable_hash(sorted({(r.path, r.content_hash or f"listing:{r.meta}") for r in clips}), 8)


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
    hashes: dict[str, str] = field(default_factory=dict)  # content hash of every clip read
    unchanged: int = 0  # clips read whose hash matched their stored row (a new time, the same content)


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


def audio_row(root: DataRoot, ref: ClipRef, extractor: Extractor, data: bytes | None = None) -> dict[str, Any]:
    """Decode one clip (``data``: its bytes, if already read) and compute its feature row; raises RejectedInput."""
    rid = parse_id(ref.path)
    data = root.read_bytes(ref.path) if data is None else data
    y = load_audio(data, extractor.params.sample_rate, video=extension(ref.path) in VIDEO_EXTENSIONS)
    vec = extractor(y)
    row: dict[str, Any] = {"path": ref.path, "content_hash": content_hash(data), **rid.labels()}
    row.update(zip(extractor.names, vec.tolist(), strict=True))
    return row


def frame_rows(root: DataRoot, ref: ClipRef, params: FrameParams, data: bytes | None = None) -> list[dict[str, Any]]:
    """Decode one video clip (``data``: its bytes, if already read) into rows of kept frames; raises RejectedInput."""
    rid = parse_id(ref.path)
    data = root.read_bytes(ref.path) if data is None else data
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

    Every clip read is hashed here (the result's ``hashes``); a clip whose hash is its ``stored_hash`` is
    counted ``unchanged`` and not recomputed.

    ``on_clip(n)`` is called after each clip with the number of clips of the chunk done so far (processed,
    unchanged, rejected or without audio), so that progress can move with clips rather than chunks.
    """
    t0 = time.perf_counter()
    root, store = _root(data_url), _store(store_url)
    rows: list[dict[str, Any]] = []
    rejects = []
    no_audio = []
    hashes: dict[str, str] = {}
    n_ok = unchanged = 0
    for ref in clips:
        try:
            data = root.read_bytes(ref.path)
            hashes[ref.path] = digest = content_hash(data)
            if ref.stored_hash == digest:
                unchanged += 1
            elif isinstance(step.params, FrameParams):
                rows.extend(frame_rows(root, ref, step.params, data))
                n_ok += 1
            else:
                rows.append(audio_row(root, ref, _extractor(step.params), data))
                n_ok += 1
        except NoAudioError as exc:
            no_audio.append(reject(ref.path, f"no audio: {exc.reason}", "decode"))
        except RejectedInput as exc:
            rejects.append(reject(ref.path, exc.reason, "read" if ref.path not in hashes else "decode"))
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop the others
            rejects.append(reject(ref.path, f"unexpected {type(exc).__name__}: {exc}", "decode"))
        if on_clip is not None:
            on_clip(n_ok + unchanged + len(rejects) + len(no_audio))
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
    return ChunkResult(part, n_ok, rejects, time.perf_counter() - t0, worker, no_audio, hashes, unchanged)


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
