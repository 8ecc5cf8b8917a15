import numpy as np
import pytest
from sklearn.base import clone

from emotion.core.errors import ModelIntegrityError
from emotion.models.feature_nets import KerasMLPClassifier
from emotion.models.persist import dump_model, load_model
from tests.emotion.models.conftest import assert_trained_twice_alike


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
    assert "estimator" not in rec.to_dict()  # the frame models' field (emotion.models.frame_nets): loading goes by the record
    again = load_model(blob, rec.to_dict())
    np.testing.assert_allclose(again.predict_proba(X), est.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(again.predict(X), est.predict(X))
    tampered = bytearray(blob)
    tampered[100] ^= 1
    with pytest.raises(ModelIntegrityError, match="does not match the recorded"):
        load_model(bytes(tampered), rec.to_dict())


def spectrograms(n_per_class: int = 24, bands: int = 8, frames: int = 16, seed: int = 0):
    """Tiny 'spectrograms': class k has a bright band k at a random time; rows flattened band-major."""
    rng = np.random.default_rng(seed)
    y = np.tile(np.arange(8), n_per_class)
    X = rng.standard_normal((len(y), bands, frames)).astype(np.float32) - 60
    for i, k in enumerate(y):
        t0 = rng.integers(0, frames - 6)
        X[i, k % bands, t0: t0 + 6] += 6
    return X.reshape(len(y), -1), y


def test_spectrogram_cnn_contract_learns_and_persists():
    from emotion.models.feature_nets import KerasSpecCNN

    X, y = spectrograms()
    est = KerasSpecCNN(n_mels=8, filters=(8, 16), dense=16, epochs=25, time_shift=2, freq_mask=1, time_mask=2, seed=4)
    assert clone(est).get_params() == est.get_params()
    a = clone(est).fit(X, y)
    b = clone(est).fit(X, y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-5)  # seeded
    Xt, yt = spectrograms(seed=1)
    assert (a.predict(Xt) == yt).mean() > 0.8  # new clips: the bright band is found wherever it is
    blob, rec = dump_model(a)
    assert rec.format == "keras" and rec.meta["kind"] == "melcnn"
    again = load_model(blob, rec.to_dict())
    assert type(again) is KerasSpecCNN
    np.testing.assert_allclose(again.predict_proba(Xt), a.predict_proba(Xt), atol=1e-6)


def test_spectrogram_cnn_refuses_vectors_that_are_not_its_spectrograms():
    from emotion.core.errors import UsageError
    from emotion.models.feature_nets import KerasSpecCNN

    with pytest.raises(UsageError, match="melcnn needs log-mel spectrograms of 40 bands"):
        KerasSpecCNN().fit(np.zeros((16, 785), np.float32), np.arange(16) % 8)


def test_spectrogram_augmentation_shifts_adds_noise_and_masks_with_the_band_mean():
    import tensorflow as tf

    from emotion.models.feature_nets import KerasSpecCNN

    bands, frames = 8, 20
    img = np.tile(np.arange(frames, dtype=np.float32), (bands, 1)) + 100 * np.arange(bands, dtype=np.float32)[:, None]
    mean, std = img.mean(axis=1), np.ones(bands, np.float32)
    est = KerasSpecCNN(n_mels=bands, time_shift=3, noise=0.0, freq_mask=2, time_mask=4, seed=0)
    est.n_frames_ = frames
    aug = est._augment_fn(mean, std)
    tf.random.set_seed(0)
    outs = [aug(tf.constant(img.reshape(-1)), 0)[0].numpy().reshape(bands, frames) for _ in range(30)]
    masked_band = [np.all(o == mean[:, None], axis=1) for o in outs]
    assert all(m.sum() <= 2 for m in masked_band) and any(m.any() for m in masked_band)
    for o in outs:  # every kept cell is the original, shifted in time (circularly) by at most 3 frames
        keep = o != mean[:, None]
        shift = {(int(v) - t) % frames for (b, t), v in np.ndenumerate(np.where(keep, o - 100 * np.arange(bands)[:, None], -1))
                 if keep[b, t]}
        (s,) = shift
        assert s in {0, 1, 2, 3, frames - 3, frames - 2, frames - 1}
    noisy = KerasSpecCNN(n_mels=bands, time_shift=0, noise=0.5, freq_mask=0, time_mask=0, seed=0)
    noisy.n_frames_ = frames
    out = noisy._augment_fn(mean, std)(tf.constant(img.reshape(-1)), 0)[0].numpy()
    assert 0.3 < np.std(out - img.reshape(-1)) < 0.7


def spectrogram_draws(est, bands: int, frames: int, n: int = 200) -> np.ndarray:
    """Per augmented copy (in a dataset's map, as in training): the time shift, the frequency mask's width and first
    band, the time mask's width and first frame (start NaN for an empty mask)."""
    import tensorflow as tf

    img = np.tile(10 * np.arange(frames, dtype=np.float32), (bands, 1))  # frame t is 10 t: the shift shows
    est.n_frames_ = frames
    aug = est._augment_fn(np.full(bands, -1000, np.float32), np.ones(bands, np.float32))  # masked cells are -1000
    tf.random.set_seed(0)
    draws = []
    for x, _ in tf.data.Dataset.from_tensors((img.reshape(-1), 0)).repeat(n).map(aug):
        out = x.numpy().reshape(bands, frames)
        masked = out == -1000
        fm, tm = np.flatnonzero(masked.all(axis=1)), np.flatnonzero(masked.all(axis=0))
        b, t = np.argwhere(~masked)[0]
        s = (t - int(np.round(out[b, t] / 10))) % frames
        draws.append([s - frames if s > frames // 2 else s, len(fm), fm[0] if len(fm) else np.nan,
                      len(tm), tm[0] if len(tm) else np.nan])
    return np.array(draws, dtype=float)


def test_spectrogram_augmentation_draws_shift_and_masks_apart():
    """One op seed for every draw made them one draw: an integer draw is its low bound plus the same random bits
    modulo its range, so a shift of up to 3 frames and masks of up to 6 (7 values each) were the same number, and
    masks on a square image started at the same place."""
    from emotion.models.feature_nets import KerasSpecCNN

    est = KerasSpecCNN(n_mels=24, time_shift=3, noise=0.1, freq_mask=6, time_mask=6, seed=0)
    d = spectrogram_draws(est, 24, 24)
    shift, fwidth, fstart, twidth, tstart = d.T
    assert set(shift) == set(range(-3, 4)) and set(fwidth) == set(twidth) == set(range(7))
    for a, b in [(shift, fwidth), (shift, twidth), (fwidth, twidth), (fstart, tstart), (shift, fstart),
                 (shift, tstart), (fwidth, tstart), (twidth, fstart)]:
        both = np.isfinite(a) & np.isfinite(b)
        assert abs(np.corrcoef(a[both], b[both])[0, 1]) < 0.3  # 1.0 with one op seed for all draws


def test_spectrogram_augmentation_masks_start_anywhere_with_the_default_settings():
    """With the defaults (40 bands, 60 frames of the logmel set) one op seed for all draws tied each mask's start to
    its width: a 6-band frequency mask started at bands 6, 13, 20, 27 or 34 only (its start was the same random bits
    modulo 35 as its width modulo 7), a 9-frame time mask at 4 of its 52 places."""
    from emotion.models.feature_nets import KerasSpecCNN

    shift, fwidth, fstart, twidth, tstart = spectrogram_draws(KerasSpecCNN(seed=0), 40, 60, n=700).T
    assert len(set(fstart[fwidth == 6])) > 20 and len(set(tstart[twidth == 9])) > 20


def test_keras_leaves_no_log_handler_that_closes_an_earlier_stderr(tmp_path):
    """absl (imported with TensorFlow) kept the sys.stderr of that moment and closed it when logging was configured
    anew (Prefect's first import does so) once sys.stderr had changed: under pytest, the capture file."""
    import subprocess
    import sys

    script = (
        "import io, logging.config, sys\n"
        "earlier = sys.stderr = io.StringIO()\n"
        "from emotion.models.feature_nets import _keras\n"
        "_keras()\n"
        "sys.stderr = io.StringIO()\n"
        "logging.config.dictConfig({'version': 1})\n"
        "sys.exit(3 if earlier.closed else 0)\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, "absl's handler closed the stderr it was made with" if res.returncode == 3 else res.stderr


@pytest.mark.parametrize("quiet", [True, False])
def test_several_models_in_one_process_bring_no_retracing_warning(quiet):
    """TensorFlow counts traces by the code of Keras' predict step, which every model shares: eight models each
    predicting once tripped "5 out of the last 7 calls ... triggered tf.function retracing" in the demo's console.
    Without the filter (``quiet`` False) the warning is there, which shows the check can fail."""
    import subprocess
    import sys

    script = (
        "import logging, sys\n"
        "import numpy as np\n"
        "import emotion.models.feature_nets as fn\n"
        f"{'' if quiet else 'fn.quiet_tracing_across_models = lambda: None'}\n"
        "seen = []\n"
        "class H(logging.Handler):\n"
        "    def emit(self, r): seen.append(r.getMessage())\n"
        "logging.getLogger().addHandler(H())\n"
        "keras = fn._keras()\n"
        "for i in range(8):\n"
        "    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])\n"
        "    m.predict(np.zeros((4 + i, 3), np.float32), verbose=0)\n"
        "sys.exit(3 if any('retracing' in s for s in seen) else 0)\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode in (0, 3), res.stderr[-2000:]
    assert (res.returncode == 0) == quiet, "a retracing warning was logged" if quiet else "no warning to filter"


@pytest.mark.parametrize("tf_first", [True, False])
def test_tensorflow_set_up_before_the_package_is_named(tf_first):
    """TensorFlow imported and run before the package's first Keras model (a notebook) keeps its oneDNN operations
    and thread pools, and a seeded network then differs from the command's: said in a warning, only then."""
    import ast
    import subprocess
    import sys

    script = (
        "import logging, os, sys\n"
        "os.environ.pop('TF_ENABLE_ONEDNN_OPTS', None)\n"
        "seen = []\n"
        "class H(logging.Handler):\n"
        "    def emit(self, r): seen.append(r.getMessage())\n"
        "logging.getLogger('emotion').addHandler(H())\n"
        f"{'import tensorflow as tf; tf.constant(1) + 1' if tf_first else ''}\n"
        "from emotion.models.feature_nets import _keras, onednn_on\n"
        "_keras()\n"
        "print(repr(onednn_on()))\n"
        "print(repr(seen))\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    onednn, seen = (ast.literal_eval(line) for line in res.stdout.strip().splitlines()[-2:])
    if tf_first:  # (TensorFlow turns oneDNN on by itself on some CPUs only: on an AMD EPYC here, not)
        assert len(seen) == 1 and ("oneDNN" in seen[0]) == onednn and "thread pools" in seen[0], seen
    else:
        assert seen == []


@pytest.mark.parametrize("kind", ["mlp", "melcnn"])
def test_the_same_training_gives_the_same_keras_file(kind, data):
    """Keras dated the file and its entries, numbered the layers by how many of their kind the process had built
    before, and recorded the address in memory of the dtype policy the layers share: the file's SHA-256 differed
    between two trainings of the same network, in one process or two."""
    from emotion.models.feature_nets import KerasSpecCNN

    if kind == "mlp":
        X, y = data
        make = lambda: KerasMLPClassifier(hidden=8, layers=2, epochs=2, seed=1)  # noqa: E731
    else:
        X, y = spectrograms(n_per_class=4)
        make = lambda: KerasSpecCNN(n_mels=8, filters=(4, 8), dense=8, epochs=1, seed=2)  # noqa: E731
    assert_trained_twice_alike(make, X, y)
