"""The audio models: what each is, its search space and refinement, and which feature sets it reads.

How they are tuned (actor-grouped randomized search, then a grid around the
best candidate) is :mod:`emotion.models.tuning`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import loguniform, randint, uniform
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from emotion.core import names
from emotion.core.errors import UsageError
from emotion.core.names import DEFAULT_MODELS, default_models
from emotion.models.ensemble import SoftVotingEnsemble, tune_ensemble
from emotion.models.search import SearchParams
from emotion.models.tuning import ModelSpec, TuneResult, predict_scores, tune

__all__ = ["MODELS", "DEFAULT_MODELS", "ModelSpec", "SearchParams", "TuneResult", "check_features", "default_models",
           "model_spec", "predict_scores", "tune"]


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
    from emotion.models.feature_nets import KerasMLPClassifier

    return KerasMLPClassifier(seed=seed)


def _melcnn(seed: int) -> BaseEstimator:
    from emotion.models.feature_nets import KerasSpecCNN

    return KerasSpecCNN(seed=seed)


def _refine_mlp(best: dict[str, Any]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {k: [v] for k, v in best.items()}
    grid["l2"] = _logs(best["l2"])
    return grid


def _ensemble(seed: int) -> BaseEstimator:
    return SoftVotingEnsemble()


def _tune_ensemble(X: np.ndarray, y: np.ndarray, groups: np.ndarray, params: SearchParams, n_jobs: int = 1,
                   copies: int = 1) -> TuneResult:
    return tune_ensemble(X, y, groups, params, n_jobs=n_jobs, spec_of=model_spec, copies=copies)


def _rf(seed: int) -> BaseEstimator:
    return RandomForestClassifier(random_state=seed, n_jobs=1)


def _svc(seed: int) -> BaseEstimator:
    svc = SVC(kernel="rbf", random_state=seed, cache_size=500)
    return Pipeline([("scale", StandardScaler()), ("clf", OneVsRestClassifier(svc))])


def _xgb(seed: int) -> BaseEstimator:
    from emotion.models.xgb import LabelledXGBClassifier

    return LabelledXGBClassifier(
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
        feature_sets=names.MODEL_FEATURE_SETS["melcnn"],
        # 2: the augmentation draws the shift, the noise and each mask's width and start apart (one op seed made
        # them one draw); runs of revision 1 are trained again
        revision=2,
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


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UsageError(f"unknown model {name!r}; choose from {', '.join(MODELS)}") from None


def check_features(name: str, feature_set: str) -> ModelSpec:
    """The spec of model ``name``, after checking that it can read ``feature_set`` (:mod:`emotion.core.names`)."""
    names.check_features(name, feature_set)
    return model_spec(name)
