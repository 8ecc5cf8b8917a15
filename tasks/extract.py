"""Prefect tasks of the extraction flow, generic over extraction steps (audio, video).

Chunks of clips are computed on Dask workers by
:func:`emotion.extract.extract_chunk`; the Prefect task that owns a chunk
only submits it and waits, so workers never talk to Prefect and a worker
that dies has its chunk rerun by Dask elsewhere.
"""

from __future__ import annotations

import posixpath
import threading
from collections import OrderedDict
from typing import Any

from distributed import Client
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from emotion.extract import (
    ChunkResult,
    ClipRef,
    Inventory,
    Plan,
    Step,
    compact,
    duplicate_rows,
    extract_chunk,
    plan_extraction,
    take_inventory,
)
from emotion.store.sources import DataRoot
from emotion.store.store import Store
from emotion.video.frames import FrameParams
from emotion.video.landmarks import LandmarkParams, update_landmark_features
from tasks.cluster import extract_chunk_reporting

_TAKEN: OrderedDict[tuple[str, str, str], Inventory] = OrderedDict()  # (flow run id, data, step key) -> inventory
_TAKEN_LOCK = threading.Lock()


def take_inventory_for_run(run_id: str, data: str, step: Step) -> Inventory:
    """The inventory of ``step`` under ``data``, taken once per flow run.

    The run's name needs the data version before the run begins (it is
    named from the inventory), and its ``inventory`` task needs the same
    inventory: the second call gets the first one's result instead of reading
    every clip again.
    """
    key = (run_id, data, step.key)
    with _TAKEN_LOCK:
        if key in _TAKEN:
            return _TAKEN[key]
    inv = take_inventory(DataRoot(data), step.extensions, accept=step.accept, absent=step.absent)
    with _TAKEN_LOCK:
        _TAKEN[key] = inv
        while len(_TAKEN) > 8:
            _TAKEN.popitem(last=False)
    return inv


@task(name="inventory", cache_policy=NO_CACHE, task_run_name="inventory-{step.modality}")
def inventory(data: str, step: Step, run_id: str = "") -> Inventory:
    """Discover, validate and hash the clips of ``step`` under ``data`` (once per flow run ``run_id``)."""
    inv = take_inventory_for_run(run_id, data, step) if run_id else take_inventory(
        DataRoot(data), step.extensions, accept=step.accept, absent=step.absent)
    get_run_logger().info("found %d %s clips, %d rejected before decoding", len(inv.clips), step.modality, len(inv.rejects))
    return inv


@task(name="plan", cache_policy=NO_CACHE, task_run_name="plan-{step.modality}")
def plan(inv: Inventory, out: str, step: Step, full: bool) -> Plan:
    damaged: list[str] = []
    p = plan_extraction(inv, Store(out).dataset_keys(step.dataset, step.key, damaged=damaged), full=full)
    for d in damaged:  # their clips are not counted as stored, so they are recomputed; the part goes at commit
        get_run_logger().warning("%s: damaged part %s is dropped and its clips recomputed", step.modality, d)
        p.drop_parts.append(posixpath.basename(d))
    get_run_logger().info("%s: %d clips to process, %d unchanged, %d removed", step.modality, len(p.todo), p.skipped,
                          len(p.removed))
    return p


def chunk_run_name(parameters: dict[str, Any]) -> str:
    """``extract-audio-clips-0041-0080``: what a chunk task does, by the positions of its clips in the run."""
    step, first, n = parameters["step"], parameters.get("first", 0), len(parameters["clips"])
    return f"extract-{step.modality}-clips-{first + 1:04d}-{first + n:04d}"


@task(name="extract-chunk", cache_policy=NO_CACHE, task_run_name=chunk_run_name)
def run_chunk(index: int, step: Step, clips: list[ClipRef], data: str, out: str, client: Client,
              run_tag: str = "", topic: str = "", first: int = 0) -> ChunkResult:
    """Process one chunk on a Dask worker; the worker writes the Parquet part and reports each clip on ``topic``."""
    if topic:
        future = client.submit(extract_chunk_reporting, step, clips, data, out, run_tag, topic, index, pure=False,
                               key=f"{step.modality}-chunk-{index}-{id(clips)}")
    else:
        future = client.submit(extract_chunk, step, clips, data, out, run_tag, pure=False,
                               key=f"{step.modality}-chunk-{index}-{id(clips)}")
    return future.result()


@task(name="commit", cache_policy=NO_CACHE, task_run_name="commit-{step.modality}")
def commit(out: str, step: Step, p: Plan, inv: Inventory, rejects: list[dict[str, Any]], started: float,
           no_audio: list[dict[str, Any]] | None = None, run_tag: str = "", data_version: str = "") -> int:
    """Drop stale and duplicate rows, then write the manifest, parameters and rejects table.

    For the audio step, ``no_audio`` (clips without audio: video-only mp4s,
    mp4s with a silent or missing track) is written to ``manifest/no_audio``
    and left out of the manifest, like the rejects.

    ``started`` is when the run began: temporary files older than that, and
    those of this run (``run_tag``; all its writers have finished), were left
    by a writer that was killed, and are removed.

    ``data_version`` (the hash of the clips this run extracted from) and the
    actors found are recorded in ``params.json``: the runs that read these
    rows name them.
    """
    store = Store(out)
    folder = store.dataset_dir(step.dataset, step.key)
    dropped = compact(store, folder, p.stale_parts)
    store.remove(f"{folder}/{name}" for name in p.drop_parts)
    dropped += compact(store, folder, duplicate_rows(store.dataset_keys(step.dataset, step.key, damaged=[])))
    store.remove_stale_temporaries(folder, older_than=started, tag=run_tag)
    store.write_json(f"{folder}/params.json", {"params": step.params.to_dict(), "hash": step.params.hash(),
                                               "data_version": data_version,
                                               "actors": sorted({rid.actor for _, rid, _ in inv.clips})})
    rejected = {r["path"] for r in rejects} | {r["path"] for r in no_audio or []}
    manifest = inv.manifest()
    store.write_manifest(step.modality, manifest[~manifest["path"].isin(rejected)])
    store.write_rejects(step.modality, rejects)
    if step.modality == "audio":
        store.write_no_audio(no_audio or [])
    return dropped


@task(name="landmark-features", cache_policy=NO_CACHE)
def landmark_features(out: str, frames: FrameParams) -> dict[str, Any]:
    """Measure the landmarks of the stored mesh face crops into the ``landmarks`` feature set; its summary."""
    params = LandmarkParams(every=frames.every, size=frames.size)
    table = update_landmark_features(Store(out), params)
    return {"feature_set": params.key, "clips": len(table.features), "clips_without_face": table.no_face,
            "frames_with_face": table.frames_with_face, "frames": table.frames,
            "face_rate": round(table.face_rate, 4)}


def stored_extraction(out: str, dataset: str, key: str) -> tuple[str, tuple[int, ...]]:
    """The data version and the actors the last extraction recorded for ``dataset``/``key`` ("" and () if none)."""
    store = Store(out)
    path = f"{store.dataset_dir(dataset, key)}/params.json"
    try:
        info = store.read_json(path) if store.exists(path) else {}
    except (OSError, ValueError):
        info = {}
    return str(info.get("data_version", "")), tuple(int(a) for a in info.get("actors", []))
