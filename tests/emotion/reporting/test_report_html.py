"""report.html (emotion.reporting.report_html) and the report's figures on tiny synthetic runs: short labels, no nan, one
self-contained page; and the page in headless Chromium (Debian's ``chromium``), which loads its images and tables."""

from __future__ import annotations

import json
import math
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from emotion.core.ids import EMOTION_LABELS
from emotion.reporting.report import (
    REPORT_HTML,
    collect_runs,
    cv_text,
    recall_png,
    scores_png,
    short_features,
    short_labels,
)
from emotion.reporting.report_html import confusion_figure, write_reports
from emotion.store.store import Store

SPLIT = "train01-20_test21-24"
FUSED_FEATURES = "seed-4bd90a733487 + fer2013 face embedding (face256-every20-b6d1fda3f2a5)"


def _metrics(acc: float, rng: np.random.Generator, *, cv: float | None = None, cv_std: float = 0.02) -> dict:
    n = 8
    cm = np.zeros((n, n), dtype=int)
    for i in range(n):
        right = int(round(acc * 30))
        cm[i, i] = right
        for _ in range(30 - right):
            cm[i, int(rng.integers(n))] += 1
    per = {e: {"precision": 0.5, "recall": float(cm[i, i] / cm[i].sum()), "f1": 0.5, "support": int(cm[i].sum())}
           for i, e in enumerate(EMOTION_LABELS)}
    return {"accuracy": acc, "macro_f1": acc - 0.01, "uar": acc - 0.02,
            "cv_accuracy": float("nan") if cv is None else cv, "cv_std": cv_std, "n_train": 480, "n_test": 240,
            "per_class": per, "confusion_matrix": cm.tolist()}


def write_run(out: Path, model: str, version: str, acc: float, *, cv: float | None = None, mtime: float = 1000,
              card: bool = True, history: dict | None = None, metrics: dict | None = None, **info) -> Path:
    rng = np.random.default_rng(len(model) + int(acc * 100))
    d = out / "runs" / SPLIT / model / version
    d.mkdir(parents=True)
    m = _metrics(acc, rng, cv=cv, cv_std=0.0 if info.get("modality") in ("video", "fusion") else 0.02)
    m.update(metrics or {})
    (d / "metrics.json").write_text(json.dumps(m))  # NaN, as stores written before strict JSON (null now) hold it
    (d / "confusion_matrix.png").write_bytes(b"\x89PNG")
    if card:
        (d / "model_card.md").write_text(f"# Model card: {model}\n")
    if history is not None:
        (d / "history.json").write_text(json.dumps(history))
    run = {"model": model, "version": version, "split": "train=01-20,test=21-24", **info}
    (d / "run.json").write_text(json.dumps(run))
    os.utime(d / "run.json", (mtime, mtime))
    return d


def build_store(out: Path, origin: str | None = "synthetic") -> Store:
    """A store shaped like the demo's: audio, video (with curves) and fused runs; the fused ones without CV."""
    o = {"data_origin": origin} if origin else {}
    hist = {"loss": [2.0, 1.5, 1.1, 0.8, 0.6], "val_loss": [2.1, 1.7, 1.3, 1.1, 1.0],
            "accuracy": [0.2, 0.4, 0.6, 0.7, 0.8], "val_accuracy": [0.15, 0.35, 0.5, 0.6, 0.62], "head_epochs": [2]}
    seed = {"features": "seed", "feature_hash": "4bd90a733487", "feature_params": {"name": "seed"}}
    write_run(out, "svc", "a00000000001", 0.72, cv=0.70, **seed, **o)
    write_run(out, "rf", "a00000000002", 0.61, cv=0.58, **seed, **o)
    write_run(out, "lr", "a00000000003", 0.66, cv=0.64, **seed, **o)
    write_run(out, "xgb", "a00000000004", 0.55, cv=0.60, **seed, **o)
    write_run(out, "svc", "a00000000005", 0.78, cv=0.75, features="extended", feature_hash="1234567890ab",
              feature_params={"name": "extended", "speeds": [0.9, 1.1]}, speaker_norm=True, **o)
    write_run(out, "cnn", "v00000000001", 0.48, cv=0.50, modality="video", features="face256-every20-b6d1fda3f2a5",
              history=hist, **o)
    write_run(out, "fer", "v00000000002", 0.91, cv=0.95, modality="video", features="face96-every20-0a1b2c3d4e5f",
              history=hist, **o)
    write_run(out, "lr", "v00000000003", 0.58, cv=0.55, modality="video", features="landmarks",
              feature_hash="77aa77aa77aa", **o)
    for i, (m, acc) in enumerate((("fusion-early", 0.97), ("fusion-late", 0.93), ("fusion-stack", 0.95))):
        write_run(out, m, f"f0000000000{i}", acc, cv=None, modality="fusion", features=FUSED_FEATURES, **o)
    (out / "runs" / SPLIT / "loso").mkdir()
    (out / "runs" / SPLIT / "loso" / "report.md").write_text("# LOSO\n")
    (out / "runs" / SPLIT / "loso" / "summary.json").write_text(json.dumps({"split": "train=01-20,test=21-24", "all": [
        {"features": "extended", "feature_hash": "h1", "speaker_norm": True, "model": "lr", "mode": "nested",
         "mean": 0.70, "std": 0.08, "min": 0.6, "max": 0.81, "per_actor": {"01": 0.6, "02": 0.81, "03": 0.7}}]}))
    return Store(str(out))


class _Page(HTMLParser):
    """The tags and attributes of a page, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    return p


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return build_store(tmp_path / "store")


def test_short_labels_are_readable_and_unique():
    assert short_features(FUSED_FEATURES) == "seed + face"
    assert short_features("face256-every20-b6d1fda3f2a5") == "face256-every20"
    assert short_features("extended") == "extended"


def test_labels_of_the_demo_like_store(store):
    runs = collect_runs(store, SPLIT)
    labels = short_labels(runs)
    by = {r.rel_dir: labels[r.rel_dir] for r in runs}
    assert by["svc/a00000000001"] == "audio · svc · seed"
    assert by["svc/a00000000005"] == "audio · svc · extended + aug · speaker-norm"
    assert by["fusion-early/f00000000000"] == "fusion · early · seed + face"
    assert by["lr/v00000000003"] == "video · lr · landmarks"
    assert len(set(labels.values())) == len(labels)
    assert max(len(v) for v in labels.values()) <= 45
    assert cv_text({"cv_accuracy": float("nan"), "cv_std": 0.0}) == "—"
    assert cv_text({"cv_accuracy": 0.5, "cv_std": 0.0}) == "0.500"
    assert cv_text({"cv_accuracy": 0.5, "cv_std": 0.01}) == "0.500 ± 0.010"


def test_no_nan_reaches_the_markdown_or_the_page(store):
    md = Path(write_reports(store, SPLIT)).read_text()
    page = (Path(store.root) / "runs" / SPLIT / REPORT_HTML).read_text()
    for text in (md, page):
        assert not re.search(r"\bnan\b", text, re.IGNORECASE)
    assert "recorded no grouped-CV score" in md and "recorded no grouped-CV score" in page  # and "—" is explained
    fused = [line for line in md.splitlines() if line.startswith("| fusion |")]
    assert len(fused) == 3 and all(" | — | 480 | 240 |" in line and "| seed + face |" in line for line in fused)


def test_the_page_is_self_contained_with_every_section(store):
    write_reports(store, SPLIT)
    page = (Path(store.root) / "runs" / SPLIT / REPORT_HTML).read_text()
    p = parse(page)
    imgs = [a for t, a in p.tags if t == "img"]
    # scores + recall + 11 confusion matrices + 2 curves
    assert len(imgs) == 2 + 11 + 2
    assert all(str(a["src"]).startswith("data:image/png;base64,") for a in imgs)
    for t, a in p.tags:
        for attr in ("src", "href"):
            v = a.get(attr)
            if v is None:
                continue
            assert not re.match(r"(?i)^[a-z][a-z0-9+.-]*:", v) or v.startswith("data:"), f"<{t} {attr}={v}>"
            assert not v.startswith("/") and ".." not in v, v
            if t == "a" and not v.startswith("#"):  # relative links to files of the store resolve
                assert (Path(store.root) / "runs" / SPLIT / v.split("#")[0]).exists(), v
    assert not any(t in ("link", "script", "iframe", "object", "embed") for t, _ in p.tags)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert page.count('href="svc/a00000000001/model_card.md"') >= 1
    assert 'href="loso/report.md"' in page
    text = " ".join(p.text)
    for heading in ("Models side by side", "Per-emotion recall", "Confusion matrices", "Training curves",
                    "Leave-one-actor-out", "Model cards"):
        assert heading in text
    assert "fusion · early · seed + face" in text and "fer2013" not in text
    assert "trained on synthetic data" in text
    # ranked as selected: fer (validation 0.95) first, the fused models without a grouped-CV score last
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td class="model"><span class="dot \w+"></span>([^<]+)<', page)
    assert rows[0] == ("1", "video · fer · face96-every20") and rows[-1][1] == "fusion · stack · seed + face"


def test_recorded_runs_carry_no_synthetic_warning_and_old_runs_read_unknown(tmp_path):
    store = build_store(tmp_path / "rec", origin="recorded")
    write_reports(store, SPLIT)
    page = (Path(store.root) / "runs" / SPLIT / REPORT_HTML).read_text()
    assert "synthetic data" not in page and "recorded clips" in page
    old = build_store(tmp_path / "old", origin=None)
    assert {r.data_origin for r in collect_runs(old, SPLIT)} == {"unknown"}


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_figure_height_follows_the_number_of_models(store):
    runs = collect_runs(store, SPLIT)
    few, many = scores_png(runs[:3]), scores_png(runs)
    assert _png_size(many)[1] > _png_size(few)[1] + 200
    assert _png_size(recall_png(runs))[1] > _png_size(recall_png(runs[:3]))[1] + 200
    assert _png_size(many)[0] == _png_size(few)[0]


def test_a_split_without_runs_gets_a_page_too(tmp_path):
    store = Store(str(tmp_path / "empty"))
    (tmp_path / "empty" / "runs" / SPLIT).mkdir(parents=True)
    write_reports(store, SPLIT)
    assert "No complete runs" in (tmp_path / "empty" / "runs" / SPLIT / REPORT_HTML).read_text()
    # only LOSO results (the default split, its test actors withheld): the page shows them and links their report
    row = {"model": "lr", "mode": "fixed", "features": "extended", "speaker_norm": True, "mean": 0.751, "std": 0.091,
           "min": 0.567, "max": 0.9, "n_actors": 2, "per_actor": {"01": 0.83, "02": 0.67}}
    store.write_json(store.path("runs", SPLIT, "loso", "summary.json"), {"split": SPLIT, "all": [row]})
    write_reports(store, SPLIT)
    page = (tmp_path / "empty" / "runs" / SPLIT / REPORT_HTML).read_text()
    assert "No complete runs" in page and 'href="loso/report.md"' in page and "0.751" in page


# -- the page in a real browser ----------------------------------------------------------------------------------

PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0);
  document.body.setAttribute('data-images', String(imgs.length));
  document.body.setAttribute('data-images-loaded', String(ok.length));
  document.body.setAttribute('data-tables', String(document.querySelectorAll('table tbody tr').length));
  document.body.setAttribute('data-page-width', String(document.documentElement.scrollWidth));
  const wide = [...document.querySelectorAll('.scroll, section, figure')].filter(e => e.scrollWidth > e.clientWidth + 1);
  document.body.setAttribute('data-overflowing', String(wide.length));
});
</script>"""


def test_the_page_in_headless_chromium_loads_its_images_and_tables(store, tmp_path):
    from tests.services import chromium, render_page

    if not chromium():
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    write_reports(store, SPLIT)
    folder = Path(store.root) / "runs" / SPLIT
    page = (folder / REPORT_HTML).read_text()
    shot = tmp_path / "report.png"
    dom = render_page((folder / REPORT_HTML).as_uri(), tmp_path, screenshot=shot, budget_ms=3000)
    assert "Models side by side" in dom and "<table" in dom
    assert shot.stat().st_size > 20_000  # something was drawn
    # the same page with a probe that counts the images the browser decoded (the page itself runs no script: its
    # policy forbids it, so the probe's copy allows inline scripts and nothing else)
    probe = folder / "probe.html"
    probe.write_text(page.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
                     .replace("</body>", PROBE + "</body>"))
    dom = render_page(probe.as_uri(), tmp_path, budget_ms=3000)
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:2000]
    attrs = dict(re.findall(r'data-([\w-]+)="(\d+)"', body.group(1)))
    assert attrs.get("images") == "15" and attrs.get("images-loaded") == "15", attrs
    assert int(attrs["tables"]) == 11 + 1  # a row per model, and the LOSO row
    assert int(attrs["page-width"]) <= 1400  # nothing wider than the window: no sideways scrolling
    assert attrs["overflowing"] == "0"  # nor inside the page (tables that need a scroll bar)
    keep = os.environ.get("EMOTION_KEEP_SCREENSHOT")
    if keep:
        Path(keep).write_bytes(shot.read_bytes())


def test_no_float_nan_in_json_of_the_fixture_is_what_the_page_is_tested_with(store):
    m = json.loads((Path(store.root) / "runs" / SPLIT / "fusion-early" / "f00000000000" / "metrics.json").read_text())
    # the fused runs carry NaN, as stores written before strict JSON do (the pipeline writes null now: the page is
    # tested on the older form, the readers take both)
    assert math.isnan(m["cv_accuracy"])


def test_a_run_without_a_cv_score_never_wins_over_one_with_a_score_as_the_report_says(tmp_path):
    """Issue 13: selection reads grouped-CV scores only (emotion.store.catalog.SELECTION_RULE), never test accuracy."""
    from emotion.reporting.report import best_per_modality

    out = tmp_path / "sel"
    write_run(out, "fusion-late", "f00000000001", 0.60, cv=0.50, modality="fusion", features=FUSED_FEATURES)
    write_run(out, "fusion-early", "f00000000002", 0.70, cv=None, modality="fusion", features=FUSED_FEATURES)
    best = best_per_modality(collect_runs(Store(str(out)), SPLIT))
    assert best["fusion"].model == "fusion-late"  # NaN CV never beats a CV score, whatever the test accuracy


def test_test_clips_without_a_face_are_counted_in_both_reports_and_drawn_in_a_column_of_their_own(tmp_path):
    out = tmp_path / "nf"
    no_face = {"n_test_clips_without_face": 3, "confusion_no_face": [2, 0, 0, 1, 0, 0, 0, 0]}
    write_run(out, "cnn", "v00000000001", 0.48, cv=0.50, modality="video", features="face256-every20-b6d1fda3f2a5",
              metrics=no_face)
    write_run(out, "lr", "a00000000001", 0.66, cv=0.64, features="seed", feature_params={"name": "seed"})
    store = Store(str(out))
    md = Path(write_reports(store, SPLIT)).read_text()
    page = (out / "runs" / SPLIT / "report.html").read_text()
    for text in (md, page):
        assert "240 (3 no face)" in text and text.count("(3 no face)") == 1  # the audio run has every clip
        assert "a face model has no prediction for them, so they count as wrong" in text
    cm = np.eye(8, dtype=int).tolist()

    def width(png: bytes) -> int:
        return int.from_bytes(png[16:20], "big")

    assert width(confusion_figure(cm, "t", no_face["confusion_no_face"])) > width(confusion_figure(cm, "t"))


def test_every_report_ranks_by_validation_as_selected_and_marks_the_selected_model(tmp_path):
    """Audit: report.md, report.html and report_scores.png ranked by test accuracy (svc first) while the CLI and
    summary.json rank by validation and lr, the best in grouped CV, is the model predict uses; one order everywhere,
    and the selected model marked in each."""
    out = tmp_path / "rank"
    seed = {"features": "seed", "feature_hash": "4bd90a733487", "feature_params": {"name": "seed"}}
    write_run(out, "svc", "a00000000001", 0.65, cv=0.70, **seed)
    write_run(out, "lr", "a00000000002", 0.575, cv=0.72, **seed)  # selected: the best grouped CV, not test accuracy
    write_run(out, "rf", "a00000000003", 0.70, cv=0.60, **seed)
    store = Store(str(out))
    md = Path(write_reports(store, SPLIT)).read_text()
    page = (out / "runs" / SPLIT / REPORT_HTML).read_text()
    assert [line.split(" | ")[1] for line in md.splitlines() if line.startswith("| audio |")] == [
        "**lr** (selected)", "svc", "rf"]
    assert [line.split(" | ")[0] for line in md.split("## Per-emotion recall")[1].splitlines()
            if line.startswith("| audio")] == ["| audio · lr · seed", "| audio · svc · seed", "| audio · rf · seed"]
    assert "ranked by grouped-CV accuracy" in md and "best first by test accuracy" not in md.lower()
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td class="model"><span class="dot \w+"></span>([^<]+)(<span '
                      r'class="tag"[^>]*>selected</span>)?<', page)
    assert [(n, label, bool(tag)) for n, label, tag in rows] == [
        ("1", "audio · lr · seed", True), ("2", "audio · svc · seed", False), ("3", "audio · rf · seed", False)]
    assert "Best first by test accuracy" not in page and "Ranked by grouped-CV accuracy" in page
    from emotion.reporting.report import scores_figure  # the figure of report_scores.png

    fig = scores_figure(collect_runs(store, SPLIT))
    ticks = [(t.get_text(), t.get_fontweight()) for t in fig.axes[0].get_yticklabels()]
    assert ticks == [("audio · lr · seed (selected)", "bold"), ("audio · svc · seed", "normal"),
                     ("audio · rf · seed", "normal")]


def test_a_speaker_normalised_runs_single_clip_accuracy_stands_beside_the_assumption_in_both_reports(tmp_path):
    """Audit: accuracy_single_clip and what speaker normalisation assumes were only in run's console and the model
    card, not in report.md or report.html."""
    out = tmp_path / "norm"
    write_run(out, "lr", "a00000000001", 0.78, cv=0.75, features="extended", feature_hash="1234567890ab",
              feature_params={"name": "extended"}, speaker_norm=True, metrics={"accuracy_single_clip": 0.412})
    write_run(out, "svc", "a00000000002", 0.60, cv=0.58, features="seed", feature_params={"name": "seed"})
    md = Path(write_reports(Store(str(out)), SPLIT)).read_text()
    page = (out / "runs" / SPLIT / REPORT_HTML).read_text()
    head = next(line for line in md.splitlines() if line.startswith("| modality"))
    assert "| accuracy | single-clip acc | macro-F1 |" in head
    assert "| yes | 0.780 | 0.412 | 0.770 |" in md and "| – | 0.600 | – | 0.590 |" in md  # not normalised: none
    assert "clips are normalised together" in md and "pooled training statistics" in md
    assert re.search(r"<th[^>]*>single-clip acc</th>", page) and '<td class="num">0.412</td>' in page
    assert "clips are normalised together" in page and "pooled training statistics" in page
    # without a speaker-normalised run, neither column nor note
    plain = tmp_path / "plain"
    write_run(plain, "svc", "a00000000002", 0.60, cv=0.58, features="seed", feature_params={"name": "seed"})
    md = Path(write_reports(Store(str(plain)), SPLIT)).read_text()
    assert "single-clip" not in md and "single-clip" not in (plain / "runs" / SPLIT / REPORT_HTML).read_text()


def test_the_scores_figure_labels_three_decimals_and_keeps_the_no_cv_note_inside_its_axes(tmp_path):
    """Audit: report_scores.png labelled 0.575 as "0.57" (the tables say 0.575), and drew a run's "no grouped-CV
    score" outside the axes, between the axis label and the legend."""
    from emotion.reporting.report import scores_figure

    out = tmp_path / "fig"
    write_run(out, "lr", "a00000000001", 0.575, cv=0.725, features="seed", feature_params={"name": "seed"})
    write_run(out, "fusion-late", "f00000000001", 0.60, cv=None, modality="fusion", features=FUSED_FEATURES)
    runs = collect_runs(Store(str(out)), SPLIT)
    for recs in (runs, runs[1:]):  # the run without a score last (ranked so), or alone
        fig = scores_figure(recs)
        ax = fig.axes[0]
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        inside = ax.get_window_extent(renderer)
        [note] = [t for t in ax.texts if t.get_text() == "no grouped-CV score"]
        box = note.get_window_extent(renderer)
        assert inside.y0 <= box.y0 and box.y1 <= inside.y1 and inside.x0 <= box.x0 and box.x1 <= inside.x1
    texts = {t.get_text() for t in scores_figure(runs).axes[0].texts}
    assert {"0.575", "0.725", "0.600"} <= texts and "0.57" not in texts


def test_the_frame_models_validation_score_is_named_as_such_in_every_report_and_the_legend(store):
    """A review: report.md headed fer's and cnn's one-actor validation score "grouped-CV acc" with no word, and the
    scores figure's legend called every video bar "validation", the landmark model's grouped-CV one included."""
    import html

    from emotion.reporting.report import FRAME_VALIDATION_NOTE, render_report, scores_figure

    md = Path(write_reports(store, SPLIT)).read_text()
    page = (Path(store.root) / "runs" / SPLIT / REPORT_HTML).read_text()
    assert FRAME_VALIDATION_NOTE in md and html.escape(FRAME_VALIDATION_NOTE) in page
    assert "(the frame models, cnn and fer, trained on some train actors and validated on the others)" in md
    runs = collect_runs(store, SPLIT)
    legend = [t.get_text() for t in scores_figure(runs).legends[0].get_texts()]
    assert "grouped-CV accuracy (train actors); cnn, fer: validation on held-out train actors" in legend
    without = [r for r in runs if r.model not in ("cnn", "fer")]
    assert "grouped-CV accuracy (train actors)" in [t.get_text() for t in scores_figure(without).legends[0].get_texts()]
    md = render_report(SPLIT, without)
    assert FRAME_VALIDATION_NOTE not in md and "validated on the others" not in md
