"""Audio-visual fusion of a clip's voice and face.

A fused model has two branches trained on the train actors: the voice
(audio features, standardised, logistic regression) and the face (each
frame's FER2013 embedding, the pretrained network without its head, averaged
over the clip's sampled frames with a face, and, on the mesh front end's face
crops, the clip's landmark geometry (:mod:`emotion.video.landmarks`); standardised,
logistic regression). The face
embedding is fixed and has never seen RAVDESS labels, so the branches'
out-of-fold probabilities are honest. They are combined in one of three ways:

* ``late``: a weighted mean of the branches' probabilities; the audio weight
  is chosen on out-of-fold probabilities of actor-grouped CV on the train actors;
* ``stack``: a logistic regression on the branches' out-of-fold probabilities;
* ``early``: one logistic regression on the audio features joined with the
  pooled face embedding (:class:`emotion.models.frame_nets.FaceEmbedder`).

Which of the three is kept is decided by :func:`fusion_cv_accuracy`: an outer
actor-grouped CV that refits the whole fused model, its own choices included,
in every fold, so the three are scored alike (the score of late's chosen weight
on the probabilities it was chosen on would flatter it).

Clips without audio (video-only clips, modality 02) are predicted from the
face branch alone, and the model says which (:meth:`AudioVisualFusion.audio_missing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from emotion.core.errors import UsageError
from emotion.core.ids import EMOTION_LABELS
from emotion.core.names import FUSION_METHODS  # model names on the command line and in the store

N_CLASSES = len(EMOTION_LABELS)
WEIGHTS = tuple(round(w, 2) for w in np.linspace(0, 1, 21))


def _lr(C: float, seed: int) -> Pipeline:
    # a clip whose kept frames show no face has no face vector (NaN): the training mean stands in for it
    return make_pipeline(SimpleImputer(strategy="mean", keep_empty_features=True), StandardScaler(),
                         LogisticRegression(C=C, max_iter=2000, random_state=seed))


def _proba(est: Any, X: np.ndarray) -> np.ndarray:
    """Probabilities over all 8 classes (a class absent in training gets 0)."""
    p = np.zeros((len(X), N_CLASSES))
    p[:, np.asarray(est.classes_, dtype=int)] = est.predict_proba(X)
    return p


_FITTED = ("classes_", "video_", "audio_", "early_", "stack_", "weight_", "oof_accuracy_")


class AudioVisualFusion(ClassifierMixin, BaseEstimator):
    """Fuses audio features (the first ``n_audio`` columns; NaN when a clip has no audio) and a face embedding."""

    def __init__(self, method: str = "late", n_audio: int = 0, C_audio: float = 0.1, C_video: float = 0.1,
                 C_stack: float = 1.0, cv_folds: int = 3, seed: int = 0) -> None:
        self.method = method
        self.n_audio = n_audio
        self.C_audio = C_audio
        self.C_video = C_video
        self.C_stack = C_stack
        self.cv_folds = cv_folds
        self.seed = seed

    def _split(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=np.float64)
        if self.n_audio < 1 or X.shape[1] <= self.n_audio:
            raise UsageError(f"fusion input needs {self.n_audio} audio columns and at least one face column")
        A, V = X[:, : self.n_audio], X[:, self.n_audio :]
        return A, V, ~np.isnan(A).any(axis=1)

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> AudioVisualFusion:
        for name in _FITTED:  # a refit keeps nothing of an earlier fit (another method's stacker or scores)
            self.__dict__.pop(name, None)
        if self.method not in FUSION_METHODS:
            raise UsageError(f"unknown fusion method {self.method!r}; choose from {', '.join(FUSION_METHODS)}")
        A, V, has = self._split(X)
        y = np.asarray(y, dtype=int)
        if groups is None and self.method != "early":
            raise UsageError(f"fusion-{self.method} is fitted by actor-grouped CV on the train actors: give groups "
                             "(each clip's actor) to fit")
        if groups is not None and len(groups) != len(y):
            raise UsageError(f"fusion groups: {len(groups)} actor ids for {len(y)} clips")
        if has.sum() < 2 * self.cv_folds:
            raise UsageError(f"fusion needs at least {2 * self.cv_folds} clips with audio (mp4 with speech) in the "
                             f"train actors; found {int(has.sum())}")
        self.classes_ = np.arange(N_CLASSES)
        self.video_ = _lr(self.C_video, self.seed).fit(V, y)  # all clips: the face is always there
        self.audio_ = _lr(self.C_audio, self.seed).fit(A[has], y[has])
        if self.method == "early":
            self.early_ = _lr(self.C_audio, self.seed).fit(np.hstack([A[has], V[has]]), y[has])
            self.weight_ = None
            return self
        g = np.asarray(groups)[has]
        n_groups = len(np.unique(g))
        if n_groups < 2:
            raise UsageError("fusion weights are chosen by actor-grouped CV: at least two train actors with audio are needed")
        cv = GroupKFold(n_splits=min(self.cv_folds, n_groups))
        pa, pv = np.zeros((int(has.sum()), N_CLASSES)), np.zeros((int(has.sum()), N_CLASSES))
        Ah, Vh, yh = A[has], V[has], y[has]
        for tr, te in cv.split(Ah, yh, g):
            pa[te] = _proba(clone(self.audio_).fit(Ah[tr], yh[tr]), Ah[te])
            pv[te] = _proba(clone(self.video_).fit(Vh[tr], yh[tr]), Vh[te])
        self.oof_accuracy_ = {"audio": float((pa.argmax(1) == yh).mean()), "video": float((pv.argmax(1) == yh).mean())}
        if self.method == "late":
            scores = [((w * pa + (1 - w) * pv).argmax(1) == yh).mean() for w in WEIGHTS]
            best = max(scores)
            # among equally good weights, the one nearest an even mix (its score is not the model's: the weight is
            # chosen on these very probabilities; :func:`fusion_cv_accuracy` gives an honest one)
            self.weight_ = min((w for w, s in zip(WEIGHTS, scores, strict=True) if s == best), key=lambda w: abs(w - 0.5))
        else:
            self.weight_ = None
            Z = np.hstack([np.log(pa + 1e-6), np.log(pv + 1e-6)])
            self.stack_ = LogisticRegression(C=self.C_stack, max_iter=2000, random_state=self.seed).fit(Z, yh)
        return self

    def branch_proba(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Audio-branch probabilities (NaN rows without audio), face-branch probabilities, and the audio mask."""
        A, V, has = self._split(X)
        pa = np.full((len(A), N_CLASSES), np.nan)
        if has.any():
            pa[has] = _proba(self.audio_, A[has])
        return pa, _proba(self.video_, V), has

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        A, V, has = self._split(X)
        pa, pv, _ = self.branch_proba(X)
        out = pv.copy()  # no audio: the face alone
        if has.any():
            if self.method == "late":
                assert self.weight_ is not None
                w = float(self.weight_)
                out[has] = w * pa[has] + (1 - w) * pv[has]
            elif self.method == "stack":
                Z = np.hstack([np.log(pa[has] + 1e-6), np.log(pv[has] + 1e-6)])
                out[has] = _proba(self.stack_, Z)
            else:
                out[has] = _proba(self.early_, np.hstack([A[has], V[has]]))
        return out

    def audio_missing(self, X: np.ndarray) -> np.ndarray:
        """Which rows of ``X`` have no audio (predicted from the face alone); predicting stores nothing on the model."""
        return ~self._split(X)[2]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_proba(X), axis=1)


MIN_CV_ACTORS = 3  # the outer folds' training part must keep two actors with audio for late's and stack's inner CV


@dataclass(frozen=True)
class FusionCV:
    """A fused model's actor-grouped CV accuracy on the train actors (NaN, with ``how`` saying why, when not measured)."""

    accuracy: float
    std: float
    folds: tuple[float, ...]
    how: str


def fusion_cv_accuracy(est: AudioVisualFusion, X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> FusionCV:
    """The whole fused model scored by GroupKFold by actor over the train clips ``X``: in every fold a clone of ``est``
    is fitted on the other actors' clips, its own choices (late's weight, stack's stacker, both from an inner
    actor-grouped CV) made there, and scored per clip on the held-out actors' clips (those without audio from the face
    alone, as on the test actors). Every method is measured the same way, so their scores compare; ``est`` is not
    changed."""
    X, y, groups = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=int), np.asarray(groups)
    if len(groups) != len(y):
        raise UsageError(f"fusion groups: {len(groups)} actor ids for {len(y)} clips")
    with_audio = np.unique(groups[~np.isnan(X[:, : est.n_audio]).any(axis=1)])
    if len(with_audio) < MIN_CV_ACTORS:
        return FusionCV(float("nan"), float("nan"), (), f"not measured: grouped CV of a fused model needs at least "
                        f"{MIN_CV_ACTORS} train actors with audio, found {len(with_audio)}")
    k = min(est.cv_folds, len(np.unique(groups)))
    scores = []
    # a few hundred clips: one BLAS thread is fastest (several threads on small matrices cost ten times the time on a
    # busy 2-core machine, measured), and the CV then adds well under a second to a fused model's training
    with threadpool_limits(limits=1, user_api="blas"):
        for tr, te in GroupKFold(n_splits=k).split(X, y, groups):
            try:
                fold = clone(est).fit(X[tr], y[tr], groups=groups[tr])
            except UsageError as e:  # too few clips with audio in a fold
                return FusionCV(float("nan"), float("nan"), (), f"not measured: {e}")
            scores.append(float((fold.predict(X[te]) == y[te]).mean()))
    return FusionCV(float(np.mean(scores)), float(np.std(scores)), tuple(scores),
                    f"GroupKFold({k}) by actor on train actors, the whole fused model refitted in every fold "
                    f"(its own choices by an inner GroupKFold({est.cv_folds}) on that fold's train actors)")
