import numpy as np

from emotion.reporting.metrics import confusion_png, evaluate


def test_metrics_keys_and_values():
    y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    p = np.array([0, 1, 1, 1, 2, 0, 3, 3])
    m = evaluate(y, p, train_actors=[1, 2], test_actors=[21], n_train=10)
    assert set(m) >= {"accuracy", "macro_f1", "uar", "n_train", "n_test", "train_actors", "test_actors",
                      "per_class", "confusion_matrix"}
    assert m["accuracy"] == 6 / 8 and m["n_test"] == 8 and m["n_train"] == 10
    assert np.isclose(m["uar"], np.mean([0.5, 1.0, 0.5, 1.0]))
    assert m["per_class"]["calm"]["recall"] == 1.0 and m["per_class"]["surprised"]["support"] == 0
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (8, 8) and cm.sum() == 8 and cm[0, 1] == 1


def test_confusion_png_is_a_png():
    png = confusion_png(np.eye(8, dtype=int).tolist(), "t")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
