"""Keras models on clip feature vectors, behind the scikit-learn estimator contract.

* :class:`KerasMLPClassifier`: dense layers on any feature set (the baseline's
  neural network).
* :class:`KerasSpecCNN`: a convolutional network on the ``logmel`` set's
  spectrograms (each row a flattened bands x frames image), trained through a
  ``tf.data`` pipeline in batches with augmentation: random time shift,
  Gaussian noise and SpecAugment-style frequency and time masks.

Both have ``get_params``/``set_params`` (from their constructor), ``fit``,
``predict`` and ``predict_proba``, so search, ``clone`` and pipelines treat
them like any other model. Feature scaling is a Keras ``Normalization`` layer
fitted on the training data, so the saved ``.keras`` file holds everything
needed to predict. Training is seeded and runs on the CPU with one thread per
process (searches run several processes instead).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from emotion.core.errors import UsageError
from emotion.models.archive import canonical_keras

_configured = False


class _CurrentStderr:
    """``sys.stderr`` as it is at each write, for absl's log handler; not the handler's to close."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def close(self) -> None:
        pass


def absl_follows_stderr() -> None:
    """absl (imported by TensorFlow and Keras) makes a log handler holding ``sys.stderr`` of that moment, and closes
    that stream when logging is configured anew (Prefect does so on its first import: every live handler is closed)
    unless it is still ``sys.stderr``. So, in one process, a later ``sys.stderr`` (pytest's ``capsys``, a redirection)
    left the earlier one closed: under pytest, its capture file ("I/O operation on closed file", "lost sys.stderr").
    The handler writes to the ``sys.stderr`` of the moment instead, and closes nothing."""
    absl_logging = sys.modules.get("absl.logging")
    if absl_logging is None:
        return
    handler = absl_logging.get_absl_handler().python_handler
    if not isinstance(handler.stream, _CurrentStderr):
        handler.setStream(_CurrentStderr())


class _AcrossModels(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls ... triggered tf.function retracing" warning.

    TensorFlow counts the traces of a function by its code, and every Keras
    model's predict step has the same code: a process that builds several
    models (the pipeline builds one per estimator, search candidate and fold)
    traces each model's step once, and the count across models trips the
    warning, which says nothing about any one model retracing.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def quiet_tracing_across_models() -> None:
    """Install :class:`_AcrossModels` on TensorFlow's logger (once)."""
    log = logging.getLogger("tensorflow")
    if not any(isinstance(f, _AcrossModels) for f in log.filters):
        log.addFilter(_AcrossModels())


def logging_after_keras_import() -> None:
    """What importing TensorFlow and Keras leaves in logging, put right (both ``_keras`` call it)."""
    absl_follows_stderr()
    quiet_tracing_across_models()


def _keras() -> Any:
    """Import Keras (TensorFlow backend) quietly, single-threaded, deterministic."""
    global _configured
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    logging_after_keras_import()
    if not _configured:
        differs = []  # what makes a seeded network differ from the same one trained by the emotion command
        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised in this process; keep its settings
            differs.append("its thread pools were already made (one thread each is what makes runs repeatable)")
        tf.config.experimental.enable_op_determinism()
        if onednn_on():
            differs.append("its oneDNN operations are on (set TF_ENABLE_ONEDNN_OPTS=0 before importing tensorflow)")
        if differs:
            logging.getLogger("emotion.models").warning(
                "TensorFlow was set up before emotion could configure it: %s; a seeded Keras model trained in this "
                "process may differ from the same one trained by the emotion command", "; ".join(differs))
        _configured = True
    return keras


def onednn_on() -> bool:
    """Whether TensorFlow runs its oneDNN operations (decided when it is imported, by ``TF_ENABLE_ONEDNN_OPTS``).

    They compute in another order, so a seeded network's weights differ in their last bits (which early stopping
    can turn into another model); False where TensorFlow does not say.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # pragma: no cover - another TensorFlow layout
        return False
    return bool(_pywrap_util_port.IsMklEnabled())


def keras_file_bytes(model: Any) -> bytes:
    """``model`` in Keras' native ``.keras`` format, in bytes that depend on the network only.

    Keras dates the file and records addresses in memory (:func:`emotion.models.archive.canonical_keras` replaces
    them); the names of the layers, which Keras numbers by how many of a kind the process made before, are the
    builders' own (each layer, input, model and optimizer they make is named). The same training, in any process,
    saves the same bytes.
    """
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "model.keras")
        model.save(p)
        with open(p, "rb") as fh:
            return canonical_keras(fh.read())


class KerasFeatureClassifier(ClassifierMixin, BaseEstimator):
    """Shared prediction and persistence of the Keras models on feature vectors; subclasses build and fit."""

    kind = "keras"
    model_: Any
    classes_: np.ndarray

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        out = np.concatenate([np.asarray(self.model_(X[i: i + 256], training=False))
                              for i in range(0, len(X), 256)]) if len(X) else np.zeros((0, len(self.classes_)))
        return out / out.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])

    # -- persistence (Keras native format; see emotion.models.persist) --------------------------
    def to_bytes(self) -> bytes:
        return keras_file_bytes(self.model_)

    @classmethod
    def from_bytes(cls, data: bytes, classes: list[Any], params: dict[str, Any]) -> KerasFeatureClassifier:
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


class KerasMLPClassifier(KerasFeatureClassifier):
    """Dense ReLU layers with dropout and L2, softmax output, Adam for a fixed number of epochs."""

    kind = "mlp"

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
        # every layer named: Keras' own names count what the process built before, and go into the saved file
        norm = keras.layers.Normalization(axis=-1, name="normalization")
        norm.adapt(X)
        reg = keras.regularizers.L2(self.l2)
        model = keras.Sequential([keras.Input((X.shape[1],), name="features"), norm], name="mlp")
        for i in range(self.layers):
            model.add(keras.layers.Dense(self.hidden, activation="relu", kernel_regularizer=reg, name=f"dense_{i}"))
            model.add(keras.layers.Dropout(self.dropout, seed=self.seed, name=f"dropout_{i}"))
        model.add(keras.layers.Dense(n_classes, activation="softmax", name="output"))
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate, name="adam"),
                      loss="sparse_categorical_crossentropy",
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


class KerasSpecCNN(KerasFeatureClassifier):
    """Convolution blocks (conv, batch norm, ReLU, pooling, dropout) on log-mel spectrograms, pooled over time.

    Rows of ``X`` are spectrograms flattened band-major (``n_mels`` bands, the
    rest frames: the ``logmel`` feature set). The network normalises each band
    with its training mean and variance, so the same speaker-independent
    input works with or without speaker normalisation. Augmentation, in
    training only: a circular time shift of up to ``time_shift`` frames,
    Gaussian noise of ``noise`` band standard deviations, and one frequency
    mask of up to ``freq_mask`` bands and one time mask of up to
    ``time_mask`` frames set to the band means (SpecAugment).
    """

    kind = "melcnn"

    def __init__(
        self,
        n_mels: int = 40,
        filters: tuple[int, ...] = (24, 48, 96),
        dense: int = 64,
        dropout: float = 0.3,
        l2: float = 0.0,
        learning_rate: float = 3e-3,
        epochs: int = 40,
        batch_size: int = 64,
        augment: bool = True,
        time_shift: int = 8,
        noise: float = 0.1,
        freq_mask: int = 6,
        time_mask: int = 12,
        seed: int = 0,
    ) -> None:
        self.n_mels = n_mels
        self.filters = filters
        self.dense = dense
        self.dropout = dropout
        self.l2 = l2
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.augment = augment
        self.time_shift = time_shift
        self.noise = noise
        self.freq_mask = freq_mask
        self.time_mask = time_mask
        self.seed = seed

    def image_shape(self, n_features: int) -> tuple[int, int]:
        if self.n_mels < 1 or n_features % self.n_mels or n_features // self.n_mels < 8:
            raise UsageError(f"melcnn needs log-mel spectrograms of {self.n_mels} bands (the logmel feature set); "
                             f"got {n_features} features per clip")
        return self.n_mels, n_features // self.n_mels

    def _build(self, keras: Any, mean: np.ndarray, var: np.ndarray, n_classes: int) -> Any:
        L = keras.layers
        bands, frames = len(mean), self.n_frames_
        reg = keras.regularizers.L2(self.l2)
        # every layer named, as the MLP's (keras_file_bytes)
        layers: list[Any] = [
            keras.Input((bands * frames,), name="spectrogram"),
            L.Reshape((bands, frames, 1), name="image"),
            L.Normalization(axis=1, mean=mean, variance=var, name="band_norm"),
        ]
        for i, f in enumerate(self.filters):
            layers += [L.Conv2D(f, 3, padding="same", use_bias=False, kernel_regularizer=reg, name=f"conv_{i}"),
                       L.BatchNormalization(momentum=0.9, name=f"batch_norm_{i}"), L.ReLU(name=f"relu_{i}"),
                       L.MaxPooling2D(2, name=f"pool_{i}"), L.Dropout(self.dropout / 2, seed=self.seed, name=f"dropout_{i}")]
        layers += [L.GlobalAveragePooling2D(name="global_pool"),
                   L.Dense(self.dense, activation="relu", kernel_regularizer=reg, name="dense"),
                   L.Dropout(self.dropout, seed=self.seed, name="dropout"),
                   L.Dense(n_classes, activation="softmax", name="output")]
        model = keras.Sequential(layers, name="spec_cnn")
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate, name="adam"),
                      loss="sparse_categorical_crossentropy")
        return model

    def _augment_fn(self, mean: np.ndarray, std: np.ndarray) -> Any:
        _keras()
        import tensorflow as tf

        bands, frames = len(mean), self.n_frames_
        mean_t = tf.constant(mean.reshape(bands, 1), tf.float32)
        std_t = tf.constant(std.reshape(bands, 1), tf.float32)
        shift, noise, fmask, tmask, seed = self.time_shift, self.noise, self.freq_mask, self.time_mask, self.seed

        # each draw its own op seed: in a dataset's map, ops of one seed draw the same random bits, and an integer
        # draw is its low bound plus those bits modulo its range, so with one seed for all the draws were one number
        # (masks of equal maxima had equal widths; a 6-band frequency mask of 40 bands could start at 5 bands only)
        def band(width_max: int, size: int, op_seed: int) -> Any:
            width = tf.random.uniform([], 0, width_max + 1, tf.int32, seed=op_seed)
            start = tf.random.uniform([], 0, size - width + 1, tf.int32, seed=op_seed + 1)
            idx = tf.range(size)
            return (idx >= start) & (idx < start + width)

        def aug(x: Any, y: Any) -> Any:
            img = tf.reshape(x, (bands, frames))
            if shift > 0:
                img = tf.roll(img, tf.random.uniform([], -shift, shift + 1, tf.int32, seed=seed), axis=1)
            if noise > 0:
                img = img + tf.random.normal((bands, frames), stddev=noise, seed=seed + 1) * std_t
            if fmask > 0:
                img = tf.where(band(min(fmask, bands - 1), bands, seed + 2)[:, None], mean_t, img)
            if tmask > 0:
                img = tf.where(band(min(tmask, frames - 1), frames, seed + 4)[None, :], mean_t, img)
            return tf.reshape(img, (-1,)), y

        return aug

    def fit(self, X: np.ndarray, y: np.ndarray) -> KerasSpecCNN:
        keras = _keras()
        import tensorflow as tf

        keras.utils.set_random_seed(self.seed)
        X = np.asarray(X, dtype=np.float32)
        bands, self.n_frames_ = self.image_shape(X.shape[1])
        self.classes_, yi = np.unique(np.asarray(y), return_inverse=True)
        self.n_features_in_ = X.shape[1]
        per_band = X.reshape(len(X), bands, self.n_frames_).transpose(1, 0, 2).reshape(bands, -1)
        mean, var = per_band.mean(axis=1), np.maximum(per_band.var(axis=1), 1e-6)
        self.model_ = self._build(keras, mean, var, len(self.classes_))
        ds = tf.data.Dataset.from_tensor_slices((X, yi.astype(np.int32)))
        ds = ds.shuffle(len(X), seed=self.seed, reshuffle_each_iteration=True)
        if self.augment:
            ds = ds.map(self._augment_fn(mean, np.sqrt(var)), num_parallel_calls=1)
        self.model_.fit(ds.batch(self.batch_size).prefetch(2), epochs=self.epochs, shuffle=False, verbose=0)  # shuffled above
        return self


# the Keras feature models by the ``kind`` recorded with their saved file (emotion.models.persist)
FEATURE_NETS: dict[str, type[KerasFeatureClassifier]] = {"mlp": KerasMLPClassifier, "melcnn": KerasSpecCNN}
