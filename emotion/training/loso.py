"""Leave-one-actor-out (LOSO) evaluation over the training actors of a split.

Each training actor in turn is held out; the model is trained on the other
training actors and scored on the held-out one. The test actors of the split
are not read at all. Two ways to get the hyper-parameters of each fold:

* ``nested`` (default): tuned inside every fold by the usual actor-grouped
  search on the remaining actors only. Honest, and as costly as one training
  run per actor.
* ``fixed``: those of the stored run of the same model, feature set and
  normalisation on this split. One fit per actor, but the hyper-parameters
  were chosen by grouped CV over all training actors, held-out one included,
  so the numbers are mildly optimistic; the output says so.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from emotion.audio.augment import copies_of, stack_copies
from emotion.audio.normalize import speaker_standardize
from emotion.core.errors import StoreError, UsageError
from emotion.core.params import stable_hash
from emotion.core.progress import ProgressFn
from emotion.core.splits import ActorSplit
from emotion.models.search import SearchParams
from emotion.models.tuning import ModelSpec, tune
from emotion.training.audio import one_row_per_recording, scores_and_labels, without_video_twins

MODES = ("nested", "fixed")


@dataclass(frozen=True)
class LosoData:
    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    data_hash: str
    copies: int = 1  # vectors per row (emotion.audio.augment): the clip itself, then its augmented copies
    # the actor of each training-actor clip without a row (a face set: no face found). Such a clip has no
    # prediction: when its actor is held out it counts as wrong, as in a training run's test
    faceless: np.ndarray = field(default_factory=lambda: np.zeros(0, int))


def loso_data(
    df: pd.DataFrame, feature_names: list[str], split: ActorSplit, feature_hash: str, *, speaker_norm: bool = False,
    copies: int = 1, faceless: pd.DataFrame | None = None,
) -> LosoData:
    """The training actors' clips of ``split`` (one row per recording, labels 0-7); test actors are left out.

    ``feature_names``: every stored column, ``copies`` vectors per clip (as :func:`emotion.training.audio.split_data`).
    ``faceless``: a face set's clips without a row (:func:`emotion.featuresets.read_faceless_clips`), counted
    wrong in their actor's fold.
    """
    df, faceless = without_video_twins(df, faceless)
    df = one_row_per_recording(df)
    missing = [c for c in feature_names if c not in df.columns]
    if missing:
        raise StoreError(f"feature table lacks {len(missing)} expected columns (e.g. {missing[0]})")
    tr = df[df["actor"].isin(split.train)]
    actors = np.unique(tr["actor"].to_numpy(int))
    if len(actors) < 3:
        raise StoreError(f"leave-one-actor-out needs clips of at least 3 training actors, found {len(actors)}")
    X = tr[feature_names].to_numpy(np.float32)
    groups = tr["actor"].to_numpy(int)
    if speaker_norm:
        X = speaker_standardize(X, groups)
    keys = sorted(zip(tr["path"], tr["content_hash"], strict=True))
    copies_of(X, copies)  # checks the width
    none = faceless[faceless["actor"].isin(split.train)] if faceless is not None else None
    ident: dict[str, Any] = {"feature_hash": feature_hash, "clips": keys}
    if none is not None and len(none):
        ident["no_face"] = sorted(zip(none["path"], none["content_hash"], strict=True))
    return LosoData(X, tr["emotion"].to_numpy(int) - 1, groups, stable_hash(ident, 16), copies,
                    none["actor"].to_numpy(int) if none is not None else np.zeros(0, int))


def fixed_note(chosen_on: ActorSplit, held_out: list[int]) -> str:
    """What LOSO with the hyper-parameters of the stored run on ``chosen_on`` assumes: which of the ``held_out``
    actors took part in choosing them (its train actors did, by grouped CV; its test actors did not)."""
    took_part = [a for a in held_out if a in chosen_on.train]
    return (f"hyper-parameters fixed from the stored run on {chosen_on}, chosen by grouped CV over its train actors: "
            f"{len(took_part)} of the {len(held_out)} held-out actors took part in that choice"
            + (" (mildly optimistic)" if took_part else ""))


def loso(
    spec: ModelSpec,
    data: LosoData,
    search: SearchParams,
    *,
    mode: str = "nested",
    fixed: BaseEstimator | None = None,
    n_jobs: int = 1,
    progress: Callable[[int, float], None] | None = None,
    fits: ProgressFn | None = None,
) -> dict[str, Any]:
    """Per-actor accuracy of ``spec`` trained on the other actors; mean, std, min, max over actors.

    ``progress`` hears of each actor done (actor, accuracy), ``fits`` of every fit of the nested searches.
    """
    if mode not in MODES:
        raise UsageError(f"unknown LOSO mode {mode!r}; choose from {', '.join(MODES)}")
    if mode == "fixed" and fixed is None:
        raise UsageError("fixed hyper-parameters need a trained model to copy them from")
    t0 = time.perf_counter()
    per_actor: dict[str, float] = {}
    k = data.copies
    for actor in np.union1d(data.groups, data.faceless):
        tr, te = data.groups != actor, data.groups == actor
        right = 0  # a clip without a face has no prediction: wrong
        if te.any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=UserWarning)
                if mode == "nested":  # tuned as a training run is (with copies: each fold on clips and copies)
                    est = tune(spec, data.X[tr], data.y[tr], data.groups[tr], search, n_jobs=n_jobs,
                               progress=fits, copies=k).estimator
                else:
                    est = clone(fixed).fit(*stack_copies(data.X[tr], data.y[tr], k))
            _, pred = scores_and_labels(est, data.X[te], k)
            right = int(np.sum(pred == data.y[te]))
        acc = right / int(te.sum() + np.sum(data.faceless == actor))
        per_actor[f"{int(actor):02d}"] = acc
        if progress:
            progress(int(actor), acc)
    accs = np.array(list(per_actor.values()))
    return {
        "model": spec.name, "mode": mode, "n_actors": len(accs), "n_clips": len(data.y) + len(data.faceless),
        "n_no_face": len(data.faceless),
        "mean": float(accs.mean()), "std": float(accs.std()), "min": float(accs.min()), "max": float(accs.max()),
        "per_actor": per_actor, "search": search.to_dict() if mode == "nested" else None,
        "note": ("hyper-parameters tuned inside each fold on the remaining actors only" if mode == "nested" else
                 "hyper-parameters fixed from the stored run on this split, chosen by grouped CV over all these "
                 "actors (held-out one included): mildly optimistic"),
        "data_hash": data.data_hash, "seconds": round(time.perf_counter() - t0, 1),
        "augmented_copies": k - 1,
    }
