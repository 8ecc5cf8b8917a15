"""Prefect tasks of the extraction flow.

Chunks of clips are computed on Dask workers by
:func:`emotion.extract.extract_audio_chunk`; the Prefect task that owns a
chunk only submits it and waits, so workers never talk to Prefect and a
worker that dies has its chunk rerun by Dask elsewhere.
"""

from __future__ import annotations

from typing import Any

from distributed import Client
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from emotion.extract import (
    ChunkResult,
    ClipRef,
    Inventory,
    Plan,
    compact,
    extract_audio_chunk,
    plan_extraction,
    take_inventory,
)
from emotion.features import AudioFeatureParams
from emotion.sources import AUDIO_EXTENSIONS, DataRoot
from emotion.store import Store


@task(name="inventory", cache_policy=NO_CACHE)
def inventory(data: str) -> Inventory:
    """Discover, validate and hash the audio clips under ``data``."""
    inv = take_inventory(DataRoot(data), AUDIO_EXTENSIONS)
    get_run_logger().info("found %d audio clips, %d rejected before decoding", len(inv.clips), len(inv.rejects))
    return inv


@task(name="plan", cache_policy=NO_CACHE)
def plan(inv: Inventory, out: str, features: AudioFeatureParams, full: bool) -> Plan:
    store = Store(out)
    p = plan_extraction(inv, store.feature_keys("audio", features.key), full=full)
    get_run_logger().info("%d clips to process, %d unchanged, %d removed", len(p.todo), p.skipped, len(p.removed))
    return p


@task(name="extract-chunk", cache_policy=NO_CACHE, task_run_name="extract-chunk-{index}")
def extract_chunk(
    index: int, clips: list[ClipRef], data: str, out: str, features: AudioFeatureParams, client: Client
) -> ChunkResult:
    """Compute one chunk's features on a Dask worker; the worker writes the Parquet part."""
    future = client.submit(extract_audio_chunk, clips, data, out, features, pure=False, key=f"audio-chunk-{index}-{id(clips)}")
    return future.result()


@task(name="commit", cache_policy=NO_CACHE)
def commit(out: str, features: AudioFeatureParams, p: Plan, inv: Inventory, rejects: list[dict[str, Any]]) -> int:
    """Drop stale rows, then write the manifest, feature params and rejects table."""
    store = Store(out)
    folder = store.features_dir("audio", features.key)
    dropped = compact(store, folder, p.stale_parts)
    store.remove(f"{folder}/{name}" for name in p.drop_parts)
    store.write_json(f"{folder}/params.json", {"params": features.to_dict(), "hash": features.hash()})
    rejected = {r["path"] for r in rejects}
    manifest = inv.manifest()
    store.write_manifest("audio", manifest[~manifest["path"].isin(rejected)])
    store.write_rejects("audio", rejects)
    return dropped
