"""Step 3 of extraction: one chunk of clips read, hashed and turned into one Parquet part (on a Dask worker)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from emotion.audio.decode import band_limited, load_audio_rate
from emotion.core.errors import DamagedPartError, EmotionError, NoAudioError, RejectedInput, StorageReadError
from emotion.core.ids import parse_id
from emotion.extract.inventory import UNEXPECTED, ClipRef, Step, audio_step, reject
from emotion.featuresets import Extractor, FeatureParams, make_extractor
from emotion.store.sources import VIDEO_EXTENSIONS, DataRoot, StorageOutage, content_hash, extension
from emotion.store.store import Store, label_fields, params_metadata
from emotion.video.frames import FrameParams, encode_png, sample_frames
from emotion.video.landmarks import FACES_DETECTED_TYPE, TRACK_SWITCHED_TYPE, encode_landmarks


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
    band_limited: list[dict[str, Any]] = field(default_factory=list)  # clips recorded below the features' rate
    # the reads the data root's storage failed in a row, after their retries (the flow adds them up: StorageOutage)
    storage: StorageOutage = field(default_factory=StorageOutage)


@lru_cache(maxsize=4)
def _extractor(params: FeatureParams) -> Extractor:
    """The extractor of ``params``' feature set, built once per process (filter banks are cached)."""
    return make_extractor(params)


@lru_cache(maxsize=4)
def _cached_root(url: str) -> DataRoot:
    return DataRoot(url)


def _root(url: str) -> DataRoot:
    """The data root, opened where the chunk runs: on a Dask worker, a process (and often a machine) of its own,
    whose environment may lack what the command's had (credentials, endpoint, a mounted folder)."""
    try:
        return _cached_root(url)
    except Exception as exc:  # noqa: BLE001 - whatever the cause, it is named
        cause = str(exc) if isinstance(exc, EmotionError) else f"{type(exc).__name__}: {exc}"
        raise EmotionError(
            f"the data root {url!r} cannot be opened on {socket.gethostname()} (pid {os.getpid()}), where its clips "
            f"are processed: {cause}; every Dask worker needs it under the same path or URL, and for object storage "
            "the same credentials and endpoint in its environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
            "AWS_DEFAULT_REGION, FSSPEC_S3_ENDPOINT_URL) as the command") from None


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
        fields.append(pa.field("faces_detected", FACES_DETECTED_TYPE))  # faces in the frame (the crop follows one)
        fields.append(pa.field("track_switched", TRACK_SWITCHED_TYPE))  # the clip's track switched person here
    return pa.schema(fields, metadata=params_metadata(params))


def audio_row(root: DataRoot, ref: ClipRef, extractor: Extractor, data: bytes | None = None,
              notes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Decode one clip (``data``: its bytes, if already read) and compute its feature row; raises RejectedInput.
    A clip recorded below the features' sample rate is kept, with a note appended to ``notes``."""
    rid = parse_id(ref.path)
    data = root.read_bytes(ref.path) if data is None else data
    y, recorded = load_audio_rate(data, extractor.params.sample_rate, video=extension(ref.path) in VIDEO_EXTENSIONS)
    band = band_limited(recorded, extractor.params.sample_rate)
    if band is not None and notes is not None:
        notes.append({"path": ref.path, "sample_rate": recorded, "features_rate": extractor.params.sample_rate,
                      "note": band})
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
            row["faces_detected"] = f.faces
            row["track_switched"] = f.track_switched
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
    rejects: list[dict[str, Any]] = []
    no_audio: list[dict[str, Any]] = []
    hashes: dict[str, str] = {}
    band: list[dict[str, Any]] = []
    n_ok = unchanged = 0
    outage = StorageOutage()
    for ref in clips:
        if outage.down:  # the storage is down: the clips left are not tried (their stored rows are kept)
            rejects.append(reject(ref.path, outage.not_tried(), UNEXPECTED))
            if on_clip is not None:
                on_clip(n_ok + unchanged + len(rejects) + len(no_audio))
            continue
        try:
            data = root.read_bytes(ref.path, outage)
            hashes[ref.path] = digest = content_hash(data)
            if ref.stored_hash == digest:
                unchanged += 1
            elif isinstance(step.params, FrameParams):
                rows.extend(frame_rows(root, ref, step.params, data))
                n_ok += 1
            else:
                rows.append(audio_row(root, ref, _extractor(step.params), data, band))
                n_ok += 1
        except NoAudioError as exc:
            no_audio.append(reject(ref.path, f"no audio: {exc.reason}", "decode"))
        except StorageReadError as exc:  # the storage failed, not the file: its rows are kept, read again next run
            rejects.append(reject(ref.path, exc.reason, UNEXPECTED))
        except RejectedInput as exc:
            rejects.append(reject(ref.path, exc.reason, "read" if ref.path not in hashes else "decode"))
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop the others
            rejects.append(reject(ref.path, f"unexpected {type(exc).__name__}: {exc}", UNEXPECTED))
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
    stored = {r["path"] for r in rows} - {r["path"] for r in rejects}
    return ChunkResult(part, n_ok, rejects, time.perf_counter() - t0, worker, no_audio, hashes, unchanged,
                       [b for b in band if b["path"] in stored], outage)


def not_read(clips: Sequence[ClipRef], outage: StorageOutage) -> list[dict[str, Any]]:
    """The rejects of ``clips`` left unread, the data root's storage being down (``outage``): like a failed read,
    their stored rows are kept and the next run reads them."""
    return [reject(ref.path, outage.not_tried(), UNEXPECTED) for ref in clips]


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


def compact(store: Store, folder: str, stale: dict[str, set[tuple[str, str]]],
            damaged: list[str] | None = None) -> int:
    """Rewrite each part in ``stale`` without the listed rows; returns rows dropped.

    A part found damaged on reading it whole is removed, not copied (its
    other clips, no longer stored, are recomputed by the next extraction) and
    appended to ``damaged`` when a list is given.
    """
    dropped = 0
    for name, keys in sorted(stale.items()):
        path = f"{folder}/{name}"
        try:
            table = store.read_part(path)
        except DamagedPartError:
            store.remove([path])
            if damaged is not None:
                damaged.append(path)
            continue
        keep = np.array([(p, h) not in keys for p, h in zip(
            table["path"].to_pylist(), table["content_hash"].to_pylist(), strict=True)], dtype=bool)
        dropped += int((~keep).sum())
        if keep.any():
            store.write_table(f"{folder}/{Store.new_part_name()}", table.filter(pa.array(keep)))
        store.remove([path])
    return dropped
