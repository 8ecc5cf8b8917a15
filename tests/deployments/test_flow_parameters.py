"""Flows take plain parameters (a feature set's name and its options), so deployments, schedules and the Prefect
UI's run form work for every feature set (issue 13): pydantic validation keeps what was asked for."""

from __future__ import annotations

import pytest

from emotion.audio.extended import ExtendedFeatureParams
from emotion.featuresets import feature_set
from flows.evaluate import evaluate_loso
from flows.extract import extract
from flows.run import run_pipeline
from flows.train import train_audio, train_fusion


def _key(params: dict) -> str:
    """The store key of the feature set the validated parameters name (a name and speeds, or a typed set)."""
    features = params.get("features", "seed")
    if not isinstance(features, str):
        return str(features.key)
    speeds = tuple(params.get("augment") or ())
    return (ExtendedFeatureParams(speeds=speeds) if speeds else feature_set(features)).key


@pytest.mark.parametrize("flow,required", [
    (train_audio, {"out": "/tmp/x"}), (train_fusion, {"out": "/tmp/x"}), (evaluate_loso, {"out": "/tmp/x"}),
    (extract, {"data": "/tmp/d", "out": "/tmp/x"}), (run_pipeline, {"data": "/tmp/d", "out": "/tmp/x"}),
])
def test_a_feature_set_named_in_the_parameters_is_that_set(flow, required):
    assert _key(flow.validate_parameters({**required, "features": "extended"})) == ExtendedFeatureParams().key
    augmented = flow.validate_parameters({**required, "features": "extended", "augment": [0.9, 1.1]})
    assert _key(augmented) == ExtendedFeatureParams(speeds=(0.9, 1.1)).key
    assert _key(flow.validate_parameters(required)) == feature_set("seed").key
