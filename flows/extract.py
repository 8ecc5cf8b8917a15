"""The extraction flow: clips under a data root -> Parquet (audio features, video frames)."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from emotion.errors import StoreError, UsageError
from emotion.extract import Step, audio_step, chunked, video_step
from emotion.features import AudioFeatureParams, stable_hash
from emotion.featuresets import FeatureParams, modality_of
from emotion.store import Store
from emotion.video import FrameParams
from tasks.artifacts import Progress, name_flow_run, publish_extract
from tasks.cluster import dask_client
from tasks.extract import commit, inventory, landmark_features, plan, run_chunk

MODALITIES = ("audio", "video")


@dataclass
class ExtractSummary:
    processed: int = 0
    skipped: int = 0
    removed: int = 0
    rejected: int = 0
    no_audio: int = 0  # clips without audio (video-only mp4s; mp4s with a silent or missing track): not rejects
    seconds: float = 0.0
    feature_set: str = ""
    workers: list[str] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    no_audio_clips: list[dict[str, Any]] = field(default_factory=list)
    faces: dict[str, Any] | None = None  # mesh face crops: the landmark feature set, face-found rate, clips without a face

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def steps_for(modality: str, features: FeatureParams, frames: FrameParams, chunk_size: int | None) -> list[Step]:
    if modality not in (*MODALITIES, "all"):
        raise UsageError(f"unknown modality {modality!r}; choose audio, video or all")
    steps = []
    if modality in ("audio", "all"):
        steps.append(audio_step(features, chunk_size or 40))
    if modality in ("video", "all"):
        steps.append(video_step(frames, chunk_size or 6))
    return steps


@flow(name="extract", flow_run_name="extract-{modality}", task_runner=ThreadPoolTaskRunner(max_workers=16))
def extract(
    data: str,
    out: str,
    modality: str = "all",
    features: FeatureParams = AudioFeatureParams(),
    frames: FrameParams = FrameParams(),
    full: bool = False,
    chunk_size: int | None = None,
    dask_address: str | None = None,
    workers: int | None = None,
    replace_data: bool = False,
) -> dict[str, ExtractSummary]:
    """Audio features of ``.wav``/``.flac`` clips and of the audio track of ``.mp4`` clips, and sampled
    frames of ``.mp4`` clips under ``data``.

    Clips whose content is already stored under the same parameters are
    skipped (``full`` recomputes all); rows of deleted clips are dropped.
    Returns one summary per modality.

    One extraction at a time per store: a second one is refused with a
    one-line :class:`StoreError` naming the first. The store remembers its data
    root; another root is refused unless ``replace_data`` (then the rows of the
    old root's clips are dropped, and counted as removed).
    """
    store = Store(out)
    with store.writer_lock(f"emotion extract {data}"):
        store.check_data_root(data if "://" in data else os.path.realpath(data), replace=replace_data)
        return _extract(data, out, modality, features, frames, full, chunk_size, dask_address, workers)


def _extract(data: str, out: str, modality: str, features: FeatureParams, frames: FrameParams, full: bool,
             chunk_size: int | None, dask_address: str | None, workers: int | None) -> dict[str, ExtractSummary]:
    log = get_run_logger()
    if modality_of(features) == "video":  # a face feature set (landmarks): measured on its face-crop frames
        if modality == "audio":
            raise UsageError(f"the {features.name} feature set is measured on video frames; use --modality video or all")
        frames, modality = features.frame_params(), "video"  # type: ignore[union-attr]
    t0, started = time.perf_counter(), time.time()
    run_tag = uuid.uuid4().hex[:12]  # names this run's temporary files
    steps = steps_for(modality, features, frames, chunk_size)
    invs = {s.modality: inventory(data, s) for s in steps}
    version = stable_hash(sorted((r.path, r.content_hash) for inv in invs.values() for r, _, _ in inv.clips), 8)
    name_flow_run(f"extract-{modality}-data-{version}")
    plans = {s.modality: plan(invs[s.modality], out, s, full) for s in steps}
    summaries = {s.modality: ExtractSummary(skipped=plans[s.modality].skipped, removed=len(plans[s.modality].removed),
                                            feature_set=s.key, rejects=list(invs[s.modality].rejects),
                                            no_audio_clips=list(invs[s.modality].no_audio)) for s in steps}
    work = [(s, i, c) for s in steps for i, c in enumerate(chunked(plans[s.modality].todo, s.chunk_size))]
    if work:
        total = sum(len(p.todo) for p in plans.values())
        progress = Progress(total, f"{total} clips ({', '.join(s.modality for s in steps)})")
        with dask_client(dask_address, workers, jobs=len(work)) as client:
            futures = [(s, run_chunk.submit(i, s, c, data, out, client, run_tag)) for s, i, c in work]
            done = 0
            for s, fut in futures:
                res = fut.result()
                summary = summaries[s.modality]
                summary.processed += res.processed
                summary.rejects.extend(res.rejects)
                summary.no_audio_clips.extend(res.no_audio)
                summary.workers.append(res.worker)
                finished = res.processed + len(res.rejects) + len(res.no_audio)
                done += finished
                progress.advance(finished)
                log.info("extracted %d/%d clips", done, total)
    for s in steps:
        summary = summaries[s.modality]
        commit(out, s, plans[s.modality], invs[s.modality], summary.rejects, started, summary.no_audio_clips, run_tag)
        summary.rejected = len(summary.rejects)
        summary.no_audio = len(summary.no_audio_clips)
        summary.workers = sorted(set(summary.workers))
        if s.modality == "video" and s.params.landmarks:  # type: ignore[union-attr]
            try:
                summary.faces = landmark_features(out, s.params)
            except StoreError as exc:  # no face anywhere: no landmark features, and the summary says why
                summary.faces = {"error": str(exc)}
        summary.seconds = round(time.perf_counter() - t0, 2)
        log.info("%s: processed %d, skipped %d, removed %d, rejected %d, without audio %d", s.modality,
                 summary.processed, summary.skipped, summary.removed, summary.rejected, summary.no_audio)
        publish_extract(s.modality, summary.to_dict(), data)
    return summaries


def extract_audio(data: str, out: str, features: FeatureParams = AudioFeatureParams(), full: bool = False,
                  chunk_size: int = 40, dask_address: str | None = None, workers: int | None = None,
                  replace_data: bool = False) -> ExtractSummary:
    """Audio features only (the ``extract`` flow with ``modality="audio"``)."""
    return extract(data, out, "audio", features, full=full, chunk_size=chunk_size, dask_address=dask_address,
                   workers=workers, replace_data=replace_data)["audio"]
