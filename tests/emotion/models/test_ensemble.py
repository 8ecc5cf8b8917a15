import io
import zipfile

import numpy as np
import pytest

from emotion.core.errors import ModelIntegrityError
from emotion.models.catalog import SearchParams, model_spec
from emotion.models.ensemble import SoftVotingEnsemble, greedy_weights, tune_ensemble
from emotion.models.persist import dump_model, load_model


def test_greedy_selection_prefers_the_better_member_and_stops():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 25)
    good = np.eye(4)[y] * 0.7 + 0.075
    noise = rng.dirichlet(np.ones(4), len(y))
    counts = greedy_weights({"good": good, "noise": noise}, y)
    assert counts == {"good": 1}
    # two members right on different halves: both are kept
    a, b = good.copy(), good.copy()
    a[50:] = np.roll(a[50:], 1, axis=1) * 0.5 + 0.125
    b[:50] = np.roll(b[:50], 1, axis=1) * 0.5 + 0.125
    assert set(greedy_weights({"a": a, "b": b}, y)) == {"a", "b"}


@pytest.mark.slow
def test_ensemble_with_mlp_member_is_chosen_by_grouped_cv_and_persists(data):
    X, y, groups = data
    r = tune_ensemble(X, y, groups, SearchParams(n_iter=1, refine=False, seed=0), candidates=("lr", "mlp"),
                      spec_of=model_spec)
    est = r.estimator
    assert isinstance(est, SoftVotingEnsemble)
    assert set(r.best_params["members"]) <= {"lr", "mlp"} and r.best_params["members"]
    assert sum(r.best_params["weights"].values()) == pytest.approx(1.0, abs=1e-3)
    assert [s["stage"] for s in r.stages] == ["member lr", "member mlp", "selection"]
    assert all("oof_accuracy" in s for s in r.stages[:2]) and r.cv_accuracy > 0.6
    p = est.predict_proba(X)
    assert p.shape == (len(y), 8) and np.allclose(p.sum(axis=1), 1, atol=1e-5)

    # persisted as a zip of verified member files; a tampered member is refused
    two = SoftVotingEnsemble([("lr", est.members[0][1]), ("mlp", _mlp())], [0.5, 0.5]).fit(X, y)
    blob, rec = dump_model(two)
    assert rec.format == "ensemble-zip"
    again = load_model(blob, rec.to_dict())
    np.testing.assert_allclose(again.predict_proba(X), two.predict_proba(X), atol=1e-5)
    zf = zipfile.ZipFile(io.BytesIO(blob))
    entries = {n: zf.read(n) for n in zf.namelist()}
    keras_entry = next(n for n in entries if n.endswith(".keras"))
    bad = bytearray(entries[keras_entry])
    bad[len(bad) // 2] ^= 1
    entries[keras_entry] = bytes(bad)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for n, b in entries.items():
            out.writestr(n, b)
    from emotion.models.persist import sha256

    tampered = buf.getvalue()
    with pytest.raises(ModelIntegrityError, match="does not match the recorded"):
        load_model(tampered, {**rec.to_dict(), "sha256": sha256(tampered)})


def _mlp():
    from emotion.models.feature_nets import KerasMLPClassifier

    return KerasMLPClassifier(hidden=32, layers=1, epochs=5, seed=2)


def test_an_ensemble_of_rows_with_copies_is_chosen_and_fitted_on_the_copies(data):
    """Augmented rows (a clip and its copies side by side): members tuned, blended and fitted on every copy, scored
    by their probabilities averaged over a clip's copies; copies that are noise cost the blend its CV score."""
    X, y, groups = data
    rng = np.random.default_rng(1)
    params = SearchParams(n_iter=1, refine=False, seed=0)
    alike = np.hstack([X, X + 0.01 * rng.standard_normal(X.shape)])
    noise = np.hstack([X, 5 * rng.standard_normal(X.shape)])
    r = tune_ensemble(alike, y, groups, params, candidates=("lr",), spec_of=model_spec, copies=2)
    assert r.estimator.fitted_[0][1].n_features_in_ == X.shape[1] and r.cv_accuracy > 0.6
    worse = tune_ensemble(noise, y, groups, params, candidates=("lr",), spec_of=model_spec, copies=2)
    assert worse.cv_accuracy < r.cv_accuracy
