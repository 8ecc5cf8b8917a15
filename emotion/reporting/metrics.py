"""Evaluation metrics and the confusion-matrix figure."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support, recall_score

from emotion.core.ids import EMOTION_LABELS

CLASSES = np.arange(len(EMOTION_LABELS))  # model label k is emotion code k + 1
NO_FACE = -1  # the "prediction" of a face model for a test clip in none of whose frames a face was found
NO_FACE_LABEL = "no face"  # how such a clip's prediction is shown (predictions.parquet, the confusion matrix)


def evaluate(
    y_true: np.ndarray, y_pred: np.ndarray, *, train_actors: Sequence[int], test_actors: Sequence[int], n_train: int,
    faces: bool = False,
) -> dict[str, Any]:
    """Metrics for 8-class predictions (labels 0-7 = emotions 01-08).

    With ``faces`` (a face model), a prediction of :data:`NO_FACE` is a test clip without a face: it has no
    prediction, so it counts as wrong (in accuracy, recall, F1 and UAR) and stays out of the 8 predicted columns of
    ``confusion_matrix``; ``n_test_clips_without_face`` counts them and ``confusion_no_face`` per true emotion (the
    matrix's "no face" column).
    """
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    none = y_pred == NO_FACE
    if none.any() and not faces:
        raise ValueError("only a face model's clips can have no prediction (no face)")
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=CLASSES, zero_division=0)
    present = np.unique(y_true)
    face = {"n_test_clips_without_face": int(none.sum()),
            "confusion_no_face": np.bincount(y_true[none], minlength=len(CLASSES)).tolist()} if faces else {}
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        # unweighted average recall over the classes present in the test set
        "uar": float(recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "n_train": int(n_train),
        "n_test": int(len(y_true)),
        "train_actors": [int(a) for a in train_actors],
        "test_actors": [int(a) for a in test_actors],
        "per_class": {
            EMOTION_LABELS[k]: {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]), "support": int(s[k])}
            for k in CLASSES
        },
        "labels": list(EMOTION_LABELS),
        # clips without a face (faces) are in no column: a row sums to the emotion's support less those clips
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=CLASSES).tolist(),
        **face,
    }


def with_no_face(cm: Sequence[Sequence[int]], no_face: Sequence[int] | None) -> tuple[np.ndarray, list[str]]:
    """The confusion matrix with a last "no face" column when some test clip had no face, and its column labels."""
    m = np.asarray(cm, dtype=float)
    if no_face is not None and len(no_face) == m.shape[0] and any(no_face):
        return np.column_stack([m, np.asarray(no_face, dtype=float)]), [*EMOTION_LABELS, NO_FACE_LABEL]
    return m, list(EMOTION_LABELS)


def confusion_png(cm: Sequence[Sequence[int]], title: str, no_face: Sequence[int] | None = None) -> bytes:
    """The confusion matrix (rows true, columns predicted; a "no face" column with ``no_face`` counts) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m, columns = with_no_face(cm, no_face)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4 + 0.5 * (len(columns) - len(CLASSES)), 5.6), dpi=100)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(np.arange(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(CLASSES, EMOTION_LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of true class")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
