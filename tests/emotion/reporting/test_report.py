import json
import os
from pathlib import Path

import pytest

from emotion.core.ids import EMOTION_LABELS
from emotion.reporting.report import (
    RECALL_PNG,
    SCORES_PNG,
    collect_runs,
    loso_markdown,
    merge_loso,
    merge_results,
    render_report,
    report_markdown,
    write_report,
)
from emotion.store.store import Store

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
    # ranked by grouped CV (as selected, across modalities; cv here: accuracy - 0.05)
    assert [(r.modality, r.model, r.version) for r in runs] == [
        ("fusion", "late", "fff000000000"), ("audio", "svc", "aaa000000000"), ("audio", "rf", "new000000000"),
        ("audio", "svc", "ccc000000000"), ("video", "framecnn", "vvv000000000")]
    assert runs[3].features == "extended" and runs[3].speaker_norm == "actor-zscore"
    assert runs[1].features == "seed" and runs[1].speaker_norm is None  # from run.json's feature_params
    assert len(collect_runs(store, SPLIT, newest_only=False)) == 6
    assert collect_runs(store, "train01-03_test21") == []


def test_report_puts_every_modality_side_by_side_with_recall_and_confusion_links(store):
    path = write_report(store, SPLIT)
    assert path == store.path("runs", SPLIT, "report.md")
    text = Path(path).read_text()
    table = [line for line in text.splitlines() if line.startswith("| audio") or line.startswith("| video")
             or line.startswith("| fusion")]
    # a speaker-normalised run is here: its single-clip accuracy column (the others have none: "–")
    assert table[1].startswith("| audio | **svc** (selected) | seed | – | 0.720 | – | 0.710 | 0.700 | 0.670 ± 0.010 | "
                               "100 | 28 |")
    assert table[3].startswith("| audio | svc | extended | actor-zscore | 0.550 |")
    assert table[4].startswith("| video | **framecnn** (selected) |")
    assert table[0].startswith("| fusion | **late** (selected) |")
    assert "0.100" not in text and "0.990" not in text  # superseded and incomplete runs are left out
    assert "| audio · rf · seed | " + " | ".join(["0.75"] * 7) + " | — |" in text  # surprised has no test clips
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
    # only LOSO results on the split (its test actors withheld): the report still leads to them
    loso = render_report(SPLIT, [], links=[("Leave-one-actor-out evaluation over the train actors", "loso/report.md")])
    assert loso.endswith("No complete runs for this split yet.\n\n"
                         "Leave-one-actor-out evaluation over the train actors: [loso/report.md](loso/report.md)\n")



def row(model, acc, features="seed", norm=False, key=None):
    r = {"model": model, "accuracy": acc, "macro_f1": acc, "uar": acc, "cv_accuracy": acc, "cv_std": 0.01,
         "features": features, "speaker_norm": norm}
    if key:
        r["feature_set"] = key
    return r


def test_results_merge_by_set_revision_model_and_normalisation():
    old = [row("lr", 0.5, "extended", True, "extended-aaa"), row("lr", 0.4)]
    new = [row("lr", 0.6, "extended", True, "extended-bbb"), row("lr", 0.45)]
    rows = merge_results(old, new)
    assert [(r.get("feature_set"), r["accuracy"]) for r in rows] == [("extended-bbb", 0.6), ("extended-aaa", 0.5),
                                                                    (None, 0.45)]
    md = report_markdown("train=01-16,test=17-20", rows)
    assert "| extended-bbb | yes | lr | 0.600 |" in md and "| seed | no | lr | 0.450 |" in md


def test_loso_rows_merge_and_render_per_actor():
    a = {"features": "extended", "feature_hash": "h1", "speaker_norm": True, "model": "lr", "mode": "fixed", "mean": 0.7,
         "std": 0.1, "min": 0.6, "max": 0.8, "per_actor": {"01": 0.6, "02": 0.8}, "path": "x"}
    b = {**a, "mode": "nested", "mean": 0.65, "per_actor": {"01": 0.5, "02": 0.8}}
    rows = merge_loso([a], [b, {**a, "mean": 0.75}])
    assert [(r["mode"], r["mean"]) for r in rows] == [("fixed", 0.75), ("nested", 0.65)] and "path" not in rows[1]
    md = loso_markdown("train=01-20,test=21-24", rows)
    assert "| extended-h1 | yes | lr | nested | 0.650 | 0.100 | 0.600 | 0.800 | 0.50 | 0.80 |" in md


def test_report_keys_audio_sets_by_revision_and_ranks_sets_and_normalisation_with_card_links(tmp_path):
    # two revisions of "extended" (same name, different parameters hash), one speaker-normalised, and seed
    a = _run(tmp_path, "lr", "e10000000000", 0.60, mtime=1000, features="extended", feature_hash="aaa", speaker_norm=True)
    _run(tmp_path, "lr", "e20000000000", 0.70, mtime=2000, features="extended", feature_hash="bbb", speaker_norm=True)
    _run(tmp_path, "lr", "s00000000000", 0.50, mtime=3000, features="seed", feature_hash="ccc", speaker_norm=False)
    _run(tmp_path, "cnn", "v00000000000", 0.40, mtime=3000, modality="video", features="frames-123")
    (a / "model_card.md").write_text("# Model card\n")
    (tmp_path / "runs" / SPLIT / "loso").mkdir()
    (tmp_path / "runs" / SPLIT / "loso" / "report.md").write_text("# LOSO\n")
    store = Store(str(tmp_path))
    runs = collect_runs(store, SPLIT)
    assert [(r.model, r.feature_set) for r in runs] == [
        ("lr", "extended-bbb"), ("lr", "extended-aaa"), ("lr", "seed-ccc"), ("cnn", "frames-123")]
    assert [r.features_shown for r in runs] == ["extended-bbb", "extended-aaa", "seed", "frames-123"]
    text = Path(write_report(store, SPLIT)).read_text()
    assert "| audio | **lr** (selected) | extended-bbb | yes | 0.700 |" in text and "| audio | lr | seed | – | 0.500 |" in text
    assert "lr/e10000000000/) · [model card](lr/e10000000000/model_card.md)" in text
    section = text.split("## Audio feature sets and speaker normalisation")[1].split("##")[0]
    lines = [x for x in section.splitlines() if x.startswith("| ") and "---" not in x][1:]
    assert [x.split(" | ")[:3] for x in lines] == [["| extended-bbb", "yes", "lr"], ["| extended-aaa", "yes", "lr"],
                                                   ["| seed-ccc", "no", "lr"]]
    assert "cnn" not in section  # audio only
    assert "[loso/report.md](loso/report.md)" in text


def test_loso_rows_of_other_settings_are_kept_apart_and_older_rows_find_their_settings():
    """Rows differ by the search's settings (nested) or the source run (fixed); a row written before the settings
    were recorded is merged by those its ``search`` or ``params_from`` show."""
    from emotion.store.catalog import loso_settings, loso_settings_hash

    base = {"features": "seed", "feature_hash": "h", "speaker_norm": False, "model": "xgb", "mean": 0.5, "std": 0.1,
            "min": 0.4, "max": 0.6, "per_actor": {"01": 0.5}}

    def nested(search, mean):
        s = loso_settings("nested", search)
        return {**base, "mode": "nested", "search": search, "settings": s, "settings_hash": loso_settings_hash(s),
                "mean": mean}

    def fixed(split_id, version, mean):
        s = loso_settings("fixed", params_split=split_id, params_run=version)
        return {**base, "mode": "fixed", "params_from": f"file:///s/runs/{split_id}/xgb/{version}", "settings": s,
                "settings_hash": loso_settings_hash(s), "mean": mean}

    s1 = {"n_iter": 10, "cv_folds": 3, "refine": True, "seed": 0}
    s2 = {**s1, "n_iter": 50}
    old_nested = {k: v for k, v in nested(s1, 0.4).items() if k not in ("settings", "settings_hash")}
    old_fixed = {k: v for k, v in fixed("train01-16_test17-20", "v1", 0.3).items() if k not in ("settings", "settings_hash")}
    rows = merge_loso([old_nested, old_fixed], [nested(s1, 0.41), nested(s2, 0.45), fixed("train01-16_test17-20", "v1", 0.31),
                                                fixed("train01-16_test17-20", "v2", 0.35)])
    assert [(r["mode"], r["mean"]) for r in rows] == [("nested", 0.45), ("nested", 0.41), ("fixed", 0.35), ("fixed", 0.31)]
    md = loso_markdown("train=01-20,test=21-24", rows)
    assert "| seed-h | no | xgb | nested | 0.450 | 0.100 | 0.400 | 0.600 | 0.50 | n_iter 50, 3 folds, refine, seed 0 |" in md
    assert "| run v2 on train01-16_test17-20 |" in md


def test_summary_rows_and_the_feature_set_table_rank_by_grouped_cv_not_by_test_accuracy():
    """Audit: summary.json's ``all`` (and the report's feature-set table) ranked by test accuracy, the models by CV."""
    rows = merge_results([], [{**row("svc", 0.65), "cv_accuracy": 0.70}, {**row("lr", 0.575), "cv_accuracy": 0.72},
                              {**row("rf", 0.70), "cv_accuracy": None}])
    assert [r["model"] for r in rows] == ["lr", "svc", "rf"]  # a row without a CV score last
    assert "ranked by grouped-CV accuracy" in report_markdown("train=01-16,test=17-20", rows)
