"""Prefect tasks of the extraction flow, generic over extraction steps (audio, video).

Chunks of clips are computed on Dask workers by
:func:`emotion.extract.extract_chunk`; the Prefect task that owns a chunk
only submits it and waits, so workers never talk to Prefect and a worker
that dies has its chunk rerun by Dask elsewhere.
"""

from __future__ import annotations

import posixpath
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
from emotion.landmarks import LandmarkParams, update_landmark_features
from emotion.sources import DataRoot
from emotion.store import Store
from emotion.video import FrameParams


@task(name="inventory", cache_policy=NO_CACHE, task_run_name="inventory-{step.modality}")
def inventory(data: str, step: Step) -> Inventory:
    """Discover, validate and hash the clips of ``step`` under ``data``."""
    inv = take_inventory(DataRoot(data), step.extensions, accept=step.accept, absent=step.absent)
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


@task(name="extract-chunk", cache_policy=NO_CACHE, task_run_name="extract-{step.modality}-{index}")
def run_chunk(index: int, step: Step, clips: list[ClipRef], data: str, out: str, client: Client,
              run_tag: str = "") -> ChunkResult:
    """Process one chunk on a Dask worker; the worker writes the Parquet part."""
    future = client.submit(extract_chunk, step, clips, data, out, run_tag, pure=False,
                           key=f"{step.modality}-chunk-{index}-{id(clips)}")
    return future.result()


@task(name="commit", cache_policy=NO_CACHE, task_run_name="commit-{step.modality}")
def commit(out: str, step: Step, p: Plan, inv: Inventory, rejects: list[dict[str, Any]], started: float,
           no_audio: list[dict[str, Any]] | None = None, run_tag: str = "") -> int:
    """Drop stale and duplicate rows, then write the manifest, parameters and rejects table.

    For the audio step, ``no_audio`` (clips without audio: video-only mp4s,
    mp4s with a silent or missing track) is written to ``manifest/no_audio``
    and left out of the manifest, like the rejects.

    ``started`` is when the run began: temporary files older than that, and
    those of this run (``run_tag``; all its writers have finished), were left
    by a writer that was killed, and are removed.
    """
    store = Store(out)
    folder = store.dataset_dir(step.dataset, step.key)
    dropped = compact(store, folder, p.stale_parts)
    store.remove(f"{folder}/{name}" for name in p.drop_parts)
    dropped += compact(store, folder, duplicate_rows(store.dataset_keys(step.dataset, step.key, damaged=[])))
    store.remove_stale_temporaries(folder, older_than=started, tag=run_tag)
    store.write_json(f"{folder}/params.json", {"params": step.params.to_dict(), "hash": step.params.hash()})
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
            "frames_with_face": sum(f for f, _ in table.faces.values()), "frames": sum(n for _, n in table.faces.values()),
            "face_rate": round(table.face_rate, 4)}
