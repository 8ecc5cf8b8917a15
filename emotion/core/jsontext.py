"""JSON that strict parsers read: no ``NaN`` or ``Infinity`` (Python writes them by default; JSON has neither).

A score that does not exist (a video model trained without validation actors has no validation accuracy; a fused
model without a clip of both kinds has no accuracy) is ``null``. The readers of metrics take ``null`` and ``NaN``
alike as "no score" (:func:`emotion.reporting.report.number`).
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (also inside dicts, lists and tuples) replaced by None, and NumPy
    scalars by their Python values."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if type(obj).__module__ == "numpy" and hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:
        return finite(obj.item())
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """:func:`json.dumps` of :func:`finite` ``(obj)``; raises ValueError rather than write a non-finite number."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
