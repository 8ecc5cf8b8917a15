"""The whole pipeline: extract, then train and evaluate, for audio and video."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from prefect import flow, get_run_logger

from emotion.audio.seed import AudioFeatureParams
from emotion.core.errors import Advised, UsageError, note_done
from emotion.core.names import DEFAULT_MODELS, FUSION_MODELS, VIDEO_MODELS, split_models
from emotion.core.splits import DEFAULT_SPLIT, ActorSplit, lacking_actors
from emotion.extract.inventory import check_pipeline_split
from emotion.featuresets import FeatureParams, feature_params, is_face_set
from emotion.models.search import SearchParams
from emotion.store.catalog import SPEAKER_NORM_ASSUMES, best_per_modality, collect_runs, folder_of, rank_rows
from emotion.store.store import Store
from emotion.training.current import trained_on_older_data
from emotion.video.frames import FrameParams
from flows.extract import extract
from flows.naming import current_run, frames_label, name, run_tags, split_label, tagged
from flows.train import frames_for, train_audio, train_fusion, train_video
from tasks.cluster import shared_cluster
from tasks.extract import listed, stored_extraction
from tasks.pipeline import pipeline_step
from tasks.train import run_row


def models_to_train(models: tuple[str, ...], features: FeatureParams, modality: str,
                    notes: list[str] | None = None) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The feature-set, frame and fused models of ``models`` that a pipeline of ``modality`` trains (a
    :class:`UsageError` if none); why fused models are left out goes to ``notes``."""
    audio_models, video_models, fusion_models = split_models(models)
    # a face feature set (landmarks) feeds the feature models from the video's face crops, not from the voice
    face_set = is_face_set(features, modality)
    if face_set and fusion_models:
        if notes is not None:
            notes.append(f"fused models read an audio feature set, not {features.name}: skipped (their face side "
                         "adds the landmark features by itself)")
        fusion_models = ()
    if modality == "audio":
        video_models = fusion_models = ()
    if modality == "video":
        fusion_models = ()
        if not face_set:
            audio_models = ()
    if not audio_models and not video_models and not fusion_models:
        raise UsageError(f"no {modality} model among {', '.join(models)}")
    return audio_models, video_models, fusion_models


def pipeline_run_name() -> str:
    """``pipeline-audio-seed-speakernorm-train=1-20,test=21-24-9f8e7d``: the feature set where a model reads it,
    ``speakernorm`` where a model takes it (``pipeline-video-train=...`` for frame networks only)."""
    rid, p = current_run()
    features: str | None = str(p.get("features", "seed"))
    norm = "speakernorm" if p.get("speaker_norm") else None
    try:
        fp = feature_params(str(features), tuple(p.get("augment") or ()), p.get("frames") or FrameParams())
        audio, _, fusion = models_to_train(tuple(p.get("models") or ()), fp, str(p.get("modality", "all")))
        features, norm = (features if audio or fusion else None), (norm if audio else None)
    except Exception:  # noqa: BLE001 - parameters the flow itself refuses, with its message: named as given
        pass
    return name("pipeline", p.get("modality", "all"), features, norm, split_label(p.get("split", DEFAULT_SPLIT)), rid)


@flow(name="emotion-pipeline", flow_run_name=pipeline_run_name)
def run_pipeline(
    data: str,
    out: str,
    split: str = DEFAULT_SPLIT,
    models: tuple[str, ...] = DEFAULT_MODELS + VIDEO_MODELS + FUSION_MODELS,
    features: str = "seed",
    search: SearchParams = SearchParams(),
    modality: str = "all",
    frames: FrameParams = FrameParams(),
    video_params: dict[str, dict[str, Any]] | None = None,
    full: bool = False,
    dask_address: str | None = None,
    workers: int | None = None,
    n_jobs: int | None = None,
    speaker_norm: bool = False,
    augment: tuple[float, ...] = (),
    replace_data: bool = False,
) -> dict[str, Any]:
    """Extract what ``modality`` needs, then train the audio, video and fused models in ``models``.

    ``features`` is the name of the audio feature set (of the audio and the
    fused models), ``augment`` the speeds of its augmented copies (``extended``
    only); ``speaker_norm`` standardises each actor's audio features over
    that actor's clips (audio models only). ``replace_data``: a store built
    from another data root is rebuilt from ``data`` (as the extract flow's).

    With ``modality="all"`` a modality without any clip under ``data`` is
    skipped with a note; asked for explicitly, it is an error.
    """
    if modality not in ("audio", "video", "all"):
        raise UsageError(f"unknown modality {modality!r}; choose audio, video or all")
    fp = feature_params(features, augment, frames)  # plain parameters (a deployment, the UI's run form) -> the typed set
    notes: list[str] = []
    audio_models, video_models, fusion_models = models_to_train(models, fp, modality, notes)
    extracted: dict[str, dict[str, Any]] = {}  # each extraction's summary, as it finishes
    # the feature set's tag where a model reads it, speaker normalisation's where a model takes it (a video run's
    # frame networks take neither)
    with tagged(run_tags(modality=modality, features=fp.name if audio_models or fusion_models else None, split=split,
                         speaker_norm=speaker_norm if audio_models else None)):
        try:
            return _pipeline(data, out, split, fp, search, modality, frames, video_params, full, dask_address,
                             workers, n_jobs, speaker_norm, audio_models, video_models, fusion_models, notes, extracted,
                             replace_data)
        except (Exception, KeyboardInterrupt) as exc:
            if extracted:  # a later step failed or was interrupted: what was extracted is still told
                note_done(exc, extract=dict(extracted), notes=list(notes))
            raise


def _pipeline(data: str, out: str, split: str, features: FeatureParams, search: SearchParams, modality: str,
              frames: FrameParams, video_params: dict[str, dict[str, Any]] | None, full: bool, dask_address: str | None,
              workers: int | None, n_jobs: int | None, speaker_norm: bool, audio_models: tuple[str, ...],
              video_models: tuple[str, ...], fusion_models: tuple[str, ...], notes: list[str],
              extracted: dict[str, dict[str, Any]], replace_data: bool = False) -> dict[str, Any]:
    log = get_run_logger()
    face_set = is_face_set(features)
    ex = {"full": full, "dask_address": dask_address, "workers": workers, "replace_data": replace_data}
    frame_sets = list(dict.fromkeys(frames_for(m, frames) for m in (*video_models, *fusion_models)))
    listing = check_pipeline_split(data, split, modality, features, audio_models, search)
    # one listing of the data root: the extractions take their inventories from the split check's
    with shared_cluster(dask_address, workers), listed(listing):  # one local Dask cluster for all the extractions
        if audio_models or fusion_models:
            kind = "video" if face_set else "audio"
            step = partial(extract, data, out, kind, features.name, augment=features.augment_speeds(), **ex)
            got = pipeline_step(f"extract-{kind}-{features.name}", step)
            extracted.update({(features.name if face_set else m): s.to_dict() for m, s in got.items()})
        for fp in frame_sets:
            audio = features if not face_set else AudioFeatureParams()
            step = partial(extract, data, out, "video", audio.name, fp, augment=audio.augment_speeds(), **ex)
            s = pipeline_step(f"extract-video-{frames_label(fp)}", step)["video"].to_dict()
            extracted["video" if fp == frame_sets[0] else f"video ({fp.key})"] = s
    feature_key = features.name if face_set else "audio"
    has_audio = feature_key in extracted and _found(extracted[feature_key])
    has_video = any(_found(s) for k, s in extracted.items() if k.startswith("video"))
    if modality == "all":  # skip what the data cannot feed, and say so
        if audio_models and not has_audio:
            none = _none_found("video" if face_set else "audio", [extracted.get(feature_key)])
            notes.append(f"{none}: {features.name} models skipped")
            audio_models = ()
        if video_models and not has_video:
            none = _none_found("video", [s for k, s in extracted.items() if k.startswith("video")])
            notes.append(f"{none}: video models skipped")
            video_models = ()
        if fusion_models and not (has_audio and has_video):
            notes.append("fusion needs mp4 clips with speech and face: fused models skipped")
            fusion_models = ()
        if (video_models or fusion_models) and (skip := skip_video_note(
                stored_extraction(out, "frames", frame_sets[0].key)[1], split)):
            # else the run failed on them after training the audio models, and printed none of their results
            notes.append(skip)
            video_models = fusion_models = ()
    if speaker_norm and fusion_models:
        notes.append("speaker normalisation applies to the audio models only: fused models use raw voice features")
    for n in notes:
        log.info(n)  # as it is: a served run's log tells the advice of an Advised note served (deployments.served)
    trained = train_models(out, split, audio_models, video_models, fusion_models, features, search, frames,
                           video_params, n_jobs=n_jobs, force=full, speaker_norm=speaker_norm, as_steps=True)
    return {"extract": extracted, "notes": notes, "train": trained, "recipe": recipe(features, speaker_norm)}


def train_models(
    out: str, split: str, audio_models: tuple[str, ...], video_models: tuple[str, ...], fusion_models: tuple[str, ...],
    features: FeatureParams, search: SearchParams, frames: FrameParams,
    video_params: dict[str, dict[str, Any]] | None, n_jobs: int | None = None, force: bool = False,
    speaker_norm: bool = False, as_steps: bool = False,
) -> dict[str, Any]:
    """Run the training flow of each modality that has models; every model's result, best first.

    ``as_steps``: inside the pipeline's flow run, each training flow runs in a task run of it (:func:`pipeline_step`).
    """
    def run(step: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        return pipeline_step(step, fn) if as_steps else fn()

    results = []
    if audio_models:
        kind = f"video-{features.name}" if is_face_set(features) else "audio"  # as its flow run is named
        results.append(run(f"train-{kind}-{'-'.join(audio_models)}", partial(
            train_audio, out, split, audio_models, features.name, search, n_jobs=n_jobs, force=force,
            speaker_norm=speaker_norm, augment=features.augment_speeds(),
            frames=features.frame_params() if is_face_set(features) else None)))
    if video_models:
        results.append(run(f"train-video-{'-'.join(video_models)}", partial(
            train_video, out, split, video_models, frames, video_params, force=force, search=search)))
    if fusion_models:
        results.append(run(f"train-fusion-{'-'.join(m.removeprefix('fusion-') for m in fusion_models)}", partial(
            train_fusion, out, split, fusion_models, features.name, frames, force=force,
            augment=features.augment_speeds(), search=search)))
    runs = [{"modality": "audio", **r} for t in results for r in t["models"]]
    sp = ActorSplit.parse(split)
    last = results[-1] if results else {}
    return with_selection(out, {
        "split": str(sp), "split_id": sp.id, "split_used": _split_used(results, str(sp)),
        "summary": last.get("summary", ""), "report": last.get("report", ""),
        "features": features.name if audio_models or fusion_models else None,
        "speaker_norm": bool(audio_models) and speaker_norm, "models": rank_rows(runs)})


def with_selection(out: str, trained: dict[str, Any]) -> dict[str, Any]:
    """``trained`` (as :func:`train_models` returns it) with the selected run of each modality it trained marked:
    the run ``emotion predict`` uses (:func:`emotion.store.catalog.best_per_modality` of the split's runs: by
    validation, never by the test actors). Each row of ``models`` gets ``selected``; ``selected_earlier`` lists the
    selected runs of those modalities that this call did not train (``trained_earlier``), as ``models`` lists runs,
    with ``older_data`` where the store's data of the split has changed since that run was trained."""
    rows = trained["models"]
    store = Store(out)
    best = best_per_modality(collect_runs(store, trained["split_id"])) if rows else {}
    chosen = {(r.model, r.version) for r in best.values()}
    for r in rows:
        r["selected"] = (r["model"], r.get("version")) in chosen
    earlier = []
    for m in dict.fromkeys(str(r.get("modality", "audio")) for r in rows):
        if m in best and not any(r["selected"] and r.get("modality", "audio") == m for r in rows):
            rec = best[m]
            row = {**run_row(rec, store.url_of(folder_of(store, rec))), "modality": m, "selected": True,
                   "trained_earlier": True}
            if trained_on_older_data(store, rec, ActorSplit.parse(trained["split"])):
                row["older_data"] = True  # its clips changed since: predict uses it until it is trained again
            earlier.append(row)
    return {**trained, "selected_earlier": earlier}


def recipe(features: FeatureParams, speaker_norm: bool) -> dict[str, Any]:
    """What the audio side of a run used, in words: feature set, augmentation, speaker normalisation, and what its
    accuracy assumes."""
    speeds = tuple(getattr(features, "speeds", ()) or ())
    parts = [f"{features.name} features"]
    if speeds:
        parts.append(f"augmentation ({', '.join(f'{v:g}x' for v in speeds)} speed copies)")
    if speaker_norm:
        parts.append("speaker normalisation")
    baseline = features.name == "seed" and not speeds and not speaker_norm
    return {
        "name": "+".join([features.name, *(["augment"] if speeds else []), *(["speaker-norm"] if speaker_norm else [])]),
        "description": " + ".join(parts) + (" (the 2018 baseline)" if baseline else ""),
        "features": features.name, "augment": list(speeds), "speaker_norm": speaker_norm,
        "assumes": SPEAKER_NORM_ASSUMES if speaker_norm else None,
    }


def skip_video_note(actors: tuple[int, ...], split: str) -> Advised | None:
    """The note of a run that skips its video and fused models because the video clips (``actors``, as their
    extraction recorded them) lack a side of ``split`` (:func:`emotion.core.splits.lacking_actors`: with a split they
    allow, as advice: a served run logs it as ``set split to e.g. ...``); None when they have both, or when the
    actors are unknown (the training then says what lacks)."""
    lack = lacking_actors(ActorSplit.parse(split), actors, "video clips", "in the store") if actors else None
    return Advised(f"video and fused models skipped: {lack}", *lack.advice) if lack else None


def _found(summary: dict[str, Any]) -> bool:
    return bool(summary["processed"] + summary["skipped"])


def _none_found(kind: str, summaries: list[dict[str, Any] | None]) -> str:
    """Why a modality has nothing to train on: no clips at all, or only rejected ones (their lines say why)."""
    rejected = sum(int(s.get("rejected", 0)) for s in summaries if s)
    if rejected:
        return f"no usable {kind} clips under the data root ({rejected} rejected)"
    return f"no {kind} clips under the data root"


def _split_used(results: list[dict[str, Any]], split: str) -> str:
    """The split's actors the data has, as the training flows found them: one text where they agree, else each
    modality's (``audio train=01-16,test=17-20; video train=01,05,test=none``: the mp4 clips are other actors')."""
    used = {r.get("modality", "audio"): r.get("split_used", split) for r in results}
    if len(set(used.values())) <= 1:
        return next(iter(used.values()), split)
    return "; ".join(f"{m} {u}" for m, u in used.items())
