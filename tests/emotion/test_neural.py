import numpy as np
import pytest
from sklearn.base import clone

from emotion.errors import ModelIntegrityError
from emotion.neural import KerasMLPClassifier
from emotion.persist import dump_model, load_model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = np.tile(np.arange(1, 9), 20) * 10  # labels need not be 0..k-1
    X = rng.standard_normal((len(y), 10)).astype(np.float32) * 5 + 100
    X[:, :8] += 4 * np.eye(8)[y // 10 - 1] * 5
    return X, y


def test_sklearn_contract_seeded_and_learns(data):
    X, y = data
    est = KerasMLPClassifier(hidden=64, layers=1, epochs=30, seed=3)
    assert clone(est).get_params() == est.get_params()
    assert clone(est.set_params(dropout=0.2)).dropout == 0.2
    a = clone(est).fit(X, y)
    b = clone(est).fit(X, y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-6)  # seeded
    assert set(a.classes_) == set(np.unique(y)) and (a.predict(X) == y).mean() > 0.9
    p = a.predict_proba(X)
    assert p.shape == (len(y), 8) and np.allclose(p.sum(axis=1), 1, atol=1e-5)


def test_saved_as_keras_with_hash_check(data):
    X, y = data
    est = KerasMLPClassifier(hidden=16, layers=1, epochs=3, seed=1).fit(X, y)
    blob, rec = dump_model(est)
    assert rec.file == "model.keras" and rec.format == "keras" and rec.meta["classes"] == sorted(set(y.tolist()))
    assert "estimator" not in rec.to_dict()  # the frame models' field (emotion.nn): loading goes by the record
    again = load_model(blob, rec.to_dict())
    np.testing.assert_allclose(again.predict_proba(X), est.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(again.predict(X), est.predict(X))
    tampered = bytearray(blob)
    tampered[100] ^= 1
    with pytest.raises(ModelIntegrityError, match="does not match the recorded"):
        load_model(bytes(tampered), rec.to_dict())
