"""Strict JSON: no score is null, never NaN (which strict parsers, e.g. JavaScript's JSON.parse or jq, refuse)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from emotion.core import jsontext


def _strict_loads(text: str) -> object:
    def refuse(token: str) -> object:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_become_null_at_any_depth() -> None:
    obj = {"accuracy": 0.5, "cv_accuracy": float("nan"), "curve": [1.0, math.inf, -math.inf],
           "nested": {"t": (np.float32(np.nan), np.float64(0.25), np.int64(3))}}
    text = jsontext.dumps(obj, sort_keys=True)
    assert _strict_loads(text) == {"accuracy": 0.5, "cv_accuracy": None, "curve": [1.0, None, None],
                                   "nested": {"t": [None, 0.25, 3]}}


def test_numpy_scalars_are_numbers_not_strings() -> None:
    assert _strict_loads(jsontext.dumps({"n": np.float32(0.5)}, default=str)) == {"n": 0.5}


def test_plain_values_are_written_as_json_writes_them() -> None:
    obj = {"a": [1, "x", None, True], "b": {"c": 2.5}}
    assert jsontext.dumps(obj, sort_keys=True) == json.dumps(obj, sort_keys=True)


def test_the_store_writes_strict_json(tmp_path: pytest.TempPathFactory) -> None:
    from emotion.store.store import Store

    store = Store(str(tmp_path))
    store.write_json(store.path("runs", "x", "metrics.json"), {"accuracy": 0.9, "cv_accuracy": float("nan")})
    text = (tmp_path / "runs" / "x" / "metrics.json").read_text()
    assert _strict_loads(text) == {"accuracy": 0.9, "cv_accuracy": None}
