from emotion.report import loso_markdown, merge_loso, merge_results, report_markdown


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
