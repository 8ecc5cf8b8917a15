"""Prefect tasks of the training flow: each reads the store, writes a run folder."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from emotion.core.provenance import stamp_run
from emotion.core.splits import ActorSplit
from emotion.featuresets import FeatureParams, read_faceless_clips, read_feature_table
from emotion.models.catalog import SearchParams, model_spec
from emotion.models.frame_nets import FaceEmbedder
from emotion.models.fusion import AudioVisualFusion
from emotion.reporting.report import merge_results
from emotion.reporting.report_html import write_reports
from emotion.store.catalog import (
    SELECTION_RULE,
    RunRecord,
    Trained,
    best_per_modality,
    collect_runs,
    rank_rows,
    reuse_or_train,
    summary_path,
)
from emotion.store.store import Store
from emotion.training.audio import RunOutput, run_version, split_data, train_and_evaluate
from emotion.training.fusion import fusion_data_hash, fusion_table, fusion_version, train_and_evaluate_fusion
from emotion.training.video import (
    build_model,
    pinned_frames,
    split_frames,
    train_and_evaluate_video,
    video_run_version,
    without_validation,
)
from emotion.video.frames import FrameParams
from tasks import progress as console
from tasks.artifacts import Progress

STEPS_PER_MODEL = 3  # data read and split, search done, fitted, evaluated and written


def _advance(progress: Progress | None, n: int = 1) -> None:
    if progress is not None:
        progress.advance(n)


@task(name="train-model", cache_policy=NO_CACHE, task_run_name="train-{model}")
def train_model(
    out: str, model: str, split: ActorSplit, features: FeatureParams, search: SearchParams,
    n_jobs: int = 1, force: bool = False, speaker_norm: bool = False, progress: Progress | None = None,
) -> dict[str, Any]:
    """Tune, fit and evaluate ``model``; returns its metrics and run folder.

    A run whose version (model, split, search, features, data) is already
    complete in the store is reused unless ``force``. ``progress`` moves
    :data:`STEPS_PER_MODEL` steps.
    """
    log = get_run_logger()
    store = Store(out)
    df = read_feature_table(store, features)
    data = split_data(df, features.column_names(), split, features.hash(), speaker_norm=speaker_norm,
                      copies=features.copies, faceless=read_faceless_clips(store, features, df))
    version = run_version(model, split, search, features.hash(), data.data_hash, speaker_norm, data.copies)

    def train() -> RunOutput:
        _advance(progress)
        log.info("%s: tuning on %d clips of %d actors", model, len(data.y_train), len(set(data.groups)))
        out = train_and_evaluate(model_spec(model), data, split, search, features.to_dict(), features.hash(), n_jobs,
                                 on_stage=lambda _: _advance(progress), progress=console.sink())
        stamp_run(out, store.data_origin())  # synthetic or recorded training data, from store.json
        log.info("%s: test accuracy %.3f (grouped CV %.3f)", model, out.metrics["accuracy"], out.metrics["cv_accuracy"])
        return out

    return _result(reuse_or_train(store, split.id, model, version, train, force=force), progress, log)


def _result(t: Trained, progress: Progress | None, log: Any) -> dict[str, Any]:
    """A trained or reused run as the flows and ``summary.json`` list it (from its record in the catalog)."""
    if t.reused:  # a run whose model file is gone is trained again
        log.info("%s: run %s is complete in the store; reusing it", t.record.model, t.record.version)
        _advance(progress, STEPS_PER_MODEL)
    else:
        _advance(progress)
    return run_row(t.record, t.run_dir, reused=t.reused)


def run_row(r: RunRecord, run_dir: str, *, reused: bool = False) -> dict[str, Any]:
    """A run's record as the flows and ``summary.json`` list it; ``run_dir``: its folder's URL."""
    row = {"model": r.model, "version": r.version, "run_dir": run_dir, "reused": reused, **_brief(r.metrics)}
    if r.feature_params is not None and r.modality != "fusion":  # feature models: the set's key and copies
        row.update(feature_set=r.feature_set, augment=list(r.augment))
    row.update(data_hash=r.data_hash, model_sha256=r.model_sha256)
    return row


def _brief(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("accuracy", "macro_f1", "uar", "cv_accuracy", "cv_std", "n_train", "n_test", "confusion_matrix",
            "modality", "features", "speaker_norm", "frame_accuracy", "audio_visual_clips", "audio_weight", "data_origin",
            "accuracy_single_clip", "n_test_clips_without_face")
    return {k: metrics[k] for k in keys if k in metrics}


def _summary_key(r: dict[str, Any]) -> tuple[str, str]:
    """An entry of ``summary.json``'s ``models``: one per modality and model."""
    return str(r["modality"]), str(r["model"])


@task(name="write-summary", cache_policy=NO_CACHE, task_run_name="write-summary-{split.id}")
def write_summary(out: str, split: ActorSplit, results: list[dict[str, Any]]) -> str:
    """``runs/<split>/summary.json``: the latest run of every model trained on the split, best first (by
    :func:`emotion.store.catalog.selection_key`: grouped-CV accuracy; the rule is written in ``selection``).

    ``models``: one entry per modality and model name (``lr`` on the audio
    features and ``lr`` on the face's landmarks are two); models trained by
    this call replace their earlier entries of the same modality, the others
    (e.g. the audio models when video models are trained) are kept;
    ``all``: the latest run of every feature set, speaker normalisation and
    model (:func:`emotion.reporting.report.merge_results`), so sets and normalisation
    are kept side by side. ``best``, ``best_by_modality`` and ``selected`` (the
    run of each modality, with its version and feature set) are chosen among
    the split's stored runs, as ``emotion predict`` chooses; every entry says
    whether it is that run. The markdown report is written by :func:`report`.
    """
    store = Store(out)
    path = summary_path(store, split.id)
    old = store.read_json(path) if store.exists(path) else {}
    new = [{k: v for k, v in r.items() if k != "confusion_matrix"} for r in results]
    for r in new:
        r.setdefault("modality", "audio")
    for r in old.get("models", []):
        r.setdefault("modality", "audio")  # summaries of the first release record none: audio
    trained = {_summary_key(r) for r in new}
    merged = [r for r in old.get("models", []) if _summary_key(r) not in trained] + new
    ranked = rank_rows(merged)  # by grouped-CV accuracy (SELECTION_RULE), never by the test actors' scores
    rows = merge_results(old.get("all", []), new)
    # chosen among the split's stored runs, as `emotion predict` chooses (from "models" alone, an lr on extended
    # features replaced there by a later lr on seed features was never seen)
    stored = collect_runs(store, split.id)
    chosen = best_per_modality(stored)
    picked = {(r.modality, r.model, r.version) for r in chosen.values()}
    split_url = store.url_of(store.path("runs", split.id)).rstrip("/") + "/"
    for r in [*ranked, *rows]:
        r["selected"] = (str(r.get("modality", "audio")), r["model"], r.get("version")) in picked
        if str(r.get("run_dir", "")).startswith(split_url):  # the folder within the split's: a copied store's too
            r["run"] = str(r["run_dir"])[len(split_url):]
    selected = {m: {"model": r.model, "version": r.version, "features": r.feature_set or r.features,
                    "speaker_norm": bool(r.speaker_norm), "augment": list(r.augment)} for m, r in chosen.items()}
    store.write_json(path, {"split": str(split), "split_id": split.id,
                            "best": stored[0].model if stored else None,  # collect_runs: best first
                            "best_by_modality": {m: r.model for m, r in chosen.items()}, "selected": selected,
                            "selection": SELECTION_RULE, "models": ranked, "all": rows})
    shown = [f"{r['model']}{'' if r.get('modality', 'audio') == 'audio' else ' (' + str(r['modality']) + ')'} "
             f"{'-' if r.get('cv_accuracy') is None else format(r['cv_accuracy'], '.3f')}" for r in ranked]
    get_run_logger().info("summary (validation accuracy, best first): %s", ", ".join(shown))
    return store.url_of(path)


@task(name="train-video-model", cache_policy=NO_CACHE, task_run_name="train-{model}")
def train_video_model(
    out: str, model: str, split: ActorSplit, frames: FrameParams, params: dict[str, Any], force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train a frame model (``cnn`` or ``fer``) on the stored frames and evaluate it per clip.

    Reuses a complete run of the same version (model and its parameters,
    split, frame set, clips) unless ``force``.
    """
    log = get_run_logger()
    store = Store(out)
    est = build_model(model, **params)
    data = split_frames(store, frames, split, seed=est.seed)
    version = video_run_version(model, est.get_params(), split, frames.key, data.data_hash)

    def train() -> RunOutput:
        _advance(progress)
        # every epoch reads the frames again: from a private copy, which a concurrent extract cannot change
        with pinned_frames(store, frames, split, seed=est.seed) as pinned:  # its version: that of the frames copied
            log.info("%s: fitting on %d frames of %d clips (actors %s), validating on actors %s", model,
                     pinned.fit.n_frames, pinned.fit.n_clips, list(pinned.fit_actors), list(pinned.val_actors))
            if (unvalidated := without_validation(est, pinned)) is not None:
                log.warning("%s", unvalidated)  # on the console too: nothing judges the epochs
            out = train_and_evaluate_video(est, pinned, split, frames, progress=console.sink())
        stamp_run(out, store.data_origin())  # synthetic or recorded training data, from store.json
        _advance(progress)
        log.info("%s: per-clip test accuracy %.3f (frames %.3f)", model, out.metrics["accuracy"],
                 out.metrics["frame_accuracy"])
        return out

    return _result(reuse_or_train(store, split.id, model, version, train, force=force), progress, log)


@task(name="write-report", cache_policy=NO_CACHE, task_run_name="write-report-{split.id}")
def report(out: str, split: ActorSplit) -> str:
    """``runs/<split>/report.md`` (and its figures): every complete run of the split, audio, video and fused."""
    store = Store(out)
    path = write_reports(store, split.id)
    get_run_logger().info("report: %s", store.url_of(path))
    return store.url_of(path)


@task(name="train-fusion-model", cache_policy=NO_CACHE, task_run_name="train-{model}")
def train_fusion_model(
    out: str, model: str, split: ActorSplit, audio: FeatureParams, frames: FrameParams, force: bool = False,
    progress: Progress | None = None, search: SearchParams = SearchParams(),
) -> dict[str, Any]:
    """Fuse voice and face (``fusion-late``, ``fusion-stack`` or ``fusion-early``) and evaluate it per clip.

    ``search`` gives the fused model its actor-grouped CV folds and its seed (both part of the run's version).
    """
    log = get_run_logger()
    store = Store(out)
    est = AudioVisualFusion(method=model.removeprefix("fusion-"), cv_folds=search.cv_folds, seed=search.seed)
    table, acols, vcols = _fusion_table(out, audio, frames, (*split.train, *split.test), _parts(store, audio, frames))
    est.set_params(n_audio=len(acols))
    version = fusion_version(est.method, est.get_params(), split, audio.key, frames.key,
                             fusion_data_hash(table, acols), frames.landmarks)

    def train() -> RunOutput:
        _advance(progress)
        n_audio = int(table[acols].notna().all(axis=1).sum())
        log.info("%s: %d mp4 clips, %d with audio", model, len(table), n_audio)
        out = train_and_evaluate_fusion(est, table, acols, vcols, split, audio, frames)
        stamp_run(out, store.data_origin())  # synthetic or recorded training data, from store.json
        _advance(progress)
        av = out.metrics["audio_visual_clips"]
        log.info("%s: per-clip accuracy %.3f; on voice+face clips fused %.3f, voice alone %.3f, face alone %.3f", model,
                 out.metrics["accuracy"], av["fused"], av["audio_only"], av["video_only"])
        log.info("%s: grouped CV on the train actors %.3f (%s; %.1f s)", model, out.metrics["cv_accuracy"],
                 out.metrics["cv"], out.run["cv_seconds"])
        return out

    return _result(reuse_or_train(store, split.id, model, version, train, force=force), progress, log)


def _parts(store: Store, audio: FeatureParams, frames: FrameParams) -> tuple[str, ...]:
    """The stored parts the fusion table is built from: a new part means a new table."""
    return (*store.list_parts(store.features_dir("audio", audio.key)), *store.list_parts(store.dataset_dir("frames", frames.key)))


@lru_cache(maxsize=2)
def _fusion_table(out: str, audio: FeatureParams, frames: FrameParams, actors: tuple[int, ...],
                  parts: tuple[str, ...]) -> tuple[Any, list[str], list[str]]:
    """The fusion table, computed once for the fused models of one run (the face embedding is the costly part)."""
    return fusion_table(Store(out), audio, frames, actors, _embedder())


@lru_cache(maxsize=1)
def _embedder() -> FaceEmbedder:
    return FaceEmbedder()
