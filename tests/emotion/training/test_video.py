"""Scoring a frame model per clip: clips without a face, and the validation accuracy recorded (no Keras: a stub
model on stub frame sets)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

from emotion.core.splits import ActorSplit
from emotion.models.frame_nets import FERTransfer, KerasFrameClassifier
from emotion.training.video import VideoSplit, train_and_evaluate_video, without_validation
from emotion.video.frames import FrameParams
from emotion.video.frameset import FrameBatch


class StubFrames:
    """Frames of some clips: each frame's image is filled with a code the stub model reads."""

    def __init__(self, paths: list[str], labels: list[int], codes: list[int] | None = None) -> None:
        self.paths, self.labels = paths, labels
        self.codes = codes if codes is not None else labels
        self.n_frames, self.n_clips = len(paths), len(set(paths))

    def batches(self, rng: Any = None) -> Any:
        images = np.stack([np.full((4, 4), c, np.uint8) for c in self.codes])
        yield FrameBatch(images, np.array(self.labels), np.array(self.paths, dtype=object),
                         np.arange(self.n_frames, dtype=np.int32), np.zeros(self.n_frames, np.float32))


# a frame's code -> its probabilities: 2 = mostly happy, 3 = clearly sad, 9 = a little happy but mostly sad
PROBA = {2: {2: 0.6, 3: 0.4}, 3: {3: 0.9, 2: 0.1}, 9: {2: 0.1, 3: 0.9}}


class Stub(KerasFrameClassifier):
    name = "cnn"

    def fit(self, X: Any, y: Any = None, validation: Any = None, progress: Any = None) -> Stub:
        # a validation frame accuracy that is not the one of the model kept (it must not be what is recorded)
        self.history_ = {"loss": [1.0, 0.9], "val_loss": [1.0, 0.8], "val_accuracy": [0.3, 0.9]}
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = np.zeros((len(X), 8))
        for i, img in enumerate(X):
            for k, v in PROBA[int(img[0, 0])].items():
                p[i, k] = v
        return p

    def to_bytes(self) -> bytes:
        return b"stub"


def _clip(emotion: int, actor: int, name: str) -> dict[str, Any]:
    return {"path": name, "actor": actor, "emotion": emotion}


def test_a_test_clip_without_a_face_has_no_prediction_and_counts_as_wrong():
    """Two neutral test clips without a face were scored neutral (the argmax of a uniform guess): always correct."""
    split = ActorSplit.parse("train=1,test=21")
    clips = pd.DataFrame([_clip(3, 21, "a.mp4"), _clip(1, 21, "b.mp4"), _clip(1, 21, "c.mp4"), _clip(3, 1, "t.mp4")])
    data = VideoSplit(fit=StubFrames(["t.mp4"], [2]), val=None, test=StubFrames(["a.mp4"], [2]),  # type: ignore[arg-type]
                      fit_actors=(1,), val_actors=(), clips=clips, data_hash="h")
    m = train_and_evaluate_video(Stub(), data, split, FrameParams(face_crop=True)).metrics
    assert m["n_test"] == 3 and m["n_test_clips_without_face"] == 2
    assert m["accuracy"] == 1 / 3 and m["per_class"]["neutral"]["recall"] == 0
    assert m["confusion_matrix"][0] == [0] * 8 and sum(r[0] for r in m["confusion_matrix"]) == 0
    assert m["confusion_no_face"] == [2, 0, 0, 0, 0, 0, 0, 0]


def test_predictions_name_a_clip_without_a_face_as_such():
    split = ActorSplit.parse("train=1,test=21")
    clips = pd.DataFrame([_clip(3, 21, "a.mp4"), _clip(1, 21, "b.mp4"), _clip(3, 1, "t.mp4")])
    data = VideoSplit(fit=StubFrames(["t.mp4"], [2]), val=None, test=StubFrames(["a.mp4"], [2]),  # type: ignore[arg-type]
                      fit_actors=(1,), val_actors=(), clips=clips, data_hash="h")
    preds = pd.read_parquet(io.BytesIO(train_and_evaluate_video(Stub(), data, split, FrameParams(face_crop=True))
                                       .predictions)).set_index("path")
    assert preds.loc["a.mp4", "predicted"] == "happy" and preds.loc["b.mp4", "predicted"] == "no face"
    assert preds.loc["b.mp4", "true"] == "neutral" and np.isnan(preds.loc["b.mp4", "p_neutral"])


def test_validation_accuracy_is_per_clip_of_the_model_kept():
    """Recorded as the landmark models' grouped CV is (per clip), from the fitted model, not from the history."""
    split = ActorSplit.parse("train=1-3,test=21")
    clips = pd.DataFrame([_clip(3, 1, "t.mp4"), _clip(3, 2, "v1.mp4"), _clip(4, 2, "v2.mp4"), _clip(4, 3, "v3.mp4"),
                          _clip(1, 2, "v4.mp4"), _clip(3, 21, "a.mp4")])
    # v1 (happy): two frames mostly happy, one clearly sad: 2 of 3 frames right, the clip (mean) wrong; v2, v3 (sad)
    # right; v4 (neutral) has no face: left out, as the landmark models' grouped CV leaves such clips out
    val = StubFrames(["v1.mp4", "v1.mp4", "v1.mp4", "v2.mp4", "v3.mp4"], [2, 2, 2, 3, 3], [2, 2, 9, 3, 3])
    data = VideoSplit(fit=StubFrames(["t.mp4"], [2]), val=val, test=StubFrames(["a.mp4"], [2]),  # type: ignore[arg-type]
                      fit_actors=(1,), val_actors=(2, 3), clips=clips, data_hash="h")
    m = train_and_evaluate_video(Stub(), data, split, FrameParams(face_crop=True)).metrics
    assert m["cv_accuracy"] == 2 / 3 and m["n_val_clips"] == 3  # frames: 4 / 5; the history's: 0.9
    assert "per-clip" in m["cv"]


def test_metrics_name_the_actors_trained_and_tested_not_the_split():
    split = ActorSplit.parse("train=1-16,test=17-21")
    clips = pd.DataFrame([_clip(3, 21, "a.mp4"), _clip(3, 1, "t.mp4"), _clip(3, 2, "u.mp4")])
    data = VideoSplit(fit=StubFrames(["t.mp4", "u.mp4"], [2, 2]), val=None, test=StubFrames(["a.mp4"], [2]),  # type: ignore[arg-type]
                      fit_actors=(1, 2), val_actors=(), clips=clips, data_hash="h")
    m = train_and_evaluate_video(Stub(), data, split, FrameParams(face_crop=True)).metrics
    assert m["train_actors"] == [1, 2] and m["test_actors"] == [21]


def test_training_without_validation_actors_says_what_it_does_instead():
    """One training actor (fewer than 3: none held out): nothing judges the epochs, and the run says so."""
    split = ActorSplit.parse("train=1,test=21")
    clips = pd.DataFrame([_clip(3, 21, "a.mp4"), _clip(3, 1, "t.mp4")])
    data = VideoSplit(fit=StubFrames(["t.mp4"], [2]), val=None, test=StubFrames(["a.mp4"], [2]),  # type: ignore[arg-type]
                      fit_actors=(1,), val_actors=(), clips=clips, data_hash="h")
    note = without_validation(Stub(epochs=7), data)
    assert note == ("cnn: no validation actors (1 training actor with frames; one is held out for validation from 3 "
                    "up): all 7 epochs run (no early stopping) and the last epoch's weights are kept; the run has no "
                    "validation score, so any video model with one is selected before it")
    assert "both phases run in full (2 + 3 epochs) and the fine-tuned weights are kept, never compared with the " \
        "head's" in without_validation(FERTransfer(epochs=2, tune_epochs=3), data)
    m = train_and_evaluate_video(Stub(epochs=7), data, split, FrameParams(face_crop=True)).metrics
    assert m["cv"] == f"not measured: {note}" and np.isnan(m["cv_accuracy"])
    # validation actors whose frames have no face are no validation either; frames to judge by are
    faceless = VideoSplit(fit=data.fit, val=StubFrames([], []), test=data.test, fit_actors=(1, 2), val_actors=(3,),  # type: ignore[arg-type]
                          clips=clips, data_hash="h")
    assert "(validation actors [3] have no frame with a face)" in without_validation(Stub(), faceless)
    judged = VideoSplit(fit=data.fit, val=StubFrames(["v.mp4"], [2]), test=data.test, fit_actors=(1, 2),  # type: ignore[arg-type]
                        val_actors=(3,), clips=clips, data_hash="h")
    assert without_validation(Stub(), judged) is None
