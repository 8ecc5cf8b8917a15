"""The extraction flow: clips under a data root -> Parquet (audio features, video frames)."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.futures import wait as wait_futures
from prefect.task_runners import ThreadPoolTaskRunner

from emotion.audio.seed import AudioFeatureParams
from emotion.core.errors import EmotionError, StoreError, UsageError
from emotion.core.provenance import corpus_origin
from emotion.extract import Inventory, Step, audio_step, chunked, data_version, video_step
from emotion.featuresets import FeatureParams, feature_params, is_face_set
from emotion.store.store import Store
from emotion.video.frames import FrameParams
from flows.naming import current_run, frames_label, name, run_tags, tagged
from tasks.artifacts import Progress, progress_key, publish_extract
from tasks.cluster import ClipCounter, dask_client
from tasks.extract import commit, inventory, landmark_features, plan, run_chunk, take_inventory_for_run

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


def _run_label(modality: str, features: FeatureParams, frames: FrameParams) -> str:
    """What an extraction computes: the audio feature set, or the frame set for video alone."""
    return frames_label(frames) if modality == "video" else features.name


def _inventories(run_id: str, data: str, steps: list[Step]) -> dict[str, Inventory]:
    return {s.modality: take_inventory_for_run(run_id, data, s) for s in steps}


def _version(invs: dict[str, Inventory]) -> str:
    return data_version(r for inv in invs.values() for r, _, _ in inv.clips)


def extract_run_name() -> str:
    """``extract-audio-seed-data-1a2b3c4d-9f8e7d``: modality, feature set, data version, run id."""
    rid, p = current_run()
    modality = p.get("modality", "all")
    frames = p.get("frames", FrameParams())
    try:
        features = feature_params(p.get("features", "seed"), p.get("augment"))
    except EmotionError:
        features = AudioFeatureParams()  # the run itself reports the problem
    try:
        steps = steps_for(modality, features, frames, p.get("chunk_size"))
        version = _version(_inventories(_run_id(), p["data"], steps))
    except (EmotionError, OSError, KeyError):
        version = ""  # the run itself reports the problem
    return name("extract", modality, _run_label(modality, features, frames), f"data-{version}" if version else None, rid)


def _run_id() -> str:
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx is not None and ctx.flow_run is not None else ""


@flow(name="extract", flow_run_name=extract_run_name, task_runner=ThreadPoolTaskRunner(max_workers=16))
def extract(
    data: str,
    out: str,
    modality: str = "all",
    features: str = "seed",
    frames: FrameParams = FrameParams(),
    full: bool = False,
    chunk_size: int | None = None,
    dask_address: str | None = None,
    workers: int | None = None,
    replace_data: bool = False,
    augment: tuple[float, ...] = (),
) -> dict[str, ExtractSummary]:
    """Audio features of ``.wav``/``.flac`` clips and of the audio track of ``.mp4`` clips, and sampled
    frames of ``.mp4`` clips under ``data``.

    Clips whose content is already stored under the same parameters are
    skipped (``full`` recomputes all); rows of deleted clips are dropped.
    Returns one summary per modality. ``features`` names the audio feature
    set, ``augment`` the speeds of its augmented copies (``extended`` only).

    Progress (``<modality>-extract-progress``) moves with every clip done:
    the workers report each clip as a Dask event, and the flow updates the
    artifact while the chunks run.
    One extraction at a time per store: a second one is refused with a
    one-line :class:`StoreError` naming the first. The store remembers its data
    root; another root is refused unless ``replace_data`` (then the rows of the
    old root's clips are dropped, and counted as removed).
    """
    fp = feature_params(features, augment)  # the audio feature set's name and copies (plain: deployments, the UI)
    store = Store(out)
    with store.writer_lock(f"emotion extract {data}"):
        root = data if "://" in data else os.path.realpath(data)
        store.check_data_root(root, replace=replace_data, origin=corpus_origin(root))
        return _extract_locked(data, out, modality, fp, frames, full, chunk_size, dask_address, workers)


def _extract_locked(data: str, out: str, modality: str, features: FeatureParams, frames: FrameParams, full: bool,
             chunk_size: int | None, dask_address: str | None, workers: int | None) -> dict[str, ExtractSummary]:
    log = get_run_logger()
    if is_face_set(features, modality):  # landmarks: measured on its face-crop frames
        frames, modality = features.frame_params(), "video"  # type: ignore[union-attr]
    t0, started = time.perf_counter(), time.time()
    run_tag = uuid.uuid4().hex[:12]  # names this run's temporary files
    steps = steps_for(modality, features, frames, chunk_size)
    run_id = _run_id()
    invs = {s.modality: inventory(data, s, run_id) for s in steps}
    version = _version(invs)
    labels = run_tags(modality=modality, features=_run_label(modality, features, frames), data_version=version)
    with tagged(labels):
        summaries = _extract_steps(data, out, steps, invs, version, full, dask_address, workers, run_tag, started)
    for summary in summaries.values():
        summary.seconds = round(time.perf_counter() - t0, 2)
    for s in steps:
        summary = summaries[s.modality]
        log.info("%s: processed %d, skipped %d, removed %d, rejected %d, without audio %d", s.modality,
                 summary.processed, summary.skipped, summary.removed, summary.rejected, summary.no_audio)
        publish_extract(s.modality, summary.to_dict(), data)
    return summaries


def _extract_steps(data: str, out: str, steps: list[Step], invs: dict[str, Inventory], version: str, full: bool,
             dask_address: str | None, workers: int | None, run_tag: str, started: float) -> dict[str, ExtractSummary]:
    log = get_run_logger()
    plans = {s.modality: plan(invs[s.modality], out, s, full) for s in steps}
    summaries = {s.modality: ExtractSummary(skipped=plans[s.modality].skipped, removed=len(plans[s.modality].removed),
                                            feature_set=s.key, rejects=list(invs[s.modality].rejects),
                                            no_audio_clips=list(invs[s.modality].no_audio)) for s in steps}
    work = []  # (step, chunk index, first clip's position in the step, clips)
    for s in steps:
        first = 0
        for c in chunked(plans[s.modality].todo, s.chunk_size):
            work.append((s, len(work), first, c))
            first += len(c)
    if work:
        what = {s.modality: f"({s.modality}, {getattr(s.params, 'name', s.key)})" for s in steps}
        starting = f"starting on the Dask cluster at {dask_address}" if dask_address else "starting the Dask workers"
        progress = {s.modality: Progress(len(plans[s.modality].todo), progress_key(s.modality, "extract"), what[s.modality],
                                         starting=starting) for s in steps if plans[s.modality].todo}
        chunks_of = {m: [i for s, i, _, _ in work if s.modality == m] for m in progress}
        topic = f"emotion-progress-{run_tag}"
        with dask_client(dask_address, workers, jobs=len(work)) as client:
            counter = ClipCounter(client, topic)
            try:
                futures = {run_chunk.submit(i, s, c, data, out, client, run_tag, topic, first): (s, i)
                           for s, i, first, c in work}
                pending = set(futures)
                while pending:
                    finished, pending = wait_futures(pending, timeout=0.5)
                    for fut in finished:
                        s, i = futures[fut]
                        res = fut.result()
                        summary = summaries[s.modality]
                        summary.processed += res.processed
                        summary.rejects.extend(res.rejects)
                        summary.no_audio_clips.extend(res.no_audio)
                        summary.workers.append(res.worker)
                        counter.finish(i, res.processed + len(res.rejects) + len(res.no_audio))
                    for m, p in progress.items():
                        p.set(counter.done(chunks_of[m]))
                    if finished:
                        log.info("extracted %d/%d clips", counter.done(), sum(p.total for p in progress.values()))
            finally:
                counter.close()
        for p in progress.values():
            p.set(p.total, force=True)
    for s in steps:
        summary = summaries[s.modality]
        commit(out, s, plans[s.modality], invs[s.modality], summary.rejects, started, summary.no_audio_clips, run_tag,
               version)
        summary.rejected = len(summary.rejects)
        summary.no_audio = len(summary.no_audio_clips)
        summary.workers = sorted(set(summary.workers))
        if s.modality == "video" and s.params.landmarks:  # type: ignore[union-attr]
            try:
                summary.faces = landmark_features(out, s.params)
            except StoreError as exc:  # no face anywhere: no landmark features, and the summary says why
                summary.faces = {"error": str(exc)}
    return summaries


def extract_audio(data: str, out: str, features: FeatureParams = AudioFeatureParams(), full: bool = False,
                  chunk_size: int = 40, dask_address: str | None = None, workers: int | None = None,
                  replace_data: bool = False) -> ExtractSummary:
    """Audio features only (the ``extract`` flow with ``modality="audio"``)."""
    return extract(data, out, "audio", features.name, full=full, chunk_size=chunk_size, dask_address=dask_address,
                   workers=workers, replace_data=replace_data, augment=features.augment_speeds())["audio"]
