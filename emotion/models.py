"""The audio models and how they are tuned.

Each model is a scikit-learn estimator (XGBoost's sklearn API included), so
search, ``clone`` and pipelines treat them alike. Tuning is speaker
independent: every cross-validation fold holds out whole actors
(:class:`~sklearn.model_selection.GroupKFold` on the actor column).

Tuning follows the baseline recipe: a randomized search over ``n_iter``
candidates, then, for models with a ``refine`` rule, a grid search around the
best candidate. Seeds are fixed, so a rerun gives the same numbers.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import loguniform, randint, uniform
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, GroupKFold, RandomizedSearchCV
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from emotion.errors import UsageError


@dataclass(frozen=True)
class SearchParams:
    """Result-changing settings of the hyper-parameter search."""

    n_iter: int = 50
    cv_folds: int = 3
    refine: bool = True
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Refiner = Callable[[dict[str, Any]], dict[str, list[Any]]]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    title: str
    build: Callable[[int], BaseEstimator]
    space: dict[str, Any]
    refine: Refiner | None = None
    # applied to the best estimator before the final fit (e.g. SVC probabilities)
    finalize: dict[str, Any] = field(default_factory=dict)
    # a tuning procedure of its own (the ensemble), instead of randomized search + grid
    tuner: Callable[..., TuneResult] | None = None
    # the feature sets the model can read (empty: any)
    feature_sets: tuple[str, ...] = ()


def _ints(v: int, lo: int, factors: tuple[float, ...] = (0.7, 1.0, 1.4)) -> list[int]:
    return sorted({max(lo, int(round(v * f))) for f in factors})


def _logs(v: float, factors: tuple[float, ...] = (1 / 3, 1.0, 3.0)) -> list[float]:
    return sorted({float(v * f) for f in factors})


def _refine_rf(best: dict[str, Any]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {k: [v] for k, v in best.items()}
    grid["n_estimators"] = _ints(best["n_estimators"], 50)
    grid["min_samples_split"] = _ints(best["min_samples_split"], 2, (0.5, 1.0, 1.5))
    return grid


def _refine_svc(best: dict[str, Any]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {k: [v] for k, v in best.items()}
    grid["clf__estimator__C"] = _logs(best["clf__estimator__C"])
    if best.get("clf__estimator__kernel") == "rbf":
        grid["clf__estimator__gamma"] = _logs(best["clf__estimator__gamma"])
    return grid


def _refine_lr(best: dict[str, Any]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {k: [v] for k, v in best.items()}
    grid["clf__C"] = _logs(best["clf__C"], (0.5, 1.0, 2.0))
    return grid


def _lr(seed: int) -> BaseEstimator:
    lr = LogisticRegression(max_iter=3000, random_state=seed)
    return Pipeline([("scale", StandardScaler()), ("clf", lr)])


def _mlp(seed: int) -> BaseEstimator:
    from emotion.neural import KerasMLPClassifier

    return KerasMLPClassifier(seed=seed)


def _melcnn(seed: int) -> BaseEstimator:
    from emotion.neural import KerasSpecCNN

    return KerasSpecCNN(seed=seed)


def _refine_mlp(best: dict[str, Any]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {k: [v] for k, v in best.items()}
    grid["l2"] = _logs(best["l2"])
    return grid


def _ensemble(seed: int) -> BaseEstimator:
    from emotion.ensemble import SoftVotingEnsemble

    return SoftVotingEnsemble()


def _tune_ensemble(*args: Any, **kwargs: Any) -> TuneResult:
    from emotion.ensemble import tune_ensemble

    return tune_ensemble(*args, **kwargs)  # type: ignore[no-any-return]


def _rf(seed: int) -> BaseEstimator:
    return RandomForestClassifier(random_state=seed, n_jobs=1)


def _svc(seed: int) -> BaseEstimator:
    svc = SVC(kernel="rbf", random_state=seed, cache_size=500)
    return Pipeline([("scale", StandardScaler()), ("clf", OneVsRestClassifier(svc))])


def _xgb(seed: int) -> BaseEstimator:
    from xgboost import XGBClassifier

    return XGBClassifier(
        objective="multi:softprob", tree_method="hist", n_jobs=1, random_state=seed, verbosity=0
    )


MODELS: dict[str, ModelSpec] = {
    "rf": ModelSpec(
        "rf", "Random Forest", _rf,
        {
            "n_estimators": randint(100, 501),
            "max_depth": [None, 10, 20, 30],
            "max_features": ["sqrt", "log2", 0.2, 0.35],
            "min_samples_split": randint(2, 11),
            "min_samples_leaf": randint(1, 5),
            "bootstrap": [True, False],
            "class_weight": [None, "balanced"],
        },
        _refine_rf,
    ),
    "svc": ModelSpec(
        "svc", "SVC (one-vs-rest; RBF and linear compared)", _svc,
        {
            "clf__estimator__kernel": ["rbf", "rbf", "rbf", "linear"],
            "clf__estimator__C": loguniform(1e-2, 1e3),
            "clf__estimator__gamma": loguniform(1e-4, 1e-1),
            "clf__estimator__class_weight": [None, "balanced"],
        },
        _refine_svc,
    ),
    "lr": ModelSpec(
        "lr", "Logistic regression (multinomial, L2)", _lr,
        {"clf__C": loguniform(1e-4, 1.0), "clf__class_weight": [None, "balanced"]},
        _refine_lr,
    ),
    "mlp": ModelSpec(
        "mlp", "Keras MLP on the features", _mlp,
        {
            "hidden": [128, 256, 512],
            "layers": [1, 2],
            "dropout": uniform(0.1, 0.4),
            "l2": loguniform(1e-5, 1e-2),
            "learning_rate": loguniform(3e-4, 3e-3),
            "epochs": [30, 60],
        },
        _refine_mlp,
    ),
    # a small discrete space (each fit costs about a minute): the randomized search tries both candidates, whatever n_iter
    "melcnn": ModelSpec(
        "melcnn", "Keras CNN on log-mel spectrograms", _melcnn,
        {"filters": [(16, 32, 64), (32, 64, 128)], "dropout": [0.3], "epochs": [40]},
        feature_sets=("logmel",),
    ),
    "xgb": ModelSpec(
        "xgb", "XGBoost", _xgb,
        {
            "n_estimators": randint(100, 401),
            "max_depth": randint(2, 7),
            "learning_rate": loguniform(0.02, 0.3),
            "subsample": uniform(0.6, 0.4),
            "colsample_bytree": uniform(0.3, 0.7),
            "min_child_weight": randint(1, 6),
            "reg_lambda": loguniform(0.1, 10.0),
        },
    ),
    "ensemble": ModelSpec(
        "ensemble", "Soft-voting ensemble (members and weights by actor-grouped CV)", _ensemble, {},
        tuner=_tune_ensemble,
    ),
}


def predict_scores(est: BaseEstimator, X: np.ndarray) -> np.ndarray:
    """Class probabilities, or a softmax of decision values where a model has no probabilities."""
    if hasattr(est, "predict_proba"):
        return np.asarray(est.predict_proba(X))
    d = np.asarray(est.decision_function(X))  # type: ignore[attr-defined]
    e = np.exp(d - d.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# trained when no model is named: the baseline three, and LR, the best on richer, speaker-normalised features
DEFAULT_MODELS = ("rf", "svc", "xgb", "lr")


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UsageError(f"unknown model {name!r}; choose from {', '.join(MODELS)}") from None


# the wide sets (1453 and 6373 columns): LR and SVC, the best there; a tree model's 150-fit search on so many
# columns takes over an hour on 2 cores (one XGBoost fit on 800 x 1453: 7-113 s; a forest of 300 at 0.2 of the
# columns per split: 42 s). Named with --model, rf and xgb still run.
WIDE_SET_MODELS = ("lr", "svc")
_WIDE_SETS = ("extended", "compare")


def default_models(feature_set: str) -> tuple[str, ...]:
    """The audio models trained when none is named: the spectrogram CNN on spectrograms, LR and SVC on the wide
    sets, else ``DEFAULT_MODELS``."""
    own = tuple(n for n, s in MODELS.items() if feature_set in s.feature_sets)
    if own:
        return own
    return WIDE_SET_MODELS if feature_set in _WIDE_SETS else DEFAULT_MODELS


def check_features(name: str, feature_set: str) -> ModelSpec:
    """The spec of model ``name``, after checking that it can read ``feature_set``."""
    spec = model_spec(name)
    if spec.feature_sets and feature_set not in spec.feature_sets:
        raise UsageError(f"model {name!r} reads the {' or '.join(spec.feature_sets)} feature set, not {feature_set!r}; "
                         f"add --features {spec.feature_sets[0]}")
    return spec


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


@dataclass
class TuneResult:
    estimator: BaseEstimator
    best_params: dict[str, Any]
    cv_accuracy: float
    cv_std: float
    stages: list[dict[str, Any]]
    seconds: float


def tune(
    spec: ModelSpec, X: np.ndarray, y: np.ndarray, groups: np.ndarray, params: SearchParams, n_jobs: int = 1
) -> TuneResult:
    """Randomized search (then grid refinement) with actor-grouped CV; refits the best on all of ``X``."""
    n_groups = len(np.unique(groups))
    if n_groups < params.cv_folds:
        raise UsageError(f"grouped CV needs at least {params.cv_folds} training actors, got {n_groups}")
    if spec.tuner is not None:
        return spec.tuner(X, y, groups, params, n_jobs=n_jobs)
    t0 = time.perf_counter()
    cv = GroupKFold(n_splits=params.cv_folds)
    stages: list[dict[str, Any]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        search: RandomizedSearchCV | GridSearchCV = RandomizedSearchCV(
            spec.build(params.seed), spec.space, n_iter=params.n_iter, cv=cv, scoring="accuracy",
            random_state=params.seed, n_jobs=n_jobs, refit=False, error_score="raise",
        )
        search.fit(X, y, groups=groups)
        stages.append(_stage("randomized", search))
        if spec.name == "svc":
            stages[-1]["best_by_kernel"] = _best_by(search, "param_clf__estimator__kernel")
        if params.refine and spec.refine is not None:
            grid = spec.refine({k: _plain(v) for k, v in search.best_params_.items()})
            refined = GridSearchCV(spec.build(params.seed), grid, cv=cv, scoring="accuracy", n_jobs=n_jobs,
                                   refit=False, error_score="raise")
            refined.fit(X, y, groups=groups)
            stages.append(_stage("grid", refined))
            if refined.best_score_ >= search.best_score_:
                search = refined
    best = {k: _plain(v) for k, v in search.best_params_.items()}
    i = search.best_index_
    cv_acc = float(search.cv_results_["mean_test_score"][i])
    cv_std = float(search.cv_results_["std_test_score"][i])
    final = clone(spec.build(params.seed)).set_params(**best, **spec.finalize)
    final.fit(X, y)
    return TuneResult(final, best, cv_acc, cv_std, stages, time.perf_counter() - t0)


def _stage(kind: str, search: Any) -> dict[str, Any]:
    return {
        "stage": kind,
        "candidates": int(len(search.cv_results_["params"])),
        "best_cv_accuracy": float(search.best_score_),
        "best_params": {k: _plain(v) for k, v in search.best_params_.items()},
    }


def _best_by(search: Any, column: str) -> dict[str, float]:
    res = search.cv_results_
    out: dict[str, float] = {}
    for value, score in zip(res[column], res["mean_test_score"], strict=True):
        out[str(value)] = max(out.get(str(value), -1.0), float(score))
    return out
