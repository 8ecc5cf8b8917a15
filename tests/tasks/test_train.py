"""``summary.json`` of a split: best first by grouped-CV accuracy, never by the test actors' scores."""

from __future__ import annotations

import math

from prefect.logging import disable_run_logger

from emotion.core.splits import ActorSplit
from emotion.store.store import Store
from tasks.train import write_summary

SPLIT = ActorSplit.parse("train=1-20,test=21-24")


def _row(model: str, modality: str, acc: float, cv: float, version: str = "v", **info) -> dict:
    return {"model": model, "version": version, "run_dir": f"runs/{model}/{version}", "reused": False,
            "modality": modality, "accuracy": acc, "macro_f1": acc, "uar": acc, "cv_accuracy": cv, "cv_std": 0.0,
            "features": "seed", **info}


_CLOCK = [1000.0]


def _trained(out, *rows: dict) -> list[dict]:
    """``rows`` as a training call returns them, their run folders stored (each written after the ones before)."""
    from tests.emotion.reporting.test_report_html import write_run

    for r in rows:
        _CLOCK[0] += 10
        info = {k: r[k] for k in ("modality", "features", "feature_set", "speaker_norm", "augment") if r.get(k)}
        write_run(out, r["model"], r["version"], r["accuracy"], cv=r["cv_accuracy"], mtime=_CLOCK[0], **info)
    return list(rows)


def test_summary_best_is_chosen_by_grouped_cv_and_a_run_without_a_score_never_wins(tmp_path):
    """The demo's store: svc best on the test actors, rf by grouped CV; fusion-early best on test, without CV."""
    rows = _trained(tmp_path, _row("svc", "audio", 0.963, 0.90), _row("rf", "audio", 0.93, 0.94),
                    _row("fusion-early", "fusion", 0.99, math.nan), _row("fusion-late", "fusion", 0.95, 0.91),
                    _row("fusion-stack", "fusion", 0.98, math.nan))
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
    landmarks = {"features": "landmarks"}
    with disable_run_logger():
        write_summary.fn(str(tmp_path), SPLIT, _trained(tmp_path, _row("lr", "audio", 0.9, 0.9, "a1"),
                                                         _row("rf", "audio", 0.6, 0.6, "r1")))
        write_summary.fn(str(tmp_path), SPLIT, _trained(tmp_path, _row("lr", "video", 0.95, 0.95, "l1", **landmarks)))
        summary = Store(str(tmp_path)).read_json(f"{tmp_path}/runs/{SPLIT.id}/summary.json")
        assert [(r["modality"], r["model"]) for r in summary["models"]] == [("video", "lr"), ("audio", "lr"),
                                                                           ("audio", "rf")]
        assert summary["best_by_modality"] == {"audio": "lr", "video": "lr"}
        # retrained (other data): replaces the audio lr only
        write_summary.fn(str(tmp_path), SPLIT, _trained(tmp_path, _row("lr", "audio", 0.5, 0.5, "a2")))
        summary = Store(str(tmp_path)).read_json(f"{tmp_path}/runs/{SPLIT.id}/summary.json")
    assert [(r["modality"], r["model"], r["cv_accuracy"]) for r in summary["models"]] == [
        ("video", "lr", 0.95), ("audio", "rf", 0.6), ("audio", "lr", 0.5)]
    assert summary["best_by_modality"] == {"audio": "rf", "video": "lr"}
    assert summary["selected"]["video"]["version"] == "l1" and summary["selected"]["audio"]["version"] == "r1"


def test_the_best_model_is_chosen_among_every_feature_set_as_predict_chooses(tmp_path):
    """A walkthrough: lr on extended features (the best grouped CV), then the seed models: "models" keeps one lr
    (the seed one), and "best" said svc while the report and predict used the extended lr."""
    from emotion.predict.runs import choose_runs

    ext = _row("lr", "audio", 0.658, 0.717, "e", features="extended", feature_set="extended-1a2b3c4d5e6f",
               speaker_norm=True, augment=[0.9, 1.1])
    with disable_run_logger():
        write_summary.fn(str(tmp_path), SPLIT, _trained(tmp_path, ext))
        write_summary.fn(str(tmp_path), SPLIT, _trained(tmp_path, _row("svc", "audio", 0.6, 0.55, "s"),
                                                         _row("lr", "audio", 0.5, 0.5, "p")))
    summary = Store(str(tmp_path)).read_json(f"{tmp_path}/runs/{SPLIT.id}/summary.json")
    assert summary["best"] == "lr" and summary["best_by_modality"] == {"audio": "lr"}
    assert summary["selected"] == {"audio": {"model": "lr", "version": "e", "features": "extended-1a2b3c4d5e6f",
                                             "speaker_norm": True, "augment": [0.9, 1.1]}}
    assert choose_runs(Store(str(tmp_path)))["audio"].version == "e"  # the one predict takes
    assert [(r["model"], r["version"], r["selected"]) for r in summary["all"]] == [
        ("lr", "e", True), ("svc", "s", False), ("lr", "p", False)]
    assert not any(r["selected"] for r in summary["models"])  # the seed lr and svc: neither is what predict uses


def test_the_summary_names_no_run_predict_cannot_take(tmp_path):
    """A run folder removed since (say, by hand) stays in "all", but predict can no longer take it: neither does
    the summary's choice."""
    import shutil

    with disable_run_logger():
        write_summary.fn(str(tmp_path), SPLIT, _trained(tmp_path, _row("rf", "audio", 0.9, 0.9, "r")))
        shutil.rmtree(tmp_path / "runs" / SPLIT.id / "rf")
        write_summary.fn(str(tmp_path), SPLIT, _trained(tmp_path, _row("svc", "audio", 0.5, 0.5, "s")))
    summary = Store(str(tmp_path)).read_json(f"{tmp_path}/runs/{SPLIT.id}/summary.json")
    assert summary["best"] == "svc" and summary["selected"]["audio"]["version"] == "s"
    assert [(r["model"], r["selected"]) for r in summary["all"]] == [("rf", False), ("svc", True)]


def test_each_entry_names_its_folder_within_the_split_so_a_copied_store_still_finds_it(tmp_path):
    """A review: summary.json gave each run only as an absolute folder, which in a copied store named the original."""
    store = Store(str(tmp_path))
    row = _row("lr", "audio", 0.9, 0.9, "a1")
    row["run_dir"] = store.url_of(store.path("runs", SPLIT.id, "lr", "a1"))
    with disable_run_logger():
        write_summary.fn(str(tmp_path), SPLIT, _trained(tmp_path, row))
    summary = store.read_json(f"{tmp_path}/runs/{SPLIT.id}/summary.json")
    assert [(r["run"], r["run_dir"]) for r in summary["models"]] == [("lr/a1", row["run_dir"])]
    assert (tmp_path / "runs" / SPLIT.id / summary["models"][0]["run"] / "run.json").is_file()
    assert summary["all"][0]["run"] == "lr/a1"
