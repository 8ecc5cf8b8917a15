import json
import os
from pathlib import Path

import pytest

from emotion.ids import EMOTION_LABELS
from emotion.report import RECALL_PNG, SCORES_PNG, collect_runs, render_report, write_report
from emotion.store import Store

SPLIT = "train01-20_test21-24"


def _metrics(acc: float, recall: float = 0.5, **extra) -> dict:
    per = {e: {"precision": 0.5, "recall": recall, "f1": 0.5, "support": 0 if e == "surprised" else 4}
           for e in EMOTION_LABELS}
    return {"accuracy": acc, "macro_f1": acc - 0.01, "uar": acc - 0.02, "cv_accuracy": acc - 0.05, "cv_std": 0.01,
            "n_train": 100, "n_test": 28, "per_class": per, "confusion_matrix": [[0] * 8] * 8, **extra}


def _run(out: Path, model: str, version: str, acc: float, *, mtime: float, complete: bool = True,
         recall: float = 0.5, **info) -> Path:
    d = out / "runs" / SPLIT / model / version
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps(_metrics(acc, recall)))
    (d / "confusion_matrix.png").write_bytes(b"\x89PNG")
    if complete:
        run = {"model": model, "version": version, "split": "train=01-20,test=21-24", "feature_params": {"name": "seed"},
               **info}
        (d / "run.json").write_text(json.dumps(run))
        os.utime(d / "run.json", (mtime, mtime))
    return d


@pytest.fixture
def store(tmp_path: Path) -> Store:
    out = tmp_path / "store"
    _run(out, "rf", "old000000000", 0.10, mtime=1000)  # an older run of rf: superseded
    _run(out, "rf", "new000000000", 0.61, mtime=2000, recall=0.75)
    _run(out, "svc", "aaa000000000", 0.72, mtime=1500)
    _run(out, "svc", "bbb000000000", 0.99, mtime=3000, complete=False)  # interrupted: no run.json
    _run(out, "svc", "ccc000000000", 0.55, mtime=2500, features="extended", speaker_norm="actor-zscore")
    _run(out, "framecnn", "vvv000000000", 0.48, mtime=2600, modality="video")
    _run(out, "late", "fff000000000", 0.80, mtime=2700, modality="fusion")
    return Store(str(out))


def test_collect_keeps_the_newest_complete_run_per_modality_features_norm_and_model(store):
    runs = collect_runs(store, SPLIT)
    assert [(r.modality, r.model, r.version) for r in runs] == [
        ("audio", "svc", "aaa000000000"), ("audio", "rf", "new000000000"), ("audio", "svc", "ccc000000000"),
        ("video", "framecnn", "vvv000000000"), ("fusion", "late", "fff000000000")]
    assert runs[2].features == "extended" and runs[2].speaker_norm == "actor-zscore"
    assert runs[0].features == "seed" and runs[0].speaker_norm is None  # from run.json's feature_params
    assert len(collect_runs(store, SPLIT, newest_only=False)) == 6
    assert collect_runs(store, "train01-03_test21") == []


def test_report_puts_every_modality_side_by_side_with_recall_and_confusion_links(store):
    path = write_report(store, SPLIT)
    assert path == store.path("runs", SPLIT, "report.md")
    text = Path(path).read_text()
    table = [line for line in text.splitlines() if line.startswith("| audio") or line.startswith("| video")
             or line.startswith("| fusion")]
    assert table[0].startswith("| audio | **svc** | seed | – | 0.720 | 0.710 | 0.700 | 0.670 ± 0.010 | 100 | 28 |")
    assert table[2].startswith("| audio | svc | extended | actor-zscore | 0.550 |")
    assert table[3].startswith("| video | **framecnn** |") and table[4].startswith("| fusion | **late** |")
    assert "0.100" not in text and "0.990" not in text  # superseded and incomplete runs are left out
    assert "| audio/rf (seed) | " + " | ".join(["0.75"] * 7) + " | – |" in text  # surprised has no test clips
    for rel in ("svc/aaa000000000", "rf/new000000000", "framecnn/vvv000000000", "late/fff000000000"):
        assert f"]({rel}/confusion_matrix.png)" in text
        assert (Path(path).parent / rel / "confusion_matrix.png").is_file()  # relative links resolve
    for png in (SCORES_PNG, RECALL_PNG):
        assert f"![{png}]({png})" in text
        assert (Path(path).parent / png).read_bytes()[:4] == b"\x89PNG"
    assert "No runs yet" not in text


def test_report_of_audio_only_runs_names_the_missing_modalities_and_hides_empty_columns(tmp_path):
    _run(tmp_path, "xgb", "x00000000000", 0.5, mtime=1000, feature_params={})
    text = render_report(SPLIT, collect_runs(Store(str(tmp_path)), SPLIT))
    assert "No runs yet for: video, fusion." in text
    assert "features" not in text.split("## Per-emotion")[0].split("| modality")[1].split("\n")[0]
    assert "speaker norm" not in text
    assert render_report(SPLIT, []).endswith("No complete runs for this split yet.\n")
