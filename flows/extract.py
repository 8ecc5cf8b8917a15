"""The extraction flow: clips under a data root -> Parquet (audio features, video frames)."""

from __future__ import annotations

import os
import queue
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar, cast

from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from emotion.audio.seed import AudioFeatureParams
from emotion.core.addresses import check_scheduler_address
from emotion.core.errors import EmotionError, UsageError
from emotion.core.provenance import corpus_origin
from emotion.extract.chunk import not_read
from emotion.extract.inventory import (
    ClipRef,
    Inventory,
    Step,
    audio_step,
    check_not_empty,
    duplicate_recordings,
    video_step,
)
from emotion.extract.plan import Plan, chunked, data_version
from emotion.featuresets import FeatureParams, feature_params, is_face_set
from emotion.store.sources import DataRoot, StorageOutage
from emotion.store.store import Store
from emotion.video.frames import FrameParams
from flows.naming import current_run, frames_label, name, run_tags, tagged, task_tags
from tasks import progress as console
from tasks.artifacts import Progress, progress_key, publish_extract
from tasks.cluster import ClipCounter, cluster_threads, dask_client, in_flight_limit
from tasks.extract import (
    commit,
    current_listing,
    inventory,
    landmark_features,
    plan,
    run_chunk,
    stored_extraction,
    take_inventory_for_run,
)

MODALITIES = ("audio", "video")
SHOWN_REJECTS = 20  # rejected files named in the run's log, each with its reason

T = TypeVar("T")


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
    n_workers: int = 0  # Dask workers that processed chunks of this modality
    cluster_threads: int = 0  # worker threads of the cluster when the work was submitted (0: no cluster needed)
    max_in_flight: int = 0  # most chunks submitted and not yet finished at once (both modalities)
    read_by_flow: int = 0  # clips read by the inventory in the flow's process (0 unless --verify)
    parts: int = 0  # Parquet parts of the stored dataset after the run
    merged_parts: int = 0  # small parts this run merged into fewer (once there were many)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    removed_clips: list[str] = field(default_factory=list)  # clips gone from the data root: their rows were dropped
    no_audio_clips: list[dict[str, Any]] = field(default_factory=list)
    band_limited: list[dict[str, Any]] = field(default_factory=list)  # clips processed that were recorded below the
    # features' sample rate (kept, with a note: their upper band is empty)
    # mesh face crops: the landmark feature set, face-found rate, clips without a face, clips with more than one face
    faces: dict[str, Any] | None = None

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


def _step_tags(step: Step) -> list[str]:
    """Tags of the task runs of one step: its own modality and what it computes (in a ``modality:all`` run the
    video step's tasks are ``modality:video`` and tagged with its frame set, as in a video-only run)."""
    label = frames_label(step.params) if isinstance(step.params, FrameParams) else step.params.name
    return run_tags(modality=step.modality, features=label)


def _inventories(run_id: str, data: str, out: str | None, steps: list[Step], verify: bool,
                 full: bool) -> dict[str, Inventory]:
    return {s.modality: take_inventory_for_run(run_id, data, s, out, verify, full) for s in steps}


def _version(out: str | None, steps: list[Step], invs: dict[str, Inventory]) -> str:
    """The data version of this run: the one the last extraction recorded when no clip's listing changed since
    (the hashes of new or changed clips are not known until the workers read them), else a new one over the
    clips' hashes (or, where still unknown, listing fingerprints)."""
    if out is not None and invs and all(inv.unchanged_listing for inv in invs.values()):
        try:
            recorded = {stored_extraction(out, s.dataset, s.key)[0] for s in steps}
        except (EmotionError, OSError):
            recorded = set()
        if len(recorded) == 1 and "" not in recorded:
            return recorded.pop()
    return data_version(r for inv in invs.values() for r, _, _ in inv.clips)


def extract_run_name() -> str:
    """``extract-audio-seed-data-1a2b3c4d-9f8e7d``: modality, feature set, data version, run id."""
    rid, p = current_run()
    modality = p.get("modality", "all")
    frames = p.get("frames", FrameParams())
    try:
        features = feature_params(p.get("features", "seed"), p.get("augment"), p.get("frames"))
    except EmotionError:
        features = AudioFeatureParams()  # the run itself reports the problem
    try:
        kind, used = (modality, frames) if not is_face_set(features, modality) else ("video", features.frame_params())
        steps = steps_for(kind, features, used, p.get("chunk_size"))  # the steps the run takes (its inventory is kept)
        out, verify, full = p.get("out"), bool(p.get("verify")), bool(p.get("full"))
        version = _version(out, steps, _inventories(_run_id(), p["data"], out, steps, verify, full))
    except (EmotionError, OSError, KeyError):
        version = ""  # the run itself reports the problem
    return name("extract", modality, _run_label(modality, features, frames), f"data-{version}" if version else None, rid)


def _run_id() -> str:
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx is not None and ctx.flow_run is not None else ""


# The flow bounds the chunks in flight itself (tasks.cluster.in_flight_limit, which follows the cluster's size);
# the thread pool only needs to be as large, so it is not capped here. (Prefect types task_runner as
# TaskRunner[PrefectFuture[Any]], which no concrete runner is: TaskRunner is invariant in its future type.)
@flow(name="extract", flow_run_name=extract_run_name,
      task_runner=ThreadPoolTaskRunner(max_workers=None))  # type: ignore[arg-type]
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
    verify: bool = False,
    augment: tuple[float, ...] = (),
) -> dict[str, ExtractSummary]:
    """Audio features of ``.wav``/``.flac`` clips and of the audio track of ``.mp4`` clips, and sampled
    frames of ``.mp4`` clips under ``data``.

    Clips whose content is already stored under the same parameters are
    skipped (``full`` recomputes all); rows of deleted clips are dropped.
    Change detection reads no clip whose listing (size and modification
    time, or ETag) is unchanged since the last run; new and changed clips are
    hashed by the workers, and recordings found twice under two ids are told
    once their hashes are known. ``verify`` reads and hashes every clip (for
    changes that keep size and time). Returns one summary per modality.
    ``features`` names the audio feature set, ``augment`` the speeds of its
    augmented copies (``extended`` only).

    Progress (``<modality>-extract-progress``) moves with every clip done:
    the workers report each clip as a Dask event, and the flow updates the
    artifact while the chunks run.
    One extraction at a time per store: a second one is refused with a
    one-line :class:`StoreError` naming the first. The store remembers its data
    root; another root is refused unless ``replace_data`` (then the rows of the
    old root's clips are dropped, and counted as removed).
    """
    fp = feature_params(features, augment, frames)  # the audio feature set's name and copies (plain: deployments, the UI)
    dask_address = check_scheduler_address(dask_address, "dask_address")  # its form, even with nothing to extract
    DataRoot(data)  # a root that does not exist (a mistyped bucket) is refused before the store is touched
    store = Store(out)
    with store.writer_lock(f"emotion extract {data}"):
        root = data if "://" in data else os.path.realpath(data)
        store.check_data_root(root, replace=replace_data, origin=corpus_origin(root))
        return _extract_locked(data, out, modality, fp, frames, full, chunk_size, dask_address, workers, verify)


def _extract_locked(data: str, out: str, modality: str, features: FeatureParams, frames: FrameParams, full: bool,
                    chunk_size: int | None, dask_address: str | None, workers: int | None,
                    verify: bool) -> dict[str, ExtractSummary]:
    log = get_run_logger()
    if is_face_set(features, modality):  # landmarks: measured on its face-crop frames
        frames, modality = features.frame_params(), "video"
    t0, started = time.perf_counter(), time.time()
    run_tag = uuid.uuid4().hex[:12]  # names this run's temporary files
    steps = steps_for(modality, features, frames, chunk_size)
    run_id = _run_id()
    invs = {}
    for s in steps:
        # the step's modality and features, but no data tag yet: the data version is computed from these inventories
        with task_tags(_step_tags(s)):
            invs[s.modality] = inventory(data, s, run_id, out, verify, full)
    # a served run, or one on object storage, has not been through the command line's check of the data root
    check_not_empty(data, invs.values(), current_listing())  # (the pipeline's listing, where it has one)
    version = _version(out, steps, invs)
    labels = run_tags(modality=modality, features=_run_label(modality, features, frames), data_version=version)
    with tagged(labels):
        summaries = _extract_steps(data, out, steps, invs, version, full, verify, dask_address, workers, run_tag,
                                   started)
    for summary in summaries.values():
        summary.seconds = round(time.perf_counter() - t0, 2)
    for s in steps:
        summary = summaries[s.modality]
        log.info("%s: processed %d, skipped %d, removed %d, rejected %d, without audio %d", s.modality,
                 summary.processed, summary.skipped, summary.removed, summary.rejected, summary.no_audio)
        # each named, for a served run's terminal and the run's log in the UI (the command line prints its own list)
        for r in summary.rejects[:SHOWN_REJECTS]:
            log.info("%s: rejected %s: %s", s.modality, r["path"], r["reason"])
        if len(summary.rejects) > SHOWN_REJECTS:
            log.info("%s: ... and %d more rejected (the %s-rejects artifact lists them)", s.modality,
                     len(summary.rejects) - SHOWN_REJECTS, s.modality)
        publish_extract(s.modality, summary.to_dict(), data)
    return summaries


def as_is(value: T) -> T:
    """Hand a large value to a task without Prefect walking it: ``quote(value)``, typed as the value itself.

    Prefect otherwise visits every element of a task's inputs on every call
    (about a second per call for 1200 clips); a :class:`quote` is handed over
    as it is and the task receives the value, unwrapped. Prefect types a task
    call by the task's own parameters, which a ``quote`` is not: hence the cast.
    """
    return cast(T, quote(value))


def _extract_steps(data: str, out: str, steps: list[Step], invs: dict[str, Inventory], version: str, full: bool,
                   verify: bool, dask_address: str | None, workers: int | None, run_tag: str,
                   started: float) -> dict[str, ExtractSummary]:
    log = get_run_logger()
    # as_is(): large inputs (an inventory of every clip, a plan, hashes) are handed over without Prefect walking them
    plans = {}
    for s in steps:  # each step's tasks carry its own modality (not modality:all), here and below
        with task_tags(_step_tags(s)):
            plans[s.modality] = plan(as_is(invs[s.modality]), out, s, full, verify)
    summaries = {s.modality: ExtractSummary(skipped=plans[s.modality].skipped, removed=len(plans[s.modality].removed),
                                            removed_clips=list(plans[s.modality].removed), feature_set=s.key,
                                            rejects=list(invs[s.modality].rejects),
                                            no_audio_clips=list(invs[s.modality].no_audio),
                                            read_by_flow=invs[s.modality].read) for s in steps}
    hashes: dict[str, dict[str, str]] = {s.modality: {} for s in steps}
    work: list[tuple[Step, int, int, list[ClipRef]]] = []  # (step, chunk index, first clip's position in the step, clips)
    for s in steps:
        first = 0
        for c in chunked(plans[s.modality].todo, s.chunk_size):
            work.append((s, len(work), first, c))
            first += len(c)
    if work:  # no cluster is started when there is nothing to do
        total = sum(len(p.todo) for p in plans.values())
        what = {s.modality: f"({s.modality}, {getattr(s.params, 'name', s.key)})" for s in steps}
        starting = f"starting on the Dask cluster at {dask_address}" if dask_address else "starting the Dask workers"
        progress = {s.modality: Progress(len(plans[s.modality].todo), progress_key(s.modality, "extract"), what[s.modality],
                                         starting=starting) for s in steps if plans[s.modality].todo}
        chunks_of = {m: [i for s, i, _, _ in work if s.modality == m] for m in progress}
        topic = f"emotion-progress-{run_tag}"
        for m, p in progress.items():
            console.tick(f"extract {m}", 0, p.total, "clips", starting)
        with dask_client(dask_address, workers, jobs=len(work), clips=total) as client:
            counter = ClipCounter(client, topic)
            try:
                peak, threads = 0, cluster_threads(client)
                finished_q: queue.SimpleQueue[Any] = queue.SimpleQueue()
                pending = iter(work)
                in_flight: dict[Any, tuple[Step, int]] = {}
                storage = StorageOutage()  # the chunks' failed reads in a row: once down, no further chunk goes out

                def fill() -> None:  # keep as many chunks submitted as the cluster has threads, plus a bounded backlog
                    limit = in_flight_limit(client)
                    while not storage.down and len(in_flight) < limit and (nxt := next(pending, None)) is not None:
                        s, i, first, c = nxt
                        with task_tags(_step_tags(s)):
                            fut = run_chunk.submit(i, s, as_is(c), data, out, client, run_tag, topic, first)
                        in_flight[fut] = (s, i)
                        fut.add_done_callback(finished_q.put)

                fill()
                while in_flight:
                    peak = max(peak, len(in_flight))
                    try:
                        fut = finished_q.get(timeout=0.5)
                    except queue.Empty:  # no chunk finished: the workers' per-clip events still move the progress
                        fut = None
                    if fut is not None:
                        s, i = in_flight.pop(fut)
                        res = fut.result()
                        if not storage.down:
                            storage.then(res.storage)
                        fill()
                        summary = summaries[s.modality]
                        summary.processed += res.processed
                        summary.skipped += res.unchanged
                        summary.rejects.extend(res.rejects)
                        summary.no_audio_clips.extend(res.no_audio)
                        summary.band_limited.extend(res.band_limited)
                        summary.workers.append(res.worker)
                        hashes[s.modality].update(res.hashes)
                        counter.finish(i, res.processed + res.unchanged + len(res.rejects) + len(res.no_audio))
                    for m, p in progress.items():
                        p.set(counter.done(chunks_of[m]))
                        console.tick(f"extract {m}", min(counter.done(chunks_of[m]), p.total), p.total, "clips")
                    if fut is not None:
                        log.info("extracted %d/%d clips (%d chunk%s in flight)", counter.done(), total, len(in_flight),
                                 "" if len(in_flight) == 1 else "s")
                unsent = 0
                for s, i, _, c in pending:  # left unsubmitted, the storage being down: each not read, kept
                    summaries[s.modality].rejects.extend(not_read(c, storage))
                    counter.finish(i, len(c))
                    unsent += len(c)
                if storage.down:
                    log.warning("the data root's storage failed on %d clips in a row (%s): %d clip%s not handed out, "
                                "not read this run; stored rows are kept, and the next run reads them",
                                storage.in_a_row, storage.last, unsent, "" if unsent == 1 else "s")
                for summary in summaries.values():
                    summary.max_in_flight, summary.cluster_threads = peak, threads
            finally:
                counter.close()
        for m, p in progress.items():
            p.set(p.total, force=True)
            console.tick(f"extract {m}", p.total, p.total, "clips")
    for s in steps:
        summary = summaries[s.modality]
        dups = duplicate_recordings(invs[s.modality], hashes[s.modality], (r["path"] for r in summary.rejects))
        if dups:
            _reject_duplicates(summary, plans[s.modality], hashes[s.modality], dups)
            # info, not a warning: the summary lists each of them with the clip it copies (a console warning
            # printed "1 clips are recordings ..." mid-progress, naming none); the Prefect UI keeps this line
            log.info("%s: %d clip(s) rejected as recordings already found under another id: %s", s.modality,
                     len(dups), ", ".join(sorted(r["path"] for r in dups)[:5]) + (" ..." if len(dups) > 5 else ""))
        with task_tags(_step_tags(s)):
            done = commit(out, s, as_is(plans[s.modality]), as_is(invs[s.modality]), as_is(summary.rejects), started,
                          as_is(summary.no_audio_clips), run_tag, version, as_is(hashes[s.modality]))
        summary.parts, summary.merged_parts = done.parts, done.merged
        summary.rejected = len(summary.rejects)
        summary.no_audio = len(summary.no_audio_clips)
        summary.workers = sorted(set(summary.workers))
        summary.n_workers = len(summary.workers)
        if isinstance(s.params, FrameParams) and s.params.landmarks:  # the video step (frames), mesh face crops
            # no face anywhere: {"error": why}, the summary says it; no frames at all: not "run emotion extract
            # first" (this was that run), but that the data has no mp4 clip, or that the rejects below say why
            # none was kept
            with task_tags(_step_tags(s)):
                summary.faces = (landmark_features(out, s.params) if done.parts
                                 else {"error": _no_frames(summary, data)})
    return summaries


def _no_frames(summary: ExtractSummary, data: str) -> str:
    """Why a video step stored no frames: every mp4 clip was rejected, or there was none (audio-only data)."""
    if summary.rejected:
        return f"no frames stored: none of the clips could be used ({summary.rejected} rejected, listed below)"
    return f"no mp4 clips under {data}"


def _reject_duplicates(summary: ExtractSummary, p: Plan, hashes: dict[str, str], dups: list[dict[str, Any]]) -> None:
    """Count ``dups`` (clips whose content the workers found to be another clip's) as rejects instead of
    processed, unchanged or without audio; their rows are dropped at commit like those of any reject."""
    paths = {d["path"] for d in dups}
    summary.band_limited = [b for b in summary.band_limited if b["path"] not in paths]
    without = paths & {r["path"] for r in summary.no_audio_clips}
    summary.no_audio_clips = [r for r in summary.no_audio_clips if r["path"] not in paths]
    todo = {r.path: r for r in p.todo}
    for path in paths - without:
        ref = todo.get(path)
        if ref is not None and not (ref.content_hash is None and hashes.get(path) == ref.stored_hash):
            summary.processed -= 1
        else:
            summary.skipped -= 1
    summary.rejects.extend(dups)


def extract_audio(data: str, out: str, features: FeatureParams = AudioFeatureParams(), full: bool = False,
                  chunk_size: int = 40, dask_address: str | None = None, workers: int | None = None,
                  replace_data: bool = False, verify: bool = False) -> ExtractSummary:
    """Audio features only (the ``extract`` flow with ``modality="audio"``)."""
    return extract(data, out, "audio", features.name, full=full, chunk_size=chunk_size, dask_address=dask_address,
                   workers=workers, replace_data=replace_data, verify=verify, augment=features.augment_speeds())["audio"]
