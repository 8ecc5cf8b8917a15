"""How the audio models are tuned, and how any fitted model scores.

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
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import GridSearchCV, GroupKFold, RandomizedSearchCV

from emotion.audio.augment import copies_of
from emotion.core.errors import UsageError


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


def predict_scores(est: BaseEstimator, X: np.ndarray) -> np.ndarray:
    """Class probabilities, or a softmax of decision values where a model has no probabilities."""
    if hasattr(est, "predict_proba"):
        return np.asarray(est.predict_proba(X))
    d = np.asarray(est.decision_function(X))  # type: ignore[attr-defined]
    e = np.exp(d - d.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def predict_copies(est: Any, X: np.ndarray, k: int) -> np.ndarray:
    """Class scores averaged over the ``k`` augmented copies of each row (test-time augmentation)."""
    c = copies_of(X, k)
    return np.asarray(np.mean([predict_scores(est, cj) for cj in c], axis=0))


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
