"""A Keras MLP on clip features, behind the scikit-learn estimator contract.

:class:`KerasMLPClassifier` has ``get_params``/``set_params`` (from its
constructor), ``fit``, ``predict`` and ``predict_proba``, so search, ``clone``
and pipelines treat it like any other model. Feature scaling is a Keras
``Normalization`` layer adapted on the training data, so the saved ``.keras``
file holds everything needed to predict. Training is seeded and runs on the
CPU with one thread per process (searches run several processes instead).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

_configured = False


def _keras() -> Any:
    """Import Keras (TensorFlow backend) quietly, single-threaded, deterministic."""
    global _configured
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    if not _configured:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised in this process; keep its settings
            pass
        tf.config.experimental.enable_op_determinism()
        _configured = True
    return keras


class KerasMLPClassifier(ClassifierMixin, BaseEstimator):
    """Dense ReLU layers with dropout and L2, softmax output, Adam for a fixed number of epochs."""

    def __init__(
        self,
        hidden: int = 256,
        layers: int = 2,
        dropout: float = 0.3,
        l2: float = 1e-4,
        learning_rate: float = 1e-3,
        epochs: int = 60,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        self.hidden = hidden
        self.layers = layers
        self.dropout = dropout
        self.l2 = l2
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.seed = seed

    def _build(self, keras: Any, X: np.ndarray, n_classes: int) -> Any:
        norm = keras.layers.Normalization(axis=-1)
        norm.adapt(X)
        reg = keras.regularizers.L2(self.l2)
        model = keras.Sequential([keras.Input((X.shape[1],)), norm])
        for _ in range(self.layers):
            model.add(keras.layers.Dense(self.hidden, activation="relu", kernel_regularizer=reg))
            model.add(keras.layers.Dropout(self.dropout, seed=self.seed))
        model.add(keras.layers.Dense(n_classes, activation="softmax"))
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="sparse_categorical_crossentropy",
                      steps_per_execution=32)  # fewer Python round trips: small models are overhead-bound
        return model

    def fit(self, X: np.ndarray, y: np.ndarray) -> KerasMLPClassifier:
        keras = _keras()
        keras.utils.set_random_seed(self.seed)
        X = np.asarray(X, dtype=np.float32)
        self.classes_, yi = np.unique(np.asarray(y), return_inverse=True)
        self.n_features_in_ = X.shape[1]
        self.model_ = self._build(keras, X, len(self.classes_))
        self.model_.fit(X, yi, epochs=self.epochs, batch_size=self.batch_size, shuffle=True, verbose=0)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        out = np.asarray(self.model_(X, training=False))
        return out / out.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])

    # -- persistence (Keras native format; see emotion.persist) --------------------------
    def to_bytes(self) -> bytes:
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "model.keras")
            self.model_.save(p)
            with open(p, "rb") as fh:
                return fh.read()

    @classmethod
    def from_bytes(cls, data: bytes, classes: list[Any], params: dict[str, Any]) -> KerasMLPClassifier:
        keras = _keras()
        est = cls(**params)
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "model.keras")
            with open(p, "wb") as fh:
                fh.write(data)
            est.model_ = keras.saving.load_model(p, safe_mode=True, compile=False)
        est.classes_ = np.asarray(classes)
        est.n_features_in_ = int(est.model_.input_shape[-1])
        return est
