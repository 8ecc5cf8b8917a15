"""flows.train: what a training flow run is named after."""

from __future__ import annotations

import json

import flows.train as train
from emotion.video.frames import FrameParams


def test_a_video_training_run_is_named_after_the_face_crops_its_models_read(tmp_path, monkeypatch):
    face = train.frames_for("cnn", FrameParams())  # asked for whole frames, the models read the face crops
    assert face.face_crop and not FrameParams().face_crop
    (tmp_path / "frames" / face.key).mkdir(parents=True)
    (tmp_path / "frames" / face.key / "params.json").write_text(json.dumps({"data_version": "77e0c2aa",
                                                                            "actors": [1, 5]}))
    params = {"out": str(tmp_path), "split": "train=1-16,test=17-20", "models": ("cnn", "fer"), "frames": FrameParams()}
    monkeypatch.setattr(train, "current_run", lambda: ("02d5f1", params))
    got = train.train_video_run_name()
    assert got.startswith(f"train-video-{face.key.rsplit('-', 1)[0]}-") and got.endswith("-data-77e0c2aa-02d5f1")
    assert "full" not in got


def test_training_and_evaluating_into_a_read_only_store_stop_before_any_work(tmp_path, monkeypatch):
    """They ran the whole search (minutes) and then failed to write metrics.json; extract stops at once."""
    import pytest

    import flows.evaluate as evaluate
    from emotion.core.errors import StoreError
    from tests.emotion.store.test_lock import _read_only

    def never(*_a, **_k):
        raise AssertionError("work started in a read-only store")

    for mod, fn in ((train, "train_model"), (train, "train_video_model"), (train, "train_fusion_model"),
                    (train, "stored_extraction"), (evaluate, "loso_model"), (evaluate, "stored_extraction")):
        monkeypatch.setattr(mod, fn, never)
    _read_only(monkeypatch, tmp_path)
    out, lock = str(tmp_path), rf"^cannot write {tmp_path}/\.lock: Read-only file system$"
    for flow in (train.train_audio, train.train_video, train.train_fusion, evaluate.evaluate_loso):
        with pytest.raises(StoreError, match=lock):
            flow.fn(out)


def test_loso_names_the_actors_held_out_not_the_split_s(tmp_path, monkeypatch):
    """On data of actors 1-3 and 17, `evaluate --loso --split train=1-16,test=17-20` held out 1-3, not 1-16."""
    import flows.evaluate as evaluate

    monkeypatch.setattr(evaluate, "stored_extraction", lambda *_a: ("v", (1, 2, 3, 17)))
    monkeypatch.setattr(evaluate, "loso_model", lambda *_a: {"model": "lr", "mean": 0.5, "actors": [1, 2, 3]})
    monkeypatch.setattr(evaluate, "write_loso_summary", lambda *_a: "summary.json")
    got = evaluate.evaluate_loso.fn(str(tmp_path), "train=1-16,test=17-20", ("lr",))
    assert got["actors"] == [1, 2, 3]
