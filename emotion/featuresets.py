"""The audio feature sets selectable with ``--features NAME``, and their extractors.

* ``seed``: the baseline recipe (:mod:`emotion.audio.seed`)
* ``extended``: our librosa/numpy set (:mod:`emotion.audio.extended`)
* ``logmel``: a fixed-size log-mel spectrogram per clip, for the spectrogram
  CNN ``melcnn`` (:mod:`emotion.audio.logmel`)
* ``landmarks``: face landmark geometry per clip, measured on the mesh front
  end's face crops (:mod:`emotion.video.landmarks`); a video set, built from the
  stored frames rather than by an audio extractor
* ``egemaps``, ``compare``: openSMILE functionals, only where the optional
  ``opensmile`` package is installed (:mod:`emotion.audio.opensmile`)

Each set's parameters are a frozen dataclass with a ``name``, a ``hash`` and a
``key`` (``<name>-<hash>``) naming its folder in the store, so sets live side
by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeGuard

import numpy as np
import pandas as pd

from emotion.audio.extended import ExtendedFeatureExtractor, ExtendedFeatureParams
from emotion.audio.logmel import LogMelExtractor, LogMelParams
from emotion.audio.opensmile import OPENSMILE_SETS, OpenSmileExtractor, OpenSmileParams, _require
from emotion.audio.seed import AudioFeatureExtractor, AudioFeatureParams
from emotion.core.errors import Advice, Option, UsageError
from emotion.core.names import FEATURE_SET_NAMES
from emotion.store.store import Store
from emotion.video.landmarks import LandmarkParams, faceless_clips, read_landmark_features

FeatureParams = AudioFeatureParams | ExtendedFeatureParams | LogMelParams | OpenSmileParams | LandmarkParams


def modality_of(params: Any) -> str:
    """``video`` for a feature set measured on faces (``landmarks``), else ``audio``."""
    return str(getattr(params, "modality", "audio"))


def is_face_set(params: FeatureParams, modality: str = "all") -> TypeGuard[LandmarkParams]:
    """Whether ``params`` is a face feature set (``landmarks``); asking for one with ``modality="audio"`` is a
    usage error.

    Of the feature sets only :class:`LandmarkParams` is measured on video, so a true answer narrows ``params`` to
    it (its :meth:`~LandmarkParams.frame_params` is then at hand without another check)."""
    face = modality_of(params) == "video"
    if face and modality == "audio":
        raise UsageError(f"the {params.name} feature set is measured on video frames; {_VIDEO_MODALITY}",
                         advice=_VIDEO_MODALITY)
    return face


# what the flows that take a modality (extract, the pipeline) are given for a face feature set
_VIDEO_MODALITY = Advice("use --modality video or all", "set modality to video or all")
# the extraction that measures the landmarks set, as the command line and the extract flow's parameters give it
_FACE_FRAMES = (Option("--modality", "modality", "video"), Option("--face-crop", "frames.face_crop", "", "true"))
_MEASURE_LANDMARKS = Advice(f"emotion extract {' '.join(o.cli for o in _FACE_FRAMES)}",
                            f"the extract flow with {', '.join(o.served for o in _FACE_FRAMES)}")
# speed copies of a set other than extended (every flow takes augment and features)
_AUGMENT_EXTENDED = Advice("--augment needs --features extended", "augment needs features set to extended")


class _FromFrames:
    """The ``landmarks`` set has no audio extractor: its rows are built from the stored frames."""

    def __init__(self, params: LandmarkParams) -> None:
        raise UsageError(f"the landmarks feature set is measured on video frames ({_MEASURE_LANDMARKS}), not computed "
                         "from audio", advice=_MEASURE_LANDMARKS)


class Extractor(Protocol):
    params: Any
    names: list[str]

    def __call__(self, y: np.ndarray) -> np.ndarray: ...


# each set's parameter class and extractor; the openSMILE sets share one of each (the set's name is a parameter)
_SETS: dict[str, tuple[type[Any], type[Any]]] = {
    "seed": (AudioFeatureParams, AudioFeatureExtractor),
    "extended": (ExtendedFeatureParams, ExtendedFeatureExtractor),
    "logmel": (LogMelParams, LogMelExtractor),
    "landmarks": (LandmarkParams, _FromFrames),
    **{name: (OpenSmileParams, OpenSmileExtractor) for name in OPENSMILE_SETS},
}
_EXTRACTORS: dict[type[Any], type[Any]] = dict(_SETS.values())


def feature_set(name: str) -> FeatureParams:
    """The default parameters of the feature set ``name``."""
    if name not in _SETS:
        raise UsageError(f"unknown feature set {name!r}; choose from {', '.join(FEATURE_SET_NAMES)}")
    if name in OPENSMILE_SETS:
        _require()
        return OpenSmileParams(name)
    params: FeatureParams = _SETS[name][0]()
    return params


def feature_params(name: str = "seed", augment: Sequence[float] | None = (), frames: Any = None) -> FeatureParams:
    """The parameters of the feature set ``name`` with the speeds of its augmented copies (``--augment``), from the
    plain values a flow, a deployment or the Prefect UI's run form gives. ``frames`` (a :class:`FrameParams`):
    the frames a face feature set (``landmarks``) is measured on, every Nth at that size (default: its own)."""
    params = feature_set(name)
    if isinstance(params, LandmarkParams) and frames is not None:
        params = LandmarkParams(every=frames.every, size=frames.size)
    if augment:
        if not isinstance(params, ExtendedFeatureParams):
            raise UsageError(f"{_AUGMENT_EXTENDED} (the {name} set has no augmented copies)", advice=_AUGMENT_EXTENDED)
        params = replace(params, speeds=tuple(float(s) for s in augment))
    return params


def params_from_dict(d: dict[str, Any]) -> FeatureParams:
    """The parameters recorded as ``d`` (e.g. ``run.json``'s ``feature_params``), of whichever set they name.

    Records without a ``name`` are the seed set's (the first release wrote none).
    """
    cls = _SETS.get(d.get("name", "seed"), _SETS["seed"])[0]
    params: FeatureParams = cls.from_dict(d)
    return params


def make_extractor(params: FeatureParams) -> Extractor:
    extractor: Extractor = _EXTRACTORS[type(params)](params)
    return extractor


def read_feature_table(store: Store, params: FeatureParams) -> pd.DataFrame:
    """The stored feature rows of ``params``' set: audio sets from ``features/audio``, ``landmarks`` brought up to
    date with the stored face frames first (``features/video``)."""
    if isinstance(params, LandmarkParams):
        return read_landmark_features(store, params)
    return store.read_features("audio", params.key, requested={"params": params.to_dict()})


def read_faceless_clips(store: Store, params: FeatureParams, features: pd.DataFrame) -> pd.DataFrame | None:
    """For the ``landmarks`` set, the clips without a row in its ``features`` (no face found: path, content_hash,
    actor, emotion), which its models are still scored on; None for an audio set (every clip has a row)."""
    if isinstance(params, LandmarkParams):
        return faceless_clips(store, params, features)
    return None
