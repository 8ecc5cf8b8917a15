"""Soft-voting ensembles whose members and weights are chosen by actor-grouped CV.

:func:`tune_ensemble` tunes every candidate model with the usual grouped
search on the training actors, collects each tuned candidate's out-of-fold
class probabilities (the same actor-grouped folds), and picks members and
weights by greedy forward selection with replacement (Caruana et al., 2004):
at each step add the candidate that most improves the out-of-fold accuracy
of the weighted average (ties: lower log-loss). The test actors play no part.
The reported CV accuracy is that of the chosen blend on the out-of-fold
predictions it was chosen on, so it is slightly optimistic.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import GroupKFold

from emotion.core.errors import UsageError
from emotion.models.tuning import ModelSpec, TuneResult, fit_rows, predict_copies, predict_scores, tune

DEFAULT_CANDIDATES = ("lr", "svc", "mlp", "xgb")


class SoftVotingEnsemble(ClassifierMixin, BaseEstimator):
    """The weighted average of members' class probabilities."""

    def __init__(self, members: Sequence[tuple[str, BaseEstimator]] = (), weights: Sequence[float] = ()) -> None:
        self.members = members
        self.weights = weights

    def fit(self, X: np.ndarray, y: np.ndarray) -> SoftVotingEnsemble:
        if not self.members or len(self.members) != len(self.weights):
            raise ValueError("an ensemble needs members and one weight per member")
        self.fitted_ = [(name, clone(est).fit(X, y)) for name, est in self.members]
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The weighted average of the members' scores, columns in the order of ``classes_``."""
        w = np.asarray(self.weights, dtype=float)
        p = sum(wi * aligned_scores(est, X, self.classes_) for wi, (_, est) in zip(w, self.fitted_, strict=True))
        return np.asarray(p) / w.sum()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])


def aligned_scores(est: BaseEstimator, X: np.ndarray, classes: np.ndarray, copies: int = 1) -> np.ndarray:
    """``est``'s class scores as one column per label of ``classes`` (0 for a label ``est`` was not fitted on);
    rows of ``copies`` vectors each: averaged over the copies."""
    scores = predict_copies(est, X, copies) if copies > 1 else predict_scores(est, X)
    own = np.asarray(getattr(est, "classes_", np.arange(scores.shape[1])))
    out = np.zeros((len(scores), len(classes)))
    out[:, np.searchsorted(classes, own)] = scores
    return out


def greedy_weights(oof: dict[str, np.ndarray], y: np.ndarray, rounds: int = 25) -> dict[str, int]:
    """Forward selection with replacement over out-of-fold probabilities; returns how often each was picked.

    ``y`` holds column indices of the probabilities (0..k-1), not labels.
    """
    names = sorted(oof)
    counts = dict.fromkeys(names, 0)
    total = np.zeros_like(next(iter(oof.values())))
    current: tuple[float, float] | None = None
    for _ in range(rounds):
        scored = []
        for n in names:
            p = (total + oof[n]) / (sum(counts.values()) + 1)
            acc = float(np.mean(np.argmax(p, axis=1) == y))
            ll = float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))
            scored.append((acc, -ll, n))
        acc, neg_ll, pick = max(scored)
        if current is not None and (acc, neg_ll) <= current:
            break  # no member improves the blend (accuracy, then log-loss)
        current = (acc, neg_ll)
        counts[pick] += 1
        total = total + oof[pick]
    return {n: c for n, c in counts.items() if c}


def oof_proba(est: BaseEstimator, X: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int,
              copies: int = 1) -> np.ndarray:
    """Out-of-fold class scores, one column per label of ``np.unique(y)`` (a fold may lack some labels); rows of
    ``copies`` vectors each are fitted and scored as :func:`emotion.models.tuning.tune` does."""
    classes = np.unique(y)
    out = np.zeros((len(y), len(classes)))
    for tr, te in GroupKFold(n_splits=folds).split(X, y, groups):
        out[te] = aligned_scores(fit_rows(clone(est), X[tr], y[tr], copies), X[te], classes, copies)
    return out


def tune_ensemble(
    X: np.ndarray, y: np.ndarray, groups: np.ndarray, params: Any, n_jobs: int = 1,
    candidates: Sequence[str] | None = None, spec_of: Callable[[str], ModelSpec] | None = None, copies: int = 1,
) -> TuneResult:
    """Tune ``candidates``, choose members and weights on out-of-fold predictions, fit the blend on all of ``X``
    (rows of ``copies`` vectors each: every fit on the clips and their copies, every score averaged over them).

    ``spec_of`` names each candidate's :class:`ModelSpec` (the model catalog passes its own lookup).
    """
    if spec_of is None:
        raise UsageError("tune_ensemble needs spec_of, the lookup of its candidates' specs")
    candidates = tuple(candidates or DEFAULT_CANDIDATES)
    t0 = time.perf_counter()
    # the out-of-fold scores have one column per label present; the blend is judged on column indices
    index = np.searchsorted(np.unique(y), y)
    oof: dict[str, np.ndarray] = {}
    tuned: dict[str, BaseEstimator] = {}
    stages: list[dict[str, Any]] = []
    for name in candidates:
        spec = spec_of(name)
        r = tune(spec, X, y, groups, params, n_jobs=n_jobs, copies=copies)
        est = clone(r.estimator)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            oof[name] = oof_proba(est, X, y, groups, params.cv_folds, copies)
        tuned[name] = est
        acc = float(np.mean(np.argmax(oof[name], axis=1) == index))
        stages.append({"stage": f"member {name}", "best_cv_accuracy": r.cv_accuracy, "oof_accuracy": acc,
                       "best_params": r.best_params, "candidates": sum(s["candidates"] for s in r.stages)})
    counts = greedy_weights(oof, index)
    total = sum(counts.values())
    weights = {n: c / total for n, c in counts.items()}
    blend = sum(w * oof[n] for n, w in weights.items())
    pred = np.argmax(np.asarray(blend), axis=1)
    # the per-fold spread of the blend's out-of-fold accuracy
    fold_acc = [float(np.mean(pred[te] == index[te]))
                for _, te in GroupKFold(n_splits=params.cv_folds).split(X, y, groups)]
    members = [(n, tuned[n]) for n in weights]
    final = fit_rows(SoftVotingEnsemble(members, [weights[n] for n in weights]), X, y, copies)
    best = {"members": list(weights), "weights": {n: round(w, 4) for n, w in weights.items()},
            **{f"{n}__{k}": v for n in weights for k, v in next(s for s in stages if s["stage"] == f"member {n}")
               ["best_params"].items()}}
    cv_acc = float(np.mean(pred == index))
    stages.append({"stage": "selection", "candidates": len(candidates), "best_cv_accuracy": cv_acc,
                   "best_params": {"weights": best["weights"]}})
    return TuneResult(final, best, cv_acc, float(np.std(fold_acc)), stages, time.perf_counter() - t0)
