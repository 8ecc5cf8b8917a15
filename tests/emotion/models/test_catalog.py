import json

import numpy as np
import pytest

from emotion.core.errors import ModelIntegrityError, UsageError
from emotion.models.catalog import (
    DEFAULT_MODELS,
    MODELS,
    SearchParams,
    check_features,
    default_models,
    model_spec,
    predict_scores,
    tune,
)
from emotion.models.persist import dump_model, load_model

FAST = SearchParams(n_iter=2, cv_folds=3, refine=True, seed=1)


@pytest.fixture(autouse=True)
def small_ensembles(monkeypatch):
    """Ensembles of two quick candidates here; the MLP member is tested in tests/emotion/models/test_ensemble.py."""
    monkeypatch.setattr("emotion.models.ensemble.DEFAULT_CANDIDATES", ("lr", "svc"))
    # a small, quick MLP space: the contract is what is tested here (training quality: tests/emotion/models/test_feature_nets.py)
    import dataclasses

    small = dataclasses.replace(MODELS["mlp"], space={**MODELS["mlp"].space, "hidden": [32], "epochs": [40],
                                                           "learning_rate": [3e-3]})
    monkeypatch.setitem(MODELS, "mlp", small)
    # augmentation to the size of these 8 x 16 images (the defaults, for 40 x 60, could mask 6 of their 8 bands)
    cnn = dataclasses.replace(MODELS["melcnn"], space={"n_mels": [8], "filters": [(8, 16)], "dense": [16],
                                                       "epochs": [12], "learning_rate": [3e-3, 1e-2],
                                                       "time_shift": [2], "freq_mask": [1], "time_mask": [2]})
    monkeypatch.setitem(MODELS, "melcnn", cnn)


@pytest.fixture(scope="module")
def spectra():
    """8-band, 16-frame 'spectrograms' (the melcnn's input): class k brightens band k for a while."""
    from tests.emotion.models.test_feature_nets import spectrograms

    X, y = spectrograms()
    return X, y, np.repeat(np.arange(1, 7), 32)


def data_for(name, request):
    return request.getfixturevalue("spectra" if MODELS[name].feature_sets == ("logmel",) else "data")


@pytest.mark.parametrize("name", list(MODELS))
def test_tuning_is_seeded_and_grouped(name, monkeypatch, request):
    X, y, actors = data_for(name, request)
    seen = []
    import sklearn.model_selection._split as split

    orig = split.GroupKFold.split

    def spy(self, X, y=None, groups=None):
        for tr, te in orig(self, X, y, groups):
            seen.append(set(groups[tr]) & set(groups[te]))
            yield tr, te

    monkeypatch.setattr(split.GroupKFold, "split", spy)
    a = tune(model_spec(name), X, y, actors, FAST)
    b = tune(model_spec(name), X, y, actors, FAST)
    assert seen and all(not s for s in seen)  # no actor is on both sides of any fold
    assert a.best_params == b.best_params and a.cv_accuracy == b.cv_accuracy
    np.testing.assert_array_equal(a.estimator.predict(X), b.estimator.predict(X))
    assert a.cv_accuracy > 0.5
    if name == "ensemble":
        assert [s["stage"] for s in a.stages] == ["member lr", "member svc", "selection"]
    else:
        assert [s["stage"] for s in a.stages] == (["randomized", "grid"] if MODELS[name].refine else ["randomized"])
    p = predict_scores(a.estimator, X)
    assert p.shape == (len(y), 8) and np.allclose(p.sum(axis=1), 1, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_search_processes_change_nothing_the_tuning_gives(name, monkeypatch, request):
    """``--jobs`` (the processes of the search) is not part of a run's version, so it must not change what a run
    holds: fits in worker processes score as fits in this process do, so the same candidate wins and the final
    model (fitted here either way) gives the same scores to the bit. XGBoost keeps its own thread count (1,
    whatever the job count: on 2 threads its histogram sums differ in the last bits); the Keras networks seed
    themselves in every fit, so a process's earlier fits change nothing."""
    import dataclasses

    quick = {"rf": {"n_estimators": [20, 40]}, "mlp": {"epochs": [15]}}.get(name, {})  # fewer trees and epochs
    monkeypatch.setitem(MODELS, name, dataclasses.replace(MODELS[name], space={**MODELS[name].space, **quick}))
    X, y, groups = data_for(name, request)
    search = SearchParams(n_iter=2, cv_folds=2, refine=True, seed=1)
    one, two = (tune(model_spec(name), X, y, groups, search, n_jobs=n) for n in (1, 2))
    assert (two.best_params, two.cv_accuracy, two.cv_std) == (one.best_params, one.cv_accuracy, one.cv_std)
    assert two.stages == one.stages
    assert predict_scores(two.estimator, X).tobytes() == predict_scores(one.estimator, X).tobytes()


def test_xgboost_keeps_its_own_thread_count_whatever_the_jobs():
    """XGBoost's results depend on its thread count (on the real seed features of actors 01-16, its tuned model on 2
    threads gave other model bytes and test probabilities up to 2e-7 apart), and the search's worker processes get
    fewer OpenMP threads than the command's own process (joblib gives them cores // jobs): a thread count of its own
    keeps ``--jobs`` out of its scores."""
    assert model_spec("xgb").build(0).get_params()["n_jobs"] == 1


def test_svc_compares_linear_and_rbf(data):
    X, y, groups = data
    r = tune(model_spec("svc"), X, y, groups, SearchParams(n_iter=12, seed=0))
    assert set(r.stages[0]["best_by_kernel"]) == {"rbf", "linear"}


def test_unknown_model_and_too_few_actors(data):
    X, y, groups = data
    with pytest.raises(UsageError, match="unknown model"):
        model_spec("knn")
    with pytest.raises(UsageError, match="unknown model"):
        check_features("knn", "seed")
    with pytest.raises(UsageError, match="at least 3 training actors"):
        tune(model_spec("rf"), X[:64], y[:64], groups[:64], FAST)


@pytest.mark.parametrize("name", list(MODELS))
def test_saved_model_roundtrip_and_tamper_refusal(name, request):
    X, y, groups = data_for(name, request)
    est = tune(model_spec(name), X, y, groups, SearchParams(n_iter=1, refine=False)).estimator
    blob, rec = dump_model(est)
    again = load_model(blob, rec.to_dict())
    np.testing.assert_array_equal(again.predict(X), est.predict(X))
    tampered = bytearray(blob)
    tampered[len(tampered) // 2] ^= 1
    with pytest.raises(ModelIntegrityError, match="does not match the recorded"):
        load_model(bytes(tampered), rec.to_dict())


# emotions 01-06 and 08 (labels 0-5 and 7): no disgust, a gap in the codes
GAP = np.array([0, 1, 2, 3, 4, 5, 7])


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_trains_predicts_and_persists_with_a_gap_in_the_labels(name, request):
    """Labels are mapped to contiguous indices inside the estimator: ``classes_`` are the real labels, ``predict``
    answers with them, the columns of the scores follow ``classes_``, and predicting leaves the model unchanged."""
    X, y, groups = data_for(name, request)
    keep = np.isin(y, GAP)
    X, y, groups = X[keep], y[keep], groups[keep]
    est = tune(model_spec(name), X, y, groups, SearchParams(n_iter=1, cv_folds=3, refine=False, seed=1)).estimator
    np.testing.assert_array_equal(est.classes_, GAP)
    before = _state(est)
    pred = est.predict(X)
    scores = predict_scores(est, X)
    assert set(pred.tolist()) <= set(GAP.tolist()) and np.mean(pred == y) > 0.5
    assert scores.shape == (len(y), len(GAP)) and np.allclose(scores.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(pred, GAP[np.argmax(scores, axis=1)])
    assert _state(est) == before  # predicting never changes a fitted model
    blob, rec = dump_model(est)
    again = load_model(blob, rec.to_dict())
    np.testing.assert_array_equal(again.classes_, GAP)
    np.testing.assert_array_equal(again.predict(X), pred)


def _state(est):
    """The names of an estimator's attributes and, where it pickles quickly (not a Keras network), a hash of it."""
    import joblib

    from emotion.models.ensemble import SoftVotingEnsemble
    from emotion.models.feature_nets import KerasFeatureClassifier

    parts = [est, *(m for _, m in getattr(est, "fitted_", ()))] if isinstance(est, SoftVotingEnsemble) else [est]
    return [(sorted(vars(m)), None if isinstance(m, KerasFeatureClassifier) else joblib.hash(m)) for m in parts]


def test_xgb_saved_before_labels_were_recorded_still_loads(data):
    """A record of the first release holds no classes: the model answers with its indices, as it always did."""
    X, y, groups = data
    est = tune(model_spec("xgb"), X, y, groups, SearchParams(n_iter=1, refine=False)).estimator
    blob, rec = dump_model(est)
    old = {k: v for k, v in rec.to_dict().items() if k != "meta"}
    again = load_model(blob, old)
    np.testing.assert_array_equal(again.classes_, np.arange(8))
    np.testing.assert_array_equal(again.predict(X), est.predict(X))


def test_models_name_the_feature_sets_they_read():
    assert default_models("logmel") == ("melcnn",)
    assert default_models("seed") == default_models("egemaps") == DEFAULT_MODELS
    assert default_models("extended") == default_models("compare") == ("lr",)  # tree searches are too slow there
    assert check_features("melcnn", "logmel") is MODELS["melcnn"]
    assert check_features("svc", "logmel") is MODELS["svc"]  # functional models read any set
    with pytest.raises(UsageError, match="model 'melcnn' reads the logmel feature set, not 'extended'; add --features logmel"):
        check_features("melcnn", "extended")


def test_skops_file_with_foreign_types_is_refused():
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    blob = sio.dumps(FunctionTransformer(func=json.loads))
    from emotion.models.persist import sha256

    with pytest.raises(ModelIntegrityError, match="outside the allow-list"):
        load_model(blob, {"format": "skops", "sha256": sha256(blob)})


@pytest.mark.parametrize("name", ["svc", "rf"])
def test_search_matches_scikit_learn_and_reports_every_fit(name, data):
    """The search fits in worker processes and tells progress of each fit here; it chooses as scikit-learn does."""
    from sklearn.model_selection import GroupKFold, ParameterSampler, RandomizedSearchCV

    from emotion.models.tuning import grid_search

    X, y, groups = data
    spec = MODELS[name]
    ref = RandomizedSearchCV(spec.build(0), spec.space, n_iter=4, cv=GroupKFold(3), scoring="accuracy",
                             random_state=0, refit=False).fit(X, y, groups=groups)
    ticks = []
    ours = grid_search(spec.build(0), list(ParameterSampler(spec.space, 4, random_state=0)), X, y, groups, GroupKFold(3),
                       n_jobs=2, progress=lambda *a: ticks.append(a))
    assert ours.best_index_ == ref.best_index_ and ours.best_params_ == ref.best_params_
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"])
    np.testing.assert_allclose(ours.cv_results_["std_test_score"], ref.cv_results_["std_test_score"])
    assert [t[0] for t in ticks] == list(range(13)) and all(t[1:3] == (12, 3) for t in ticks)


def test_tune_tells_progress_of_search_and_refinement(data):
    X, y, groups = data
    seen = []
    tune(MODELS["lr"], X, y, groups, FAST, progress=seen.append)
    stages = {t.task for t in seen}
    assert stages == {"lr search", "lr refine"}
    last = [t for t in seen if t.task == "lr search"][-1]
    assert (last.done, last.total, last.unit) == (6, 6, "fits") and "2 candidates x 3 folds" in last.info
