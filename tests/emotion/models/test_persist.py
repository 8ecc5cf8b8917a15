"""Saving and loading models (emotion.models.persist): what a stored XGBoost model keeps besides its trees."""

import io
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

from emotion.models.catalog import model_spec
from emotion.models.ensemble import SoftVotingEnsemble
from emotion.models.persist import dump_model, load_model, load_run
from emotion.store.store import Store

TUNED = {"n_estimators": 37, "max_depth": 2, "learning_rate": 0.05, "subsample": 0.7, "colsample_bytree": 0.5,
         "min_child_weight": 3, "reg_lambda": 4.0}


@pytest.fixture(scope="module")
def tuned_xgb(data):
    X, y, _ = data
    return model_spec("xgb").build(3).set_params(**TUNED).fit(X, y)


def _rounds(est):
    return est.get_booster().num_boosted_rounds()


def _refit_copy(est, data):
    X, y, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        return clone(est).fit(X, y)


def _kept(loaded, tuned):
    want = {k: tuned.get_params()[k] for k in [*TUNED, "tree_method", "n_jobs", "random_state", "objective"]}
    return {k: loaded.get_params()[k] for k in want} == want


def test_loaded_xgb_keeps_its_parameters_and_a_copy_trains_as_the_stored_one(tuned_xgb, data):
    """LOSO --fixed-params clones the stored model and fits the copy: it must be the tuned model, not XGBoost's
    defaults (100 trees of depth 6)."""
    blob, rec = dump_model(tuned_xgb)
    loaded = load_model(blob, json.loads(json.dumps(rec.to_dict())))  # as run.json holds it
    assert _kept(loaded, tuned_xgb)
    np.testing.assert_allclose(loaded.predict_proba(data[0]), tuned_xgb.predict_proba(data[0]))
    assert _rounds(_refit_copy(loaded, data)) == _rounds(tuned_xgb) == TUNED["n_estimators"]


def test_ensemble_with_an_xgb_member_keeps_its_parameters(tuned_xgb, data):
    X, y, _ = data
    ens = SoftVotingEnsemble([("lr", model_spec("lr").build(0)), ("xgb", tuned_xgb)], [0.5, 0.5]).fit(X, y)
    blob, rec = dump_model(ens)
    loaded = load_model(blob, rec.to_dict())
    assert _kept(dict(loaded.members)["xgb"], tuned_xgb)
    copy = _refit_copy(loaded, data)
    assert _rounds(dict(copy.fitted_)["xgb"]) == TUNED["n_estimators"]


def _old_run(tmp_path, est, best_params, seed):
    """A run folder as written before XGBoost's parameters were recorded: the record's meta has classes only."""
    store = Store(str(tmp_path))
    blob, rec = dump_model(est)
    record = rec.to_dict()
    if record["format"] == "xgboost-json":
        record["meta"] = {"classes": record["meta"]["classes"]}
    else:  # an ensemble: strip the parameters from its xgb member's record inside the archive
        import io
        import zipfile

        zin = zipfile.ZipFile(io.BytesIO(blob))
        manifest = json.loads(zin.read("manifest.json"))
        for m in manifest["members"]:
            if m["record"]["format"] == "xgboost-json":
                m["record"]["meta"].pop("params")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zout:
            for name in zin.namelist():
                if name != "manifest.json":
                    zout.writestr(name, zin.read(name))
            zout.writestr("manifest.json", json.dumps(manifest))
        blob = buf.getvalue()
        from emotion.models.persist import sha256

        record["sha256"] = sha256(blob)
    run_dir = f"{tmp_path}/run"
    store.write_bytes(f"{run_dir}/{record['file']}", blob)
    store.write_json(f"{run_dir}/params.json", {"best_params": best_params})
    store.write_json(f"{run_dir}/run.json", {"model_file": record, "search": {"seed": seed}})
    return store, run_dir


def test_xgb_stored_without_parameters_gets_those_of_its_run(tmp_path, tuned_xgb, data):
    """Runs saved before the parameters were recorded: the catalog's xgb with the run's seed and its best_params."""
    store, run_dir = _old_run(tmp_path, tuned_xgb, TUNED, 3)
    loaded, _ = load_run(store, run_dir)
    assert _kept(loaded, tuned_xgb)
    assert _rounds(_refit_copy(loaded, data)) == TUNED["n_estimators"]


def test_ensemble_stored_without_xgb_parameters_gets_those_of_its_run(tmp_path, tuned_xgb, data):
    X, y, _ = data
    ens = SoftVotingEnsemble([("lr", model_spec("lr").build(0)), ("xgb", tuned_xgb)], [0.5, 0.5]).fit(X, y)
    best = {"members": ["lr", "xgb"], "weights": {"lr": 0.5, "xgb": 0.5}, "lr__clf__C": 0.1,
            **{f"xgb__{k}": v for k, v in TUNED.items()}}
    store, run_dir = _old_run(tmp_path, ens, best, 3)
    loaded, _ = load_run(store, run_dir)
    assert _kept(dict(loaded.members)["xgb"], tuned_xgb)


# -- the same training gives the same file -------------------------------------------------------------------------

DATA = Path(__file__).resolve().parents[2] / "data"
FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def _trained_twice(make, data):
    """Two models trained alike, each saved: (model, bytes, record) of each."""
    X, y, _ = data
    out = []
    for _ in range(2):
        est = make().fit(X, y)
        blob, rec = dump_model(est)
        out.append((est, blob, rec))
    return out


def _rf():
    return model_spec("rf").build(0).set_params(n_estimators=5, max_depth=4)


@pytest.mark.parametrize("make", [lambda: model_spec("lr").build(0), lambda: model_spec("svc").build(0), _rf],
                         ids=["lr", "svc", "rf"])
def test_the_same_training_gives_the_same_skops_file(make, data):
    """skops named the arrays it stores by their address in memory (id()), and dated the archive's entries: the
    model file's SHA-256 differed between two trainings that gave the same model."""
    (a, blob_a, rec_a), (b, blob_b, rec_b) = _trained_twice(make, data)
    assert rec_a.format == "skops" and blob_a == blob_b and rec_a.sha256 == rec_b.sha256
    with zipfile.ZipFile(io.BytesIO(blob_a)) as zf:
        assert {i.date_time for i in zf.infolist()} == {FIXED_DATE}
    loaded = load_model(blob_b, rec_b.to_dict())
    scores = "predict_proba" if hasattr(b, "predict_proba") else "decision_function"  # the SVC has no probabilities
    np.testing.assert_array_equal(getattr(loaded, scores)(data[0]), getattr(b, scores)(data[0]))


def test_the_same_training_gives_the_same_xgboost_file(tuned_xgb, data):
    """XGBoost's JSON was already a function of the model: kept so."""
    (a, blob_a, rec_a), (b, blob_b, rec_b) = _trained_twice(lambda: clone(tuned_xgb), data)
    assert rec_a.format == "xgboost-json" and blob_a == blob_b


def test_the_same_training_gives_the_same_ensemble_file(tuned_xgb, data):
    """An ensemble's zip dated its entries and held its members' skops files as they were."""
    (a, blob_a, rec_a), (b, blob_b, rec_b) = _trained_twice(
        lambda: SoftVotingEnsemble([("lr", model_spec("lr").build(0)), ("xgb", clone(tuned_xgb))], [0.5, 0.5]), data)
    assert rec_a.format == "ensemble-zip" and blob_a == blob_b
    with zipfile.ZipFile(io.BytesIO(blob_a)) as zf:
        assert {i.date_time for i in zf.infolist()} == {FIXED_DATE}
    loaded = load_model(blob_b, rec_b.to_dict())
    np.testing.assert_array_equal(loaded.predict_proba(data[0]), b.predict_proba(data[0]))


def test_an_object_held_twice_is_one_object_after_loading(data):
    """skops stores an object once and refers to it where it appears again (by the number it names it with): after
    the file is rewritten, the two places still hold one object."""
    X, y, _ = data
    est = model_spec("lr").build(0).fit(X, y)
    shared = np.arange(5.0)
    est.first_ = est.second_ = shared
    blob, rec = dump_model(est)
    loaded = load_model(blob, rec.to_dict())
    assert loaded.first_ is loaded.second_ and np.array_equal(loaded.first_, shared)


def test_a_skops_file_of_an_earlier_release_still_loads():
    """A fused model saved by 0.x (its arrays named by their address in memory) loads and predicts as it did."""
    stored = json.loads((DATA / "fusion-written-by-0.x.json").read_text())
    model = load_model((DATA / "fusion-written-by-0.x.skops").read_bytes(), stored["record"])
    # equal to the last bits on the machine that wrote them; another CPU's BLAS rounds differently (1e-18 seen)
    np.testing.assert_allclose(model.predict_proba(np.asarray(stored["X"])), np.asarray(stored["proba"]), rtol=1e-12,
                               atol=1e-15)


@pytest.mark.parametrize("name", ["mlp", "frame-cnn"])
def test_a_keras_file_of_an_earlier_release_still_loads(name):
    """Files saved before the networks named their layers (Keras' own names, numbered by what the process had built
    before: made by 0.1 after another network, see each JSON's made_by) and before the file was normalised load and
    predict as they did."""
    stored = json.loads((DATA / f"{name}-written-by-0.1.json").read_text())
    model = load_model((DATA / f"{name}-written-by-0.1.keras").read_bytes(), stored["record"])
    X = np.asarray(stored["X"], np.float32 if name == "mlp" else np.uint8)
    # float32 networks: equal to the last bits with the kernels that wrote them (oneDNN on an Intel CPU); TensorFlow's
    # own kernels, as on an AMD CPU, round differently (3e-8 seen)
    np.testing.assert_allclose(np.asarray(model.predict_proba(X), np.float64), np.asarray(stored["proba"]), rtol=1e-5,
                               atol=1e-6)
