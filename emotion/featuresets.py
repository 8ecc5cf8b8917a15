"""The audio feature sets selectable with ``--features NAME``, and their extractors.

* ``seed``: the baseline recipe (:mod:`emotion.features`)
* ``extended``: our librosa/numpy set (:mod:`emotion.features_extended`)
* ``logmel``: a fixed-size log-mel spectrogram per clip, for the spectrogram
  CNN ``melcnn`` (:mod:`emotion.features_logmel`)
* ``egemaps``, ``compare``: openSMILE functionals, only where the optional
  ``opensmile`` package is installed (:mod:`emotion.features_opensmile`)

Each set's parameters are a frozen dataclass with a ``name``, a ``hash`` and a
``key`` (``<name>-<hash>``) naming its folder in the store, so sets live side
by side.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from emotion.errors import UsageError
from emotion.features import AudioFeatureExtractor, AudioFeatureParams
from emotion.features_extended import ExtendedFeatureExtractor, ExtendedFeatureParams
from emotion.features_logmel import LogMelExtractor, LogMelParams
from emotion.features_opensmile import OPENSMILE_SETS, OpenSmileExtractor, OpenSmileParams, _require

FeatureParams = AudioFeatureParams | ExtendedFeatureParams | LogMelParams | OpenSmileParams
FEATURE_SET_NAMES = ("seed", "extended", "logmel", *OPENSMILE_SETS)


class Extractor(Protocol):
    params: Any
    names: list[str]

    def __call__(self, y: np.ndarray) -> np.ndarray: ...


# each set's parameter class and extractor; the openSMILE sets share one of each (the set's name is a parameter)
_SETS: dict[str, tuple[type[Any], type[Any]]] = {
    "seed": (AudioFeatureParams, AudioFeatureExtractor),
    "extended": (ExtendedFeatureParams, ExtendedFeatureExtractor),
    "logmel": (LogMelParams, LogMelExtractor),
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
