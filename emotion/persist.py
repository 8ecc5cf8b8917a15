"""Saving and loading models in formats that cannot execute code on load.

scikit-learn estimators are stored with skops (``.skops``), refused on load if
they contain any type outside an allow-list; XGBoost models as XGBoost's own
JSON, Keras networks in Keras' native ``.keras`` format (loaded in safe mode,
which refuses serialized Python code). The SHA-256 of the model file is recorded next to it at save time and
checked before anything is parsed: a tampered or swapped file is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from sklearn.base import BaseEstimator

from emotion.errors import ModelIntegrityError

# Types a saved model may contain beyond what skops trusts by default.
TRUSTED_TYPES: frozenset[str] = frozenset({
    "sklearn.multiclass.OneVsRestClassifier",
    "sklearn.svm._classes.SVC",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.pipeline.Pipeline",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.utils._bunch.Bunch",
    "numpy.dtype",
    "numpy.ndarray",
    "builtins.slice",
    "collections.OrderedDict",
    "emotion.fusion.AudioVisualFusion",
})


@dataclass(frozen=True)
class SavedModel:
    file: str  # file name within the run folder
    format: str  # "skops", "xgboost-json" or "keras"
    sha256: str
    estimator: str | None = None  # for "keras": which wrapper (emotion.nn.NN_MODELS)
    params: dict[str, Any] | None = None  # for "keras": the wrapper's parameters

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"file": self.file, "format": self.format, "sha256": self.sha256}
        if self.estimator is not None:
            d.update(estimator=self.estimator, params=self.params)
        return d


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_xgb(est: Any) -> bool:
    return type(est).__module__.startswith("xgboost")


def dump_model(est: BaseEstimator) -> tuple[bytes, SavedModel]:
    """Serialize ``est``; returns the bytes and what to record about them."""
    if hasattr(est, "to_bytes") and hasattr(est, "model_"):  # Keras frame models (emotion.nn)
        data = est.to_bytes()
        return data, SavedModel("model.keras", "keras", sha256(data), str(est.name), est.get_params())
    if _is_xgb(est):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "model.json")
            est.save_model(p)  # type: ignore[attr-defined]
            with open(p, "rb") as fh:
                data = fh.read()
        return data, SavedModel("model.json", "xgboost-json", sha256(data))
    import skops.io as sio

    data = sio.dumps(est)
    return data, SavedModel("model.skops", "skops", sha256(data))


def load_model(data: bytes, record: dict[str, Any], *, source: str = "model") -> BaseEstimator:
    """Rebuild a model from ``data`` after checking it against ``record``."""
    want = record.get("sha256")
    got = sha256(data)
    if not want or got != want:
        raise ModelIntegrityError(f"{source}: SHA-256 {got[:12]}… does not match the recorded "
                                  f"{str(want)[:12]}…; refusing to load a modified model")
    fmt = record.get("format")
    if fmt == "xgboost-json":
        from xgboost import XGBClassifier

        try:
            json.loads(data)
        except ValueError:
            raise ModelIntegrityError(f"{source}: not an XGBoost JSON model") from None
        model = XGBClassifier()
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "model.json")
            with open(p, "wb") as fh:
                fh.write(data)
            model.load_model(p)
        return model
    if fmt == "keras":
        from emotion.nn import NN_MODELS

        cls = NN_MODELS.get(str(record.get("estimator")))
        if cls is None:
            raise ModelIntegrityError(f"{source}: unknown Keras model kind {record.get('estimator')!r}")
        try:
            return cls.from_bytes(data, dict(record.get("params") or {}))
        except ModelIntegrityError as exc:
            raise ModelIntegrityError(f"{source}: {exc}") from None
    if fmt == "skops":
        import skops.io as sio

        untrusted = set(sio.get_untrusted_types(data=data))
        unexpected = sorted(untrusted - TRUSTED_TYPES)
        if unexpected:
            raise ModelIntegrityError(f"{source}: contains types outside the allow-list: {', '.join(unexpected)}")
        return sio.loads(data, trusted=sorted(untrusted))
    raise ModelIntegrityError(f"{source}: unknown model format {fmt!r}")
