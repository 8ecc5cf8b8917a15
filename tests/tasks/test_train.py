"""``summary.json`` of a split: best first by grouped-CV accuracy, never by the test actors' scores."""

from __future__ import annotations

import math

from prefect.logging import disable_run_logger

from emotion.core.splits import ActorSplit
from emotion.store.store import Store
from tasks.train import write_summary

SPLIT = ActorSplit.parse("train=1-20,test=21-24")


def _row(model: str, modality: str, acc: float, cv: float) -> dict:
    return {"model": model, "version": "v", "run_dir": f"runs/{model}/v", "reused": False, "modality": modality,
            "accuracy": acc, "macro_f1": acc, "uar": acc, "cv_accuracy": cv, "cv_std": 0.0, "features": "seed"}


def test_summary_best_is_chosen_by_grouped_cv_and_a_run_without_a_score_never_wins(tmp_path):
    """The demo's store: svc best on the test actors, rf by grouped CV; fusion-early best on test, without CV."""
    rows = [_row("svc", "audio", 0.963, 0.90), _row("rf", "audio", 0.93, 0.94),
            _row("fusion-early", "fusion", 0.99, math.nan), _row("fusion-late", "fusion", 0.95, 0.91),
            _row("fusion-stack", "fusion", 0.98, math.nan)]
    with disable_run_logger():
        write_summary.fn(str(tmp_path), SPLIT, rows)
    summary = Store(str(tmp_path)).read_json(f"{tmp_path}/runs/{SPLIT.id}/summary.json")
    assert summary["best"] == "rf"
    assert summary["best_by_modality"] == {"audio": "rf", "fusion": "fusion-late"}
    assert [r["model"] for r in summary["models"]] == ["rf", "fusion-late", "svc", "fusion-early", "fusion-stack"]
    assert "grouped-CV" in summary["selection"]


def test_a_model_trained_on_another_modality_keeps_the_entry_of_its_namesake(tmp_path):
    """``emotion demo`` trains lr on the audio, then lr on the face's landmarks (video): both stay in ``models``
    and the audio's best is still the audio lr."""
    with disable_run_logger():
        write_summary.fn(str(tmp_path), SPLIT, [_row("lr", "audio", 0.9, 0.9), _row("rf", "audio", 0.6, 0.6)])
        write_summary.fn(str(tmp_path), SPLIT, [{**_row("lr", "video", 0.95, 0.95), "features": "landmarks"}])
        summary = Store(str(tmp_path)).read_json(f"{tmp_path}/runs/{SPLIT.id}/summary.json")
        assert [(r["modality"], r["model"]) for r in summary["models"]] == [("video", "lr"), ("audio", "lr"),
                                                                           ("audio", "rf")]
        assert summary["best_by_modality"] == {"audio": "lr", "video": "lr"}
        write_summary.fn(str(tmp_path), SPLIT, [_row("lr", "audio", 0.5, 0.5)])  # retrained: replaces the audio lr only
        summary = Store(str(tmp_path)).read_json(f"{tmp_path}/runs/{SPLIT.id}/summary.json")
    assert [(r["modality"], r["model"], r["cv_accuracy"]) for r in summary["models"]] == [
        ("video", "lr", 0.95), ("audio", "rf", 0.6), ("audio", "lr", 0.5)]
    assert summary["best_by_modality"] == {"audio": "rf", "video": "lr"}


def test_the_best_model_is_chosen_among_every_feature_set_as_predict_chooses(tmp_path):
    """A walkthrough: lr on extended features (the best grouped CV), then the seed models: "models" keeps one lr
    (the seed one), and "best" said svc while the report and predict used the extended lr."""
    ext = {**_row("lr", "audio", 0.658, 0.717), "version": "e", "features": "extended",
           "feature_set": "extended-1a2b3c4d5e6f", "speaker_norm": True, "augment": [0.9, 1.1]}
    with disable_run_logger():
        write_summary.fn(str(tmp_path), SPLIT, [ext])
        write_summary.fn(str(tmp_path), SPLIT, [_row("svc", "audio", 0.6, 0.55), _row("lr", "audio", 0.5, 0.5)])
    summary = Store(str(tmp_path)).read_json(f"{tmp_path}/runs/{SPLIT.id}/summary.json")
    assert summary["best"] == "lr" and summary["best_by_modality"] == {"audio": "lr"}
    assert summary["selected"] == {"audio": {"model": "lr", "version": "e", "features": "extended-1a2b3c4d5e6f",
                                             "speaker_norm": True, "augment": [0.9, 1.1]}}
    assert [(r["model"], r["version"], r["selected"]) for r in summary["all"]] == [
        ("lr", "e", True), ("svc", "v", False), ("lr", "v", False)]
    assert not any(r["selected"] for r in summary["models"])  # the seed lr and svc: neither is what predict uses
