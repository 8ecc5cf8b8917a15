"""The training flow: tune, fit and evaluate models on one actor split."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from prefect import flow

from emotion.core.errors import UsageError
from emotion.core.names import DEFAULT_MODELS, FUSION_MODELS, VIDEO_MODELS
from emotion.core.splits import DEFAULT_SPLIT, ActorSplit
from emotion.featuresets import FeatureParams, feature_params, modality_of
from emotion.models.catalog import SearchParams, check_features
from emotion.store.catalog import rank_rows
from emotion.store.store import Store
from emotion.training.video import build_model
from emotion.video.frames import FrameParams
from flows.naming import current_run, frames_label, name, run_tags, split_label, split_used, tagged
from tasks import progress as console
from tasks.artifacts import Progress, progress_key, publish_metrics
from tasks.cluster import default_workers
from tasks.extract import stored_extraction
from tasks.train import STEPS_PER_MODEL, report, train_fusion_model, train_model, train_video_model, write_summary


def _data(version: str) -> str | None:
    return f"data-{version}" if version else None


def _audio_data(out: str, features: FeatureParams) -> tuple[str, tuple[int, ...]]:
    """The data version and actors of the stored audio features (recorded by the extraction that wrote them)."""
    if modality_of(features) == "video":  # landmarks: measured on the face crops, whose extraction names the data
        return stored_extraction(out, "frames", features.frame_params().key)  # type: ignore[union-attr]
    return stored_extraction(out, "features/audio", features.key)


def train_audio_run_name() -> str:
    """``train-audio-seed-speakernorm-train=1-20,test=21-24-data-1a2b3c4d-9f8e7d``; ``train-video-landmarks-...`` for
    a face feature set (the README's, the report's and the summary's modality of its models)."""
    rid, p = current_run()
    features = feature_params(p.get("features", "seed"), p.get("augment"), p.get("frames"))
    norm = "speakernorm" if p.get("speaker_norm") else None
    version, actors = _audio_data(p["out"], features)
    return name(f"train-{modality_of(features)}", features.name, norm, split_used(p.get("split", DEFAULT_SPLIT), actors),
                _data(version), rid)


def _progress(modality: str, models: tuple[str, ...], split: str) -> Progress:
    return Progress(len(models) * STEPS_PER_MODEL, progress_key(modality, "train"),
                    f"({', '.join(models)} on {split_label(split)})", unit="steps")


@flow(name="train-audio", flow_run_name=train_audio_run_name)
def train_audio(
    out: str,
    split: str = DEFAULT_SPLIT,
    models: tuple[str, ...] = DEFAULT_MODELS,
    features: str = "seed",
    search: SearchParams = SearchParams(),
    n_jobs: int | None = None,
    force: bool = False,
    speaker_norm: bool = False,
    augment: tuple[float, ...] = (),
    frames: FrameParams | None = None,
) -> dict[str, Any]:
    """Train every model in ``models`` on ``split``; returns the summary, best first.

    ``features``: the feature set's name; ``augment``: the speeds of its augmented copies (``extended`` only);
    ``frames``: the frames a face feature set (``landmarks``) was measured on (default: its own).
    """
    sp = ActorSplit.parse(split)
    fp = feature_params(features, augment, frames)  # plain parameters (a deployment, the UI's run form) -> the typed set
    for m in models:
        check_features(m, fp.name)  # fail fast on an unknown name or a set the model cannot read
    Store(out).check_writable()  # a read-only store stops here, not after the search (runs, summary, report)
    jobs = n_jobs or default_workers()
    version, actors = _audio_data(out, fp)
    kind = modality_of(fp)  # "video" for a face set (landmarks): its tags, progress, metrics, report and result say so
    labels = run_tags(modality=kind, features=fp.name, split=split, data_version=version,
                      speaker_norm=speaker_norm, actors=actors)
    with tagged(labels):
        progress = _progress(kind, models, split)
        results = [train_model(out, m, sp, fp, search, jobs, force, speaker_norm, progress) for m in models]
        return {**_finish(out, sp, results, kind, actors), "features": fp.name, "speaker_norm": speaker_norm}


def _finish(out: str, sp: ActorSplit, results: list[dict[str, Any]], modality: str,
            actors: tuple[int, ...]) -> dict[str, Any]:
    """Summary, artifacts and report after training ``results`` on ``sp``; the flows' common result.

    ``actors``: those the data has; ``split_used`` names the split's actors among them (``train=01-06,test=21-22``
    for the demo's data under ``train=1-20,test=21-24``), the split as given where the data has them all.
    """
    path = write_summary(out, sp, results)
    ranked = rank_rows(results)  # best first by grouped-CV accuracy (emotion.store.catalog.SELECTION_RULE)
    publish_metrics(str(sp), ranked, {r["model"]: r.pop("confusion_matrix") for r in ranked}, modality=modality)
    report_path = report(out, sp)
    return {"split": str(sp), "split_id": sp.id, "split_used": split_used(str(sp), actors), "modality": modality,
            "summary": path, "report": report_path, "models": ranked}




def frames_for(model: str, frames: FrameParams) -> FrameParams:
    """The frame set a model reads: every face model (cnn, fer, fused) takes the aligned face crops.

    The frame CNN used to read whole frames; on the demo's held-out synthetic
    actors it reached 0.933 on them against 1.000 on face crops, and on real
    720p video the face is a small part of the frame.
    """
    if not frames.face_crop:
        return replace(frames, face_crop=True)
    return frames


def _read_frames(models: tuple[str, ...], frames: FrameParams) -> FrameParams:
    """The frame set the video models read (``frames`` asked for whole frames, but they read the face crops): it
    names the run and gives its data version and actors; "full256" and no data version named a set never read."""
    return frames_for(models[0], frames) if models else frames


def _video_data(out: str, frames: FrameParams) -> tuple[str, tuple[int, ...]]:
    return stored_extraction(out, "frames", frames.key)


def train_video_run_name() -> str:
    """``train-video-face256-every20-train=1-20,test=21-24-data-1a2b3c4d-9f8e7d``: the frame set the models read."""
    rid, p = current_run()
    frames = _read_frames(tuple(p.get("models", VIDEO_MODELS)), p.get("frames", FrameParams()))
    version, actors = _video_data(p["out"], frames)
    return name("train-video", frames_label(frames), split_used(p.get("split", DEFAULT_SPLIT), actors), _data(version),
                rid)


@flow(name="train-video", flow_run_name=train_video_run_name)
def train_video(
    out: str,
    split: str = DEFAULT_SPLIT,
    models: tuple[str, ...] = VIDEO_MODELS,
    frames: FrameParams = FrameParams(),
    params: dict[str, dict[str, Any]] | None = None,
    force: bool = False,
    search: SearchParams = SearchParams(),
) -> dict[str, Any]:
    """Train the frame models in ``models`` and evaluate them per clip on ``split``; best first.

    ``params`` maps a model name to its parameters (e.g. ``{"cnn": {"epochs": 10}}``); ``search``: the command's
    search settings, of which the frame models take the seed (their validation actors, initial weights, dropout,
    augmentation and frame order; a ``seed`` in ``params`` wins), as the audio models take it for theirs.
    """
    sp = ActorSplit.parse(split)
    per_model = {m: {"seed": search.seed, **(params or {}).get(m, {})} for m in models}
    for m in models:
        build_model(m, **per_model[m])  # fail fast on an unknown name or parameter
    Store(out).check_writable()  # a read-only store stops here, not after the search (runs, summary, report)
    read = _read_frames(models, frames)
    version, actors = _video_data(out, read)
    # speaker-norm:no (frame models take none) as in a pipeline's step, whose run's speaker-norm tag it would inherit
    labels = run_tags(modality="video", features=frames_label(read), split=split, data_version=version,
                      speaker_norm=False, actors=actors)
    with tagged(labels):
        progress = _progress("video", models, split)
        results = [train_video_model(out, m, sp, frames_for(m, frames), per_model[m], force, progress) for m in models]
        return _finish(out, sp, results, "video", actors)


def train_fusion_run_name() -> str:
    """``train-fusion-seed-face256-every20-train=1-20,test=21-24-data-1a2b3c4d-9f8e7d`` (the audio data version)."""
    rid, p = current_run()
    features = feature_params(p.get("features", "seed"), p.get("augment"))
    frames = p.get("frames", FrameParams(face_crop=True))
    face = replace(frames, face_crop=True)
    version, actors = _audio_data(p["out"], features)
    return name("train-fusion", features.name, frames_label(face), split_used(p.get("split", DEFAULT_SPLIT), actors),
                _data(version), rid)


@flow(name="train-fusion", flow_run_name=train_fusion_run_name)
def train_fusion(
    out: str,
    split: str = DEFAULT_SPLIT,
    models: tuple[str, ...] = FUSION_MODELS,
    features: str = "seed",
    frames: FrameParams = FrameParams(face_crop=True),
    force: bool = False,
    augment: tuple[float, ...] = (),
    search: SearchParams = SearchParams(),
) -> dict[str, Any]:
    """Fuse voice and face on the mp4 clips of ``split`` (late, stacked and early fusion); best first.

    ``features``: the audio feature set's name; ``augment``: the speeds of its augmented copies; ``search``: the
    command's search settings, of which the fused models take ``cv_folds`` (the actor-grouped folds that choose
    late's weight and stack's inputs, and those of the outer CV that scores them) and ``seed`` (their logistic
    regressions), as the audio models' search takes them.
    """
    sp = ActorSplit.parse(split)
    fp = feature_params(features, augment)
    bad = [m for m in models if m not in FUSION_MODELS]
    if bad:
        raise UsageError(f"unknown fusion model {bad[0]!r}; choose from {', '.join(FUSION_MODELS)}")
    Store(out).check_writable()  # a read-only store stops here, not after the search (runs, summary, report)
    face = replace(frames, face_crop=True)  # the face embedding is FER2013's: it reads face crops
    version, actors = _audio_data(out, fp)
    # speaker-norm:no: the fused models read raw voice features, with or without a pipeline's --speaker-norm
    labels = run_tags(modality="fusion", features=fp.name, split=split, data_version=version, speaker_norm=False,
                      actors=actors)
    with tagged([*labels, f"frames:{frames_label(face)}"]):
        progress = _progress("fusion", models, split)
        results = []
        for i, m in enumerate(models):
            console.tick("fuse voice and face", i, len(models), "models",
                         f"{m}{' (FER2013 embedding of every face first)' if i == 0 else ''}")
            results.append(train_fusion_model(out, m, sp, fp, face, force, progress, search))
        console.tick("fuse voice and face", len(models), len(models), "models")
        return _finish(out, sp, results, "fusion", actors)
