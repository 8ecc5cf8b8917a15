import numpy as np
import pytest

from emotion.reporting.metrics import NO_FACE, confusion_png, evaluate, with_no_face


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


def test_a_clip_without_a_face_counts_as_wrong_and_stays_out_of_the_emotion_columns():
    y = np.array([0, 0, 2, 2, 3])
    p = np.array([NO_FACE, 0, 2, NO_FACE, 3])  # two clips in which no face was found: no prediction
    m = evaluate(y, p, train_actors=[1], test_actors=[21], n_train=10, faces=True)
    assert m["accuracy"] == 3 / 5 and m["n_test"] == 5 and m["n_test_clips_without_face"] == 2
    assert m["per_class"]["neutral"]["recall"] == 0.5 and m["per_class"]["neutral"]["support"] == 2
    assert m["per_class"]["neutral"]["precision"] == 1.0  # the faceless neutral clip is no "neutral" prediction
    cm = np.array(m["confusion_matrix"])
    assert cm[:, 0].sum() == 1 and cm.sum() == 3  # neither faceless clip is in a predicted-emotion column
    assert m["confusion_no_face"] == [1, 0, 1, 0, 0, 0, 0, 0]
    assert m["uar"] == np.mean([0.5, 0.5, 1.0])
    plain = evaluate(y, np.array([0, 0, 2, 2, 3]), train_actors=[1], test_actors=[21], n_train=10, faces=True)
    assert plain["n_test_clips_without_face"] == 0 and "n_test_clips_without_face" not in evaluate(
        y, y, train_actors=[1], test_actors=[21], n_train=10)
    with pytest.raises(ValueError, match="no face"):  # an audio model always predicts
        evaluate(y, p, train_actors=[1], test_actors=[21], n_train=10)


def test_confusion_png_has_a_no_face_column_only_when_a_clip_had_no_face():
    def width(png: bytes) -> int:
        return int.from_bytes(png[16:20], "big")

    cm = np.eye(8, dtype=int).tolist()
    assert width(confusion_png(cm, "t", [1, 0, 0, 0, 0, 0, 0, 0])) > width(confusion_png(cm, "t"))
    assert width(confusion_png(cm, "t", [0] * 8)) == width(confusion_png(cm, "t"))
    m, columns = with_no_face(cm, [2, 0, 0, 0, 0, 0, 0, 1])
    assert columns[-1] == "no face" and m.shape == (8, 9) and m[0, 8] == 2
