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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import GroupKFold, ParameterGrid, ParameterSampler
from sklearn.utils.parallel import Parallel, delayed

from emotion.audio.augment import copies_of, stack_copies
from emotion.core.errors import UsageError
from emotion.core.progress import ProgressFn, report
from emotion.models.search import SearchParams, too_few_cv_actors

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
    # the revision of the model's training: one up when the same inputs give another result, so that stored runs of
    # the model are trained again rather than reused (part of the run's version; 1 leaves earlier versions unchanged)
    revision: int = 1


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
    spec: ModelSpec, X: np.ndarray, y: np.ndarray, groups: np.ndarray, params: SearchParams, n_jobs: int = 1,
    progress: ProgressFn | None = None, copies: int = 1,
) -> TuneResult:
    """Randomized search (then grid refinement) with actor-grouped CV; refits the best on all of ``X``.

    With ``copies`` > 1 a row of ``X`` holds a clip and its augmented copies (:mod:`emotion.audio.augment`), and
    every fit is the one a run makes: each fold's model is fitted on its training clips and their copies, and
    scored on the held-out actors' clips by its probabilities averaged over each clip and its copies (a clip and
    its copies are one row: never in two folds). The CV score is thus the augmented model's own, and choosing
    augmentation or not is a choice by grouped CV like any other. The final fit takes every clip and copy.

    ``progress`` is told of every fit (candidate and fold) as it finishes.
    """
    few = too_few_cv_actors(np.unique(groups).tolist(), params.cv_folds)
    if few:
        raise UsageError(few)
    copies_of(X, copies)  # checks the width
    if spec.tuner is not None:
        return spec.tuner(X, y, groups, params, n_jobs=n_jobs, copies=copies)
    t0 = time.perf_counter()
    cv = GroupKFold(n_splits=params.cv_folds)
    stages: list[dict[str, Any]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        candidates = list(ParameterSampler(spec.space, params.n_iter, random_state=params.seed))
        search = grid_search(spec.build(params.seed), candidates, X, y, groups, cv, n_jobs,
                             _search_progress(progress, spec.name, "search"), copies)
        stages.append(_stage("randomized", search))
        if spec.name == "svc":
            stages[-1]["best_by_kernel"] = _best_by(search, "param_clf__estimator__kernel")
        if params.refine and spec.refine is not None:
            grid = spec.refine({k: _plain(v) for k, v in search.best_params_.items()})
            refined = grid_search(spec.build(params.seed), list(ParameterGrid(grid)), X, y, groups, cv, n_jobs,
                                  _search_progress(progress, spec.name, "refine"), copies)
            stages.append(_stage("grid", refined))
            if refined.best_score_ >= search.best_score_:
                search = refined
    best = {k: _plain(v) for k, v in search.best_params_.items()}
    i = search.best_index_
    cv_acc = float(search.cv_results_["mean_test_score"][i])
    cv_std = float(search.cv_results_["std_test_score"][i])
    final = clone(spec.build(params.seed)).set_params(**best, **spec.finalize)
    fit_rows(final, X, y, copies)
    return TuneResult(final, best, cv_acc, cv_std, stages, time.perf_counter() - t0)


@dataclass
class SearchResult:
    """What :func:`grid_search` found, under the names of scikit-learn's search objects."""

    cv_results_: dict[str, Any]
    best_index_: int
    best_params_: dict[str, Any]
    best_score_: float


FitProgress = Callable[[int, int, int, float], None]  # fits done, fits in all, folds, best mean score so far


def _search_progress(progress: ProgressFn | None, model: str, stage: str) -> FitProgress | None:
    if progress is None:
        return None

    def tell(done: int, total: int, folds: int, best: float) -> None:
        note = f"{total // folds} candidates x {folds} folds" + (f", best CV {best:.3f}" if best == best else "")
        report(progress, f"{model} {stage}", done, total, "fits", note)

    return tell


def fit_rows(est: BaseEstimator, X: np.ndarray, y: np.ndarray, copies: int = 1) -> BaseEstimator:
    """``est`` fitted on rows of ``copies`` vectors each: every copy a training row of its clip's label."""
    return est.fit(*stack_copies(X, y, copies)) if copies > 1 else est.fit(X, y)


def labels_of(est: Any, proba: np.ndarray) -> np.ndarray:
    """The label of the highest of each row of ``est``'s class scores ``proba``."""
    classes = np.asarray(getattr(est, "classes_", np.arange(proba.shape[1])), dtype=int)
    return classes[np.argmax(proba, axis=1)]


def predict_rows(est: BaseEstimator, X: np.ndarray, copies: int = 1) -> np.ndarray:
    """Labels of rows of ``copies`` vectors each: the class of the highest score averaged over the copies."""
    if copies == 1:
        return np.asarray(est.predict(X))
    return labels_of(est, predict_copies(est, X, copies))


def _fit_and_score(est: BaseEstimator, params: dict[str, Any], X: np.ndarray, y: np.ndarray, train: np.ndarray,
                   test: np.ndarray, copies: int = 1) -> float:
    est = fit_rows(clone(est).set_params(**params), X[train], y[train], copies)
    return float(np.mean(predict_rows(est, X[test], copies) == y[test]))


def grid_search(est: BaseEstimator, candidates: list[dict[str, Any]], X: np.ndarray, y: np.ndarray, groups: np.ndarray,
                cv: GroupKFold, n_jobs: int = 1, progress: FitProgress | None = None, copies: int = 1) -> SearchResult:
    """Accuracy of every candidate in every fold of ``cv`` (grouped by ``groups``), fits in ``n_jobs`` processes
    (rows of ``copies`` vectors each: see :func:`tune`).

    The same fits, scores and choice as scikit-learn's ``RandomizedSearchCV`` / ``GridSearchCV`` with
    ``scoring="accuracy"`` and ``refit=False`` (the best candidate is the first of the highest mean), but
    ``progress`` hears of each fit as it finishes, in this process.
    """
    splits = list(cv.split(X, y, groups))
    jobs = [(c, f) for c in range(len(candidates)) for f in range(len(splits))]
    scores = np.full((len(candidates), len(splits)), np.nan)
    done = 0
    if progress is not None:
        progress(0, len(jobs), len(splits), float("nan"))
    parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
    results = parallel(delayed(_indexed)(c, f, est, candidates[c], X, y, *splits[f], copies) for c, f in jobs)
    for c, f, score in results:
        scores[c, f] = score
        done += 1
        if progress is not None:
            complete = ~np.isnan(scores).any(axis=1)
            best = float(scores[complete].mean(axis=1).max()) if complete.any() else float("nan")
            progress(done, len(jobs), len(splits), best)
    means, stds = scores.mean(axis=1), scores.std(axis=1)
    best_index = int(np.argmax(means))
    results_table: dict[str, Any] = {"params": candidates, "mean_test_score": means, "std_test_score": stds}
    for name in {k for c in candidates for k in c}:
        results_table[f"param_{name}"] = [c.get(name) for c in candidates]
    return SearchResult(results_table, best_index, candidates[best_index], float(means[best_index]))


def _indexed(c: int, f: int, est: BaseEstimator, params: dict[str, Any], X: np.ndarray, y: np.ndarray,
             train: np.ndarray, test: np.ndarray, copies: int = 1) -> tuple[int, int, float]:
    return c, f, _fit_and_score(est, params, X, y, train, test, copies)


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
