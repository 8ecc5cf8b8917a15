"""``evaluate --loso --fixed-params``: the stored run is found by its parameters' key, not the set's name."""

from __future__ import annotations

import posixpath

import pytest

from emotion.audio.extended import ExtendedFeatureParams
from emotion.core.errors import StoreError
from emotion.core.splits import ActorSplit
from emotion.models.catalog import SearchParams, model_spec
from emotion.store.store import Store
from emotion.training.audio import split_data, train_and_evaluate
from tasks.evaluate import _stored_estimator
from tests.conftest import speaker_table

SPLIT = ActorSplit.parse("train=1-4,test=5")


def _train(store: Store, params: ExtendedFeatureParams) -> str:
    df = speaker_table(tuple(params.column_names()))
    data = split_data(df, params.column_names(), SPLIT, params.hash(), copies=params.copies)
    res = train_and_evaluate(model_spec("lr"), data, SPLIT, SearchParams(n_iter=1, refine=False), params.to_dict(),
                             params.hash())
    folder = store.run_dir(SPLIT.id, "lr", res.version)
    for name, blob in res.files().items():
        store.write_bytes(posixpath.join(folder, name), blob)
    return store.url_of(folder)


def test_fixed_params_use_the_run_of_the_same_feature_parameters_not_of_the_same_set_name(tmp_path):
    store = Store(str(tmp_path))
    plain, augmented = ExtendedFeatureParams(), ExtendedFeatureParams(speeds=(0.9, 1.1))
    plain_dir, aug_dir = _train(store, plain), _train(store, augmented)
    # summary.json as the training flow writes it: both runs are "extended"; the augmented one listed first
    rows = [{"model": "lr", "features": "extended", "feature_set": p.key, "augment": list(p.speeds),
             "speaker_norm": False, "run_dir": d, "accuracy": 0.5} for p, d in ((augmented, aug_dir), (plain, plain_dir))]
    store.write_json(store.path("runs", SPLIT.id, "summary.json"), {"all": rows})
    assert _stored_estimator(store, SPLIT, "lr", plain, False)[1] == plain_dir
    assert _stored_estimator(store, SPLIT, "lr", augmented, False)[1] == aug_dir
    with pytest.raises(StoreError, match="no stored lr run"):
        _stored_estimator(store, SPLIT, "lr", ExtendedFeatureParams(speeds=(0.8,)), False)
    with pytest.raises(StoreError, match="no stored lr run"):
        _stored_estimator(store, SPLIT, "lr", plain, True)
