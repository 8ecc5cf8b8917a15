"""Train, evaluate and package one model on one actor split (no IO here).

:func:`train_and_evaluate` takes the feature table and returns everything a
run folder holds, as bytes and JSON-able dicts; the caller writes them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emotion.errors import StoreError
from emotion.features import stable_hash
from emotion.ids import EMOTION_LABELS
from emotion.metrics import confusion_png, evaluate
from emotion.models import ModelSpec, SearchParams, predict_scores, tune
from emotion.persist import SavedModel, dump_model
from emotion.splits import ActorSplit
from emotion.store import LABEL_COLUMNS


@dataclass(frozen=True)
class SplitData:
    X_train: np.ndarray
    y_train: np.ndarray
    groups: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    test_rows: pd.DataFrame  # path, actor, emotion of each test clip
    data_hash: str  # hash of the (path, content hash) of every clip used


RECORDING = ("vocal_channel", "emotion", "intensity", "statement", "repetition", "actor")


def one_row_per_recording(df: pd.DataFrame) -> pd.DataFrame:
    """Drop the speech track of audio-video clips (modality 01) whose audio-only clip (03) is there too.

    RAVDESS recorded each performance once: the track of ``01-...-12.mp4`` is
    the recording of ``03-...-12.wav``. Keeping both would count one
    recording twice in training and in the test metrics.
    """
    if "modality" not in df.columns or not (df["modality"] == 1).any():
        return df
    audio_only = set(map(tuple, df.loc[df["modality"] == 3, list(RECORDING)].to_numpy().tolist()))
    twin = (df["modality"] == 1) & pd.Series([tuple(r) in audio_only for r in df[list(RECORDING)].to_numpy().tolist()],
                                             index=df.index)
    return df[~twin]


def split_data(df: pd.DataFrame, feature_names: list[str], split: ActorSplit, feature_hash: str) -> SplitData:
    """Select the split's actors (one row per recording); labels become 0-7 (emotion code - 1)."""
    df = one_row_per_recording(df)
    missing = [c for c in feature_names if c not in df.columns]
    if missing:
        raise StoreError(f"feature table lacks {len(missing)} expected columns (e.g. {missing[0]})")
    tr = df[df["actor"].isin(split.train)]
    te = df[df["actor"].isin(split.test)]
    if tr.empty:
        raise StoreError(f"no clips of the train actors {split} in the store")
    if te.empty:
        present = sorted(int(a) for a in df["actor"].unique())
        raise StoreError(f"no clips of the test actors of {split} in the store (actors present: {present})")
    keys = sorted(zip(pd.concat([tr, te])["path"], pd.concat([tr, te])["content_hash"], strict=True))
    return SplitData(
        X_train=tr[feature_names].to_numpy(np.float32),
        y_train=tr["emotion"].to_numpy(int) - 1,
        groups=tr["actor"].to_numpy(int),
        X_test=te[feature_names].to_numpy(np.float32),
        y_test=te["emotion"].to_numpy(int) - 1,
        test_rows=te[["path", "actor", "emotion"]].reset_index(drop=True),
        data_hash=stable_hash({"feature_hash": feature_hash, "clips": keys}, 16),
    )


def run_version(model: str, split: ActorSplit, search: SearchParams, feature_hash: str, data_hash: str) -> str:
    """The version of a run: a hash of everything that changes its result."""
    return stable_hash({"model": model, "split": split.id, "search": search.to_dict(),
                        "feature_hash": feature_hash, "data_hash": data_hash, "revision": 1})


def prediction_table(rows: pd.DataFrame, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """``predictions.parquet`` of every run: the test clips' ``rows`` with true and predicted emotion and ``p_<emotion>``."""
    return rows.reset_index(drop=True).assign(
        true=[EMOTION_LABELS[k] for k in y_true], predicted=[EMOTION_LABELS[k] for k in y_pred],
        **{f"p_{lab}": proba[:, k].astype(np.float32) for k, lab in enumerate(EMOTION_LABELS)},
    )


def parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
    return buf.getvalue()


@dataclass
class RunOutput:
    """What one run folder holds."""

    version: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    run: dict[str, Any]
    model_bytes: bytes
    saved: SavedModel
    confusion: bytes
    predictions: bytes  # Parquet
    extra: dict[str, bytes] = field(default_factory=dict)  # e.g. training curves, frame predictions

    def files(self) -> dict[str, bytes]:
        import json

        def js(o: Any) -> bytes:
            return (json.dumps(o, indent=2, sort_keys=True) + "\n").encode()

        return {
            "metrics.json": js(self.metrics),
            "params.json": js(self.params),
            "confusion_matrix.png": self.confusion,
            "predictions.parquet": self.predictions,
            self.saved.file: self.model_bytes,
            **self.extra,
            "run.json": js(self.run),  # last: marks the folder complete
        }


def train_and_evaluate(
    spec: ModelSpec,
    data: SplitData,
    split: ActorSplit,
    search: SearchParams,
    feature_params: dict[str, Any],
    feature_hash: str,
    n_jobs: int = 1,
) -> RunOutput:
    result = tune(spec, data.X_train, data.y_train, data.groups, search, n_jobs=n_jobs)
    est = result.estimator
    proba = predict_scores(est, data.X_test)
    pred = np.asarray(est.predict(data.X_test)).astype(int)
    metrics = evaluate(data.y_test, pred, train_actors=split.train, test_actors=split.test,
                       n_train=len(data.y_train))
    version = run_version(spec.name, split, search, feature_hash, data.data_hash)
    metrics.update({"model": spec.name, "cv_accuracy": result.cv_accuracy, "cv_std": result.cv_std,
                    "cv": f"GroupKFold({search.cv_folds}) by actor on train actors"})
    model_bytes, saved = dump_model(est)
    preds = prediction_table(data.test_rows, data.y_test, pred, proba)
    title = f"{spec.title}: {split.id}\naccuracy {metrics['accuracy']:.3f}, UAR {metrics['uar']:.3f}"
    params = {"model": spec.name, "best_params": result.best_params, "search": search.to_dict(),
              "stages": result.stages}
    run = {
        "model": spec.name, "version": version, "split": str(split), "split_id": split.id,
        "feature_params": feature_params, "feature_hash": feature_hash, "data_hash": data.data_hash,
        "search": search.to_dict(), "model_file": saved.to_dict(), "fit_seconds": round(result.seconds, 2),
        "label_columns": list(LABEL_COLUMNS), "classes": list(EMOTION_LABELS),
    }
    return RunOutput(version, metrics, params, run, model_bytes, saved,
                     confusion_png(metrics["confusion_matrix"], title), parquet_bytes(preds))
