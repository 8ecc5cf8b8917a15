"""Saving and loading models in formats that cannot execute code on load.

scikit-learn estimators are stored with skops (``.skops``), refused on load if
they contain any type outside an allow-list; XGBoost models as XGBoost's own
JSON (their labels in the record's ``meta``); Keras networks in Keras' native ``.keras`` format, loaded in safe mode
(which refuses serialized Python code, lambdas or custom layers): the audio
MLP and spectrogram CNN (kind, classes and parameters in the record's ``meta``) and the video frame
models (which wrapper in ``estimator``, its parameters in ``params``); an
ensemble as a zip of its members' files, each in one of those formats with
its own SHA-256, plus a JSON manifest (names, weights, records). An XGBoost model's JSON holds its trees but not
the scikit-learn parameters it was built with (``n_estimators``, ``max_depth``, ...): they go into ``meta`` too,
so that a copy of the loaded model (``clone``, as LOSO with ``--fixed-params`` makes) trains as the stored one
was trained. The SHA-256
of the model file is recorded next to it at save time and
checked before anything is parsed: a tampered or swapped file is refused. The bytes of a file are a function of the
fitted model (and the versions of the libraries that write it): what skops and zip writers take from the process and
the clock (addresses in memory, times of writing) is replaced by what the content gives (:mod:`emotion.models.archive`),
so the same training saves a file of the same SHA-256.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import posixpath
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Any

from sklearn.base import BaseEstimator

from emotion.core.errors import ModelIntegrityError, StoreError
from emotion.models.archive import canonical_skops, zip_bytes
from emotion.store.runs import MAX_MODEL_BYTES, model_file_path
from emotion.store.store import Store

# Types a saved model may contain beyond what skops trusts by default.
TRUSTED_TYPES: frozenset[str] = frozenset({
    "sklearn.multiclass.OneVsRestClassifier",
    "sklearn.svm._classes.SVC",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.impute._base.SimpleImputer",
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
    "emotion.models.fusion.AudioVisualFusion",
})


# Modules whose classes moved when emotion/ was grouped into subpackages: a model file saved before names the
# old module (skops records each type as module.Class), so the old name still loads the class it meant.
LEGACY_MODULES: dict[str, str] = {"emotion.fusion": "emotion.models.fusion"}


def _current_name(type_name: str) -> str:
    """``emotion.fusion.AudioVisualFusion`` (as files of the flat layout name it) -> its name today."""
    module, _, cls = type_name.rpartition(".")
    return f"{LEGACY_MODULES.get(module, module)}.{cls}"


def _alias_legacy_modules(type_names: set[str]) -> None:
    """Let skops import the old module names a file uses: each is the module that holds those classes today."""
    for t in type_names:
        module = t.rpartition(".")[0]
        if module in LEGACY_MODULES and module not in sys.modules:
            sys.modules[module] = importlib.import_module(LEGACY_MODULES[module])


@dataclass(frozen=True)
class SavedModel:
    file: str  # file name within the run folder
    format: str  # "skops", "xgboost-json", "keras" or "ensemble-zip"
    sha256: str
    meta: dict[str, Any] | None = None  # what the format does not hold itself (a feature net's kind, classes, parameters)
    estimator: str | None = None  # for Keras frame models: which wrapper (emotion.models.frame_nets.NN_MODELS)
    params: dict[str, Any] | None = None  # for Keras frame models: the wrapper's parameters

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"file": self.file, "format": self.format, "sha256": self.sha256}
        if self.meta is not None:
            d["meta"] = self.meta
        if self.estimator is not None:
            d.update(estimator=self.estimator, params=self.params)
        return d


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_xgb(est: Any) -> bool:
    return any(c.__module__.startswith("xgboost") for c in type(est).__mro__)


def dump_model(est: BaseEstimator) -> tuple[bytes, SavedModel]:
    """Serialize ``est``; returns the bytes and what to record about them."""
    from emotion.models.ensemble import SoftVotingEnsemble
    from emotion.models.feature_nets import KerasFeatureClassifier
    from emotion.models.frame_nets import KerasFrameClassifier

    if isinstance(est, KerasFeatureClassifier):  # the audio MLP and spectrogram CNN (emotion.models.feature_nets)
        data = est.to_bytes()
        meta = {"classes": [_plain(c) for c in est.classes_], "params": est.get_params(), "kind": est.kind}
        return data, SavedModel("model.keras", "keras", sha256(data), meta=meta)
    if isinstance(est, KerasFrameClassifier):  # video frame models (emotion.models.frame_nets)
        data = est.to_bytes()
        return data, SavedModel("model.keras", "keras", sha256(data), estimator=str(est.name), params=est.get_params())
    if isinstance(est, SoftVotingEnsemble):
        return _dump_ensemble(est)
    if _is_xgb(est):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "model.json")
            est.save_model(p)  # type: ignore[attr-defined]
            with open(p, "rb") as fh:
                data = fh.read()
        # the labels behind XGBoost's class indices 0..k-1 (a corpus may lack some emotions), and the parameters
        meta = {"classes": [_plain(c) for c in est.classes_], "params": xgb_params(est)}
        return data, SavedModel("model.json", "xgboost-json", sha256(data), meta=meta)
    import skops.io as sio

    data = canonical_skops(sio.dumps(est))  # named and dated by content, not by addresses in memory and the clock
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
        import numpy as np

        from emotion.models.xgb import LabelledXGBClassifier

        try:
            json.loads(data)
        except ValueError:
            raise ModelIntegrityError(f"{source}: not an XGBoost JSON model") from None
        model = LabelledXGBClassifier()
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "model.json")
            with open(p, "wb") as fh:
                fh.write(data)
            model.load_model(p)
        classes = (record.get("meta") or {}).get("classes")  # absent in records of the first release: labels 0..k-1
        if classes is not None:
            if len(classes) != model.n_classes_:
                raise ModelIntegrityError(f"{source}: {len(classes)} recorded classes for a model of {model.n_classes_}")
            model.labels_ = np.asarray(classes)
        params = (record.get("meta") or {}).get("params")  # absent before they were recorded: see restore_xgb_params
        if params is not None:
            model.set_params(**params)
        return model
    if fmt == "keras":
        if record.get("estimator") is not None:  # a video frame model (emotion.models.frame_nets)
            from emotion.models.frame_nets import NN_MODELS

            cls = NN_MODELS.get(str(record.get("estimator")))
            if cls is None:
                raise ModelIntegrityError(f"{source}: unknown Keras model kind {record.get('estimator')!r}")
            try:
                return cls.from_bytes(data, dict(record.get("params") or {}))
            except ModelIntegrityError as exc:
                raise ModelIntegrityError(f"{source}: {exc}") from None
        from emotion.models.feature_nets import (
            FEATURE_NETS,  # the audio MLP or spectrogram CNN: kind, classes, parameters in "meta"
        )

        meta = record.get("meta") or {}
        net = FEATURE_NETS.get(str(meta.get("kind", "mlp")))  # records without a kind are the MLP's (the first release)
        if net is None:
            raise ModelIntegrityError(f"{source}: unknown Keras model kind {meta.get('kind')!r}")
        try:
            return net.from_bytes(data, meta["classes"], meta.get("params", {}))
        except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
            raise ModelIntegrityError(f"{source}: not a loadable Keras model ({type(exc).__name__})") from None
    if fmt == "ensemble-zip":
        return _load_ensemble(data, source)
    if fmt == "skops":
        import skops.io as sio

        untrusted = set(sio.get_untrusted_types(data=data))
        unexpected = sorted(t for t in untrusted if _current_name(t) not in TRUSTED_TYPES)
        if unexpected:
            raise ModelIntegrityError(f"{source}: contains types outside the allow-list: {', '.join(unexpected)}")
        _alias_legacy_modules(untrusted)
        return sio.loads(data, trusted=sorted(untrusted))
    raise ModelIntegrityError(f"{source}: unknown model format {fmt!r}")


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def xgb_params(est: Any) -> dict[str, Any]:
    """The JSON-safe part of an XGBoost model's scikit-learn parameters: numbers, strings, booleans and None.

    Left out (a fresh model's default applies on load): ``missing`` while it is NaN, callbacks and other objects."""
    out: dict[str, Any] = {}
    for k, v in est.get_params(deep=False).items():
        v = _plain(v)
        if v is None or isinstance(v, (bool, int, str)) or (isinstance(v, float) and math.isfinite(v)):
            out[k] = v
    return out


def _bare_xgb(est: Any) -> bool:
    """An XGBoost model loaded from a record without parameters: all of them unset (the catalog always sets some)."""
    return _is_xgb(est) and est.get_params().get("n_estimators") is None and est.get_params().get("tree_method") is None


def restore_xgb_params(est: BaseEstimator, run_params: dict[str, Any], seed: int) -> list[str]:
    """Give the XGBoost models in ``est`` (itself, or an ensemble's members) that were loaded from a record of
    before parameters were recorded the parameters of their run: the catalog's ``xgb`` built with ``seed`` (the
    run's search seed) and the chosen ``run_params`` (``best_params`` of the run's params.json; an ensemble's are
    prefixed with the member's name, ``xgb__max_depth``). Returns the names of the models it changed."""
    from emotion.models.catalog import model_spec
    from emotion.models.ensemble import SoftVotingEnsemble

    base = xgb_params(model_spec("xgb").build(seed))
    if isinstance(est, SoftVotingEnsemble):
        members = [(n, m, f"{n}__") for n, m in [*est.members, *getattr(est, "fitted_", [])]]
    else:
        members = [("xgb", est, "")]
    changed: list[str] = []
    for name, m, prefix in members:
        if not _bare_xgb(m):
            continue
        known = m.get_params()
        chosen = {k[len(prefix):]: v for k, v in run_params.items() if k.startswith(prefix) and k[len(prefix):] in known}
        m.set_params(**{**base, **chosen})
        if name not in changed:
            changed.append(name)
    return changed


def _dump_ensemble(est: Any) -> tuple[bytes, SavedModel]:
    manifest: dict[str, Any] = {"weights": [float(w) for w in est.weights], "members": []}
    entries: list[tuple[str, bytes]] = []
    for i, (name, member) in enumerate(est.fitted_):
        blob, rec = dump_model(member)
        arc = f"{i:02d}-{name}-{rec.file}"
        entries.append((arc, blob))
        manifest["members"].append({"name": name, "entry": arc, "record": rec.to_dict()})
    manifest["classes"] = [_plain(c) for c in est.classes_]
    entries.append(("manifest.json", json.dumps(manifest, sort_keys=True).encode()))
    data = zip_bytes(entries, zipfile.ZIP_DEFLATED)  # entries dated alike (archive.zip_bytes), compressed as before
    return data, SavedModel("model.zip", "ensemble-zip", sha256(data))


MAX_MEMBER_BYTES = 1 << 30


def _load_ensemble(data: bytes, source: str) -> BaseEstimator:
    import io

    import numpy as np

    from emotion.models.ensemble import SoftVotingEnsemble

    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        manifest = json.loads(zf.read("manifest.json"))
        members = []
        for m in manifest["members"]:
            info = zf.getinfo(m["entry"])
            if info.file_size > MAX_MEMBER_BYTES:
                raise ModelIntegrityError(f"{source}: member {m['entry']} is implausibly large")
            members.append((m["name"], load_model(zf.read(info), m["record"], source=f"{source}:{m['entry']}")))
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelIntegrityError(f"{source}: not a valid ensemble archive ({type(exc).__name__}: {exc})") from None
    est = SoftVotingEnsemble([(n, m) for n, m in members], manifest["weights"])
    est.fitted_ = members
    est.classes_ = np.asarray(manifest["classes"])
    return est


def load_run(store: Store, run_dir: str) -> tuple[BaseEstimator, dict[str, Any]]:
    """The model of a complete run folder (hash-checked) and its ``run.json``."""
    if not store.run_complete(run_dir):
        raise StoreError(f"{run_dir} is not a complete run (no run.json)")
    info = store.read_json(posixpath.join(run_dir, "run.json"))
    record = info.get("model_file") if isinstance(info, dict) else None
    path = model_file_path(run_dir, record)
    data = store.read_limited(path, MAX_MODEL_BYTES)
    est = load_model(data, record or {}, source=path)
    params_path = posixpath.join(run_dir, "params.json")
    if _has_bare_xgb(est) and store.exists(params_path):  # saved before XGBoost's parameters were recorded
        chosen = store.read_json(params_path).get("best_params") or {}
        restore_xgb_params(est, chosen, int((info.get("search") or {}).get("seed", 0)))
    return est, info


def _has_bare_xgb(est: Any) -> bool:
    from emotion.models.ensemble import SoftVotingEnsemble

    if isinstance(est, SoftVotingEnsemble):
        return any(_bare_xgb(m) for _, m in [*est.members, *getattr(est, "fitted_", [])])
    return _bare_xgb(est)
