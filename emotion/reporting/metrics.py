"""Evaluation metrics and the confusion-matrix figure."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support, recall_score

from emotion.core.ids import EMOTION_LABELS

CLASSES = np.arange(len(EMOTION_LABELS))  # model label k is emotion code k + 1


def evaluate(
    y_true: np.ndarray, y_pred: np.ndarray, *, train_actors: Sequence[int], test_actors: Sequence[int], n_train: int
) -> dict[str, Any]:
    """Metrics for 8-class predictions (labels 0-7 = emotions 01-08)."""
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=CLASSES, zero_division=0)
    present = np.unique(y_true)
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
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=CLASSES).tolist(),
    }


def confusion_png(cm: Sequence[Sequence[int]], title: str) -> bytes:
    """The confusion matrix (rows true, columns predicted) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(cm, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=100)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(CLASSES, EMOTION_LABELS, rotation=45, ha="right")
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
