"""XGBoost behind the scikit-learn classifier contract for any set of labels.

XGBoost's own classifier insists on labels ``0..k-1``; a corpus whose emotion
codes have a gap (01-06 and 08) or a fold without one emotion breaks it.
:class:`LabelledXGBClassifier` maps the labels it is given to contiguous
indices inside ``fit``; ``classes_`` holds the real labels, ``predict``
returns them, and the columns of ``predict_proba`` follow ``classes_``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xgboost import XGBClassifier


class LabelledXGBClassifier(XGBClassifier):
    """``XGBClassifier`` fitted on any labels (mapped to 0..k-1 inside); ``classes_`` are the labels themselves."""

    def fit(self, X: Any, y: Any, **kwargs: Any) -> LabelledXGBClassifier:
        labels, index = np.unique(np.asarray(y), return_inverse=True)
        self.__dict__.pop("labels_", None)  # XGBoost checks the indices against classes_ while it fits
        super().fit(X, index, **kwargs)
        self.labels_ = labels
        return self

    @property
    def classes_(self) -> np.ndarray:  # type: ignore[override]
        labels = self.__dict__.get("labels_")
        return np.asarray(labels) if labels is not None else np.arange(self.n_classes_)

    def predict(self, X: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        out = super().predict(X, **kwargs)
        if kwargs.get("output_margin"):
            return out
        return self.classes_[np.asarray(out, dtype=int)]
