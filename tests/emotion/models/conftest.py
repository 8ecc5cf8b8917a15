"""Tiny data the model tests share: 8 separable classes, 6 actors of 32 clips each."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = np.tile(np.arange(8), 24)
    groups = np.repeat(np.arange(1, 7), 32)
    X = rng.standard_normal((len(y), 12)).astype(np.float32)
    X[:, :8] += 2.5 * np.eye(8)[y]
    return X, y, groups


def as_if_later_or_elsewhere() -> None:
    """Leave Keras as a process that has built other networks, or another process, would be: one layer of each kind
    our networks use, an input, a model and an optimizer made (Keras numbers each kind by how many the process made
    before), and a new dtype policy object (a saved model records the address in memory of the policy its layers
    share)."""
    from emotion.models.feature_nets import _keras

    keras = _keras()
    L = keras.layers
    inp = keras.Input((4, 4, 1))
    x = L.Rescaling(1.0)(L.Resizing(4, 4)(inp))
    x = L.MaxPooling2D()(L.ReLU()(L.BatchNormalization()(L.Conv2D(1, 1)(x))))
    x = L.Dense(2)(L.Dropout(0.1)(L.Flatten()(L.GlobalAveragePooling2D(keepdims=True)(x))))
    x = L.Activation("softmax")(L.Normalization()(L.Reshape((2,))(x)))
    keras.Model(inp, x).compile(optimizer=keras.optimizers.Adam(), loss="mse")
    keras.Sequential([keras.Input((2,)), L.Dense(1)])
    keras.config.set_dtype_policy(keras.config.dtype_policy().name)


FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def assert_trained_twice_alike(make, X, y) -> None:
    """``make()`` fitted on ``X, y`` twice, other networks built in between (:func:`as_if_later_or_elsewhere`),
    is saved in the same bytes, which tell nothing of when they were written, and loads to predict as fitted."""
    from emotion.models.persist import dump_model, load_model

    blob_a, rec_a = dump_model(make().fit(X, y))
    as_if_later_or_elsewhere()
    second = make().fit(X, y)
    blob_b, rec_b = dump_model(second)
    assert blob_a == blob_b and rec_a.sha256 == rec_b.sha256
    assert_keras_file_of_content_only(blob_a)
    loaded = load_model(blob_b, rec_b.to_dict())
    np.testing.assert_array_equal(loaded.predict_proba(X), second.predict_proba(X))


def assert_keras_file_of_content_only(blob: bytes) -> None:
    """Nothing in a saved ``.keras`` file tells when it was written."""
    import io
    import json
    import zipfile

    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert {i.date_time for i in zf.infolist()} == {FIXED_DATE}
        assert json.loads(zf.read("metadata.json"))["date_saved"] == "1980-01-01@00:00:00"
