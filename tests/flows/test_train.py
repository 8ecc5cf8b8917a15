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


def _store_with_frames(tmp_path, frames: FrameParams) -> None:
    (tmp_path / "frames" / frames.key).mkdir(parents=True)
    (tmp_path / "frames" / frames.key / "params.json").write_text(json.dumps({"data_version": "77e0c2aa",
                                                                              "actors": [1, 5]}))


def _capture_tags(monkeypatch, module) -> list[list[str]]:
    """What ``module``'s flows give :func:`flows.naming.tagged` (their flow run's tags), one list per call."""
    import contextlib

    got: list[list[str]] = []

    @contextlib.contextmanager
    def tagged(labels):
        got.append(list(labels))
        yield

    monkeypatch.setattr(module, "tagged", tagged)
    return got


def _labels_of(monkeypatch, tmp_path, flow, *args, **kwargs) -> list[str]:
    """The tags ``flow`` (run by its function: no training) gives its flow run."""
    got = _capture_tags(monkeypatch, train)
    monkeypatch.setattr(train, "stored_extraction", lambda *_a: ("77e0c2aa", (1, 5)))
    for fn in ("train_model", "train_video_model", "train_fusion_model"):
        monkeypatch.setattr(train, fn, lambda *_a, **_k: {})
    monkeypatch.setattr(train, "_finish", lambda *_a, **_k: {})
    monkeypatch.setattr(train, "_progress", lambda *_a, **_k: None)
    monkeypatch.setattr(train.console, "tick", lambda *_a, **_k: None)
    flow.fn(str(tmp_path), "train=1,test=5", *args, **kwargs)
    return got[0]


def test_a_landmarks_training_is_named_and_tagged_video_as_its_models_are(tmp_path, monkeypatch):
    """Its flow run was named train-audio-landmarks-... and tagged modality:audio: the UI's modality:video filter
    missed it, while the README, the report, summary.json and predict call its models video."""
    from emotion.featuresets import feature_params

    _store_with_frames(tmp_path, feature_params("landmarks").frame_params())  # type: ignore[union-attr]
    params = {"out": str(tmp_path), "split": "train=1-16,test=17-20", "features": "landmarks"}
    monkeypatch.setattr(train, "current_run", lambda: ("02d5f1", params))
    got = train.train_audio_run_name()
    assert got.startswith("train-video-landmarks-") and got.endswith("-data-77e0c2aa-02d5f1"), got
    labels = _labels_of(monkeypatch, tmp_path, train.train_audio, ("lr",), "landmarks")
    assert "modality:video" in labels and "features:landmarks" in labels and "modality:audio" not in labels
    assert "modality:audio" in _labels_of(monkeypatch, tmp_path, train.train_audio, ("lr",), "seed")


def test_a_training_has_the_same_tags_whether_the_pipeline_or_train_starts_it(tmp_path, monkeypatch):
    """A fused (or frame) training started by `emotion train` had no speaker-norm tag; started by the pipeline it
    inherited the pipeline's (speaker-norm:yes with --speaker-norm, though fused models read raw voice features).
    Each training's own tags now name every kind the pipeline's do, so none is inherited."""
    import flows.run as run
    from flows.naming import merge_tags

    for speaker_norm in (False, True):
        got = _capture_tags(monkeypatch, run)
        monkeypatch.setattr(run, "_pipeline", lambda *_a, **_k: {})
        run.run_pipeline.fn(str(tmp_path), str(tmp_path), "train=1,test=5", speaker_norm=speaker_norm)
        pipeline = got[0]
        for flow, args, kwargs in ((train.train_audio, (("lr",), "seed"), {"speaker_norm": speaker_norm}),
                                   (train.train_video, (("cnn",),), {}),
                                   (train.train_fusion, (("fusion-late",),), {})):
            alone = _labels_of(monkeypatch, tmp_path, flow, *args, **kwargs)
            assert set(merge_tags(pipeline, alone)) == set(alone), (flow.name, speaker_norm, pipeline, alone)
            if flow is not train.train_audio:  # their models read raw voice features, or none
                assert "speaker-norm:no" in alone


def test_a_pipeline_names_its_landmarks_training_step_video_as_the_flow_run_under_it(tmp_path, monkeypatch):
    import flows.run as run
    from emotion.featuresets import feature_params

    steps: list[str] = []
    monkeypatch.setattr(run, "pipeline_step", lambda step, _fn: steps.append(step) or {"models": []})
    monkeypatch.setattr(run, "with_selection", lambda _out, t: t)
    for features in ("landmarks", "seed"):
        run.train_models(str(tmp_path), "train=1,test=5", ("lr", "svc"), (), (), feature_params(features), None,
                         FrameParams(), None, as_steps=True)  # type: ignore[arg-type]
    assert steps == ["train-video-landmarks-lr-svc", "train-audio-lr-svc"]


def test_a_landmarks_trainings_progress_metrics_and_result_say_video(tmp_path, monkeypatch):
    """Its name and tags said video, but its progress and metrics artifacts, its report's heading and the flow's
    result ("modality") still said audio."""
    seen: dict[str, list[str]] = {"progress": [], "finish": []}
    for features in ("landmarks", "seed"):
        _labels_of(monkeypatch, tmp_path, train.train_audio, ("lr",), features)  # no data, no training: stand-ins
        monkeypatch.setattr(train, "_progress", lambda modality, *_a, **_k: seen["progress"].append(modality))
        monkeypatch.setattr(train, "_finish", lambda _o, _s, _r, modality, *_a, **_k: seen["finish"].append(modality)
                            or {})
        train.train_audio.fn(str(tmp_path), "train=1,test=5", ("lr",), features)
    assert seen == {"progress": ["video", "audio"], "finish": ["video", "audio"]}
