"""The extraction flow: audio clips under a data root -> Parquet features."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from emotion.extract import chunked
from emotion.features import AudioFeatureParams, stable_hash
from tasks.artifacts import Progress, name_flow_run, publish_extract
from tasks.cluster import dask_client
from tasks.extract import commit, extract_chunk, inventory, plan


@dataclass
class ExtractSummary:
    processed: int = 0
    skipped: int = 0
    removed: int = 0
    rejected: int = 0
    seconds: float = 0.0
    feature_set: str = ""
    workers: list[str] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@flow(name="extract-audio", flow_run_name="extract-audio-{features.name}", task_runner=ThreadPoolTaskRunner(max_workers=16))
def extract_audio(
    data: str,
    out: str,
    features: AudioFeatureParams = AudioFeatureParams(),
    full: bool = False,
    chunk_size: int = 40,
    dask_address: str | None = None,
    workers: int | None = None,
) -> ExtractSummary:
    """Compute audio features of every new or changed clip under ``data`` into ``out``.

    Clips whose content is already stored under the same feature parameters
    are skipped (``full`` recomputes all); rows of deleted clips are dropped.
    """
    log = get_run_logger()
    t0 = time.perf_counter()
    inv = inventory(data)
    data_version = stable_hash(sorted((r.path, r.content_hash) for r, _, _ in inv.clips), 8)
    name_flow_run(f"extract-audio-{features.name}-data-{data_version}")
    p = plan(inv, out, features, full)
    rejects = list(inv.rejects)
    summary = ExtractSummary(skipped=p.skipped, removed=len(p.removed), feature_set=features.key)
    chunks = chunked(p.todo, chunk_size)
    if chunks:
        progress = Progress(len(p.todo), f"audio features of {len(p.todo)} clips")
        with dask_client(dask_address, workers, jobs=len(chunks)) as client:
            futures = [extract_chunk.submit(i, c, data, out, features, client) for i, c in enumerate(chunks)]
            done = 0
            for fut in futures:
                res = fut.result()
                done += res.rows + len(res.rejects)
                progress.advance(res.rows + len(res.rejects))
                summary.processed += res.rows
                rejects.extend(res.rejects)
                summary.workers.append(res.worker)
                log.info("extracted %d/%d clips", done, len(p.todo))
    commit(out, features, p, inv, rejects)
    summary.rejected = len(rejects)
    summary.rejects = rejects
    summary.workers = sorted(set(summary.workers))
    summary.seconds = round(time.perf_counter() - t0, 2)
    log.info("processed %d, skipped %d, removed %d, rejected %d", summary.processed, summary.skipped,
             summary.removed, summary.rejected)
    publish_extract(summary.to_dict(), data)
    return summary
