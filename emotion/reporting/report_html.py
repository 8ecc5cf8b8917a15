"""The evaluation report of one split as one self-contained HTML page: ``runs/<split-id>/report.html``.

Beside ``report.md`` (:mod:`emotion.reporting.report`), built from the same runs: the
models side by side (short labels, ranked by grouped-CV accuracy as selected, a chance line, the grouped-CV
score beside the test score), per-emotion recall, every run's confusion
matrix, the training curves of the networks, the leave-one-actor-out table
where one was run, and links to each run's model card. Every figure is
embedded as a ``data:`` URI and the style is inline; a Content-Security-Policy
forbids the page to fetch anything, so it opens the same from a laptop, a CI
artifact or a mail attachment. The only links are relative ones to files of
the store (run folders, model cards, the LOSO report), which work when the
split's folder is browsed or served as is.
"""

from __future__ import annotations

import base64
import html
import json
import posixpath
import time
from collections.abc import Sequence
from typing import Any

from emotion.core.errors import StoreError
from emotion.core.ids import EMOTION_LABELS
from emotion.core.provenance import SYNTHETIC, origin_text
from emotion.reporting.report import (
    FRAME_VALIDATION_NOTE,
    LOSO_REPORT,
    MODEL_CARD,
    NO_FACE_NOTE,
    NONE,
    RECALL_PNG,
    REPORT,
    REPORT_HTML,
    SCORES_PNG,
    SINGLE_CLIP,
    SINGLE_CLIP_NOTE,
    RunRecord,
    best_per_modality,
    chart_order,
    collect_runs,
    cv_text,
    frame_model_runs,
    loso_settings_cell,
    n_classes,
    number,
    short_labels,
    single_clip,
    synthetic_note,
    test_clips,
    with_augment,
    write_report,
)
from emotion.store.store import Store

LOSO_SUMMARY = "loso/summary.json"  # the leave-one-actor-out rows (tasks/evaluate.py)
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"  # nothing is fetched, no script runs

CSS = """
:root { --ink: #1d2430; --muted: #5b6473; --line: #e3e6eb; --bg: #f6f7f9; --card: #fff; --accent: #3b6fb6;
        --audio: #3b6fb6; --video: #d9822b; --fusion: #3a9a5b; --warn: #8a4b00; --warnbg: #fff4e0; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); line-height: 1.45;
       font: 15px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 0 0 10px; }
h3 { font-size: 15px; margin: 0 0 6px; }
.sub, .muted, figcaption, .note { color: var(--muted); }
.note { font-size: 13px; margin: 8px 0 0; }
nav { margin: 14px 0 18px; display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: 14px; }
a { color: var(--accent); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 18px 20px;
          margin: 0 0 18px; }
.banner { background: var(--warnbg); color: var(--warn); border: 1px solid #f0cf99; border-radius: 10px;
          padding: 12px 16px; margin: 0 0 18px; }
figure { margin: 0; }
figure img { display: block; max-width: 100%; height: auto; }
.wide img { margin: 0 auto; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 7px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: middle; }
th { font-weight: 600; color: var(--muted); font-size: 12.5px; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.links { white-space: nowrap; }
.scroll { overflow-x: auto; }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 6px;
       vertical-align: baseline; }
.dot.audio { background: var(--audio); } .dot.video { background: var(--video); } .dot.fusion { background: var(--fusion); }
.tag { display: inline-block; font-size: 11.5px; padding: 1px 7px; border-radius: 9px; margin-left: 6px;
       background: #e8eef8; color: #27518f; white-space: nowrap; }
.tag.synthetic { background: var(--warnbg); color: var(--warn); }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 14px; }
.grid figure { border: 1px solid var(--line); border-radius: 8px; padding: 10px; }
.grid figcaption { font-size: 13px; margin-top: 4px; }
.grid2 { display: grid; grid-template-columns: 1fr; gap: 14px; }
.grid2 figure { border: 1px solid var(--line); border-radius: 8px; padding: 10px; max-width: 940px; }
td.model { white-space: nowrap; }
ul.cards { columns: 2; margin: 0; padding-left: 18px; }
footer { color: var(--muted); font-size: 12.5px; margin-top: 8px; }
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _img(png: bytes, alt: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img src="{data_uri(png)}" alt="{_e(alt)}"{w}>'


def _num(v: Any, digits: int = 3) -> str:
    x = number(v)
    return NONE if x is None else f"{x:.{digits}f}"


def _read(store: Store, path: str) -> bytes | None:
    try:
        return store.read_limited(path, 32 << 20) if store.exists(path) else None
    except (OSError, StoreError):
        return None


def confusion_figure(cm: Sequence[Sequence[int]], title: str, no_face: Sequence[int] | None = None) -> bytes:
    """A compact confusion matrix (rows true, columns predicted, a last "no face" column for a face model's test clips
    without a face; colour: share of the true class; numbers: clips)."""
    import numpy as np

    from emotion.reporting.metrics import with_no_face
    from emotion.reporting.report import _plt, _save

    plt = _plt()
    m, columns = with_no_face(cm, no_face)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.6 + 0.4 * (len(columns) - len(EMOTION_LABELS)), 4.3), dpi=100,
                           layout="constrained")
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(np.arange(len(columns)), columns, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(np.arange(len(EMOTION_LABELS)), EMOTION_LABELS, fontsize=8)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    ax.set_title(title, fontsize=9)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j]:
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    return _save(fig)


def _curves(store: Store, folder: str, title: str) -> bytes | None:
    """The run's training curves, drawn again from ``history.json`` when it has one, else its ``curves.png``."""
    raw = _read(store, posixpath.join(folder, "history.json"))
    if raw:
        try:
            hist = json.loads(raw)
            if isinstance(hist, dict) and hist.get("loss"):
                from emotion.models.frame_nets import curves_png

                return curves_png(hist, title)
        except (ValueError, TypeError):
            pass
    return _read(store, posixpath.join(folder, "curves.png"))


def _loso_rows(store: Store, split_id: str) -> list[dict[str, Any]]:
    path = store.path("runs", split_id, LOSO_SUMMARY)
    try:
        rows = store.read_json(path).get("all", []) if store.exists(path) else []
    except (StoreError, AttributeError):
        return []
    return [r for r in rows if isinstance(r, dict) and isinstance(r.get("per_actor"), dict)]


def _scores_table(records: Sequence[RunRecord], labels: dict[str, str], show_origin: bool) -> str:
    best = best_per_modality(records)
    norm = any(r.speaker_norm for r in records)
    head = ["#", "model", "test accuracy"] + ([SINGLE_CLIP] if norm else [])
    head += ["macro-F1", "UAR", "grouped-CV", "train clips", "test clips"]
    head += ["data"] if show_origin else []
    head += ["run"]
    numeric = {"test accuracy", SINGLE_CLIP, "macro-F1", "UAR", "grouped-CV", "train clips", "test clips", "#"}
    out = ['<div class="scroll"><table class="scores"><thead><tr>'
           + "".join(f'<th class="num">{_e(h)}</th>' if h in numeric else f"<th>{_e(h)}</th>" for h in head)
           + "</tr></thead><tbody>"]
    for i, r in enumerate(chart_order(records), 1):
        m = r.metrics
        acc = number(m.get("accuracy"))
        chosen = '<span class="tag" title="chosen by grouped-CV accuracy; the model emotion predict uses">' \
                 'selected</span>' if best.get(r.modality) is r else ""
        cells = [f'<td class="num">{i}</td>',
                 f'<td class="model"><span class="dot {_e(r.modality)}"></span>{_e(labels[r.rel_dir])}{chosen}</td>',
                 f'<td class="num"><strong>{_num(acc)}</strong></td>',
                 *([f'<td class="num">{_e(single_clip(r))}</td>'] if norm else []),
                 f'<td class="num">{_num(m.get("macro_f1"))}</td>', f'<td class="num">{_num(m.get("uar"))}</td>',
                 f'<td class="num">{_e(cv_text(m))}</td>',
                 f'<td class="num">{_e(m.get("n_train", NONE))}</td>', f'<td class="num">{_e(test_clips(m))}</td>']
        if show_origin:
            o = r.data_origin
            cells.append(f'<td><span class="tag {_e(o)}">{_e(o)}</span></td>' if o == SYNTHETIC else f"<td>{_e(o)}</td>")
        links = [f'<a href="{_e(r.rel_dir)}/">folder</a>']
        if r.has_card:
            links.append(f'<a href="{_e(r.rel_dir)}/{MODEL_CARD}">model card</a>')
        cells.append(f"<td class=\"links\">{' · '.join(links)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _loso_table(rows: list[dict[str, Any]]) -> str:
    actors = sorted({str(a) for r in rows for a in r["per_actor"]})
    head = ["features", "speaker norm", "model", "params", "mean", "std", "min", "max", *[f"actor {a}" for a in actors],
            "settings"]
    out = ['<div class="scroll"><table class="loso"><thead><tr>'
           + "".join(f'<th class="num">{_e(h)}</th>' if 4 <= i < len(head) - 1 else f"<th>{_e(h)}</th>"
                     for i, h in enumerate(head))
           + "</tr></thead><tbody>"]
    for r in rows:
        fs = str(r.get("features", "?"))
        fs = with_augment(fs, r.get("augment"))
        cells = [fs, "yes" if r.get("speaker_norm") else "no", r.get("model", "?"), r.get("mode", "?")]
        out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells)
                   + "".join(f'<td class="num">{_num(r.get(k))}</td>' for k in ("mean", "std", "min", "max"))
                   + "".join(f'<td class="num">{_num(r["per_actor"].get(a), 2)}</td>' for a in actors)
                   + f"<td>{_e(loso_settings_cell(r))}</td></tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def render_html(store: Store, split_id: str, records: Sequence[RunRecord], *, scores: bytes | None = None,
                recall: bytes | None = None) -> str:
    """The page (a string) of ``records`` (as from :func:`emotion.reporting.report.collect_runs`), with ``scores`` and
    ``recall`` (the report's PNG figures) embedded, and each run's confusion matrix and curves read from the store."""
    split = (records[0].info.get("split") if records else None) or split_id
    labels = short_labels(records)
    synthetic = [r for r in records if r.data_origin == SYNTHETIC]
    parts = ['<!doctype html><html lang="en"><head><meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>Evaluation report: {_e(split)}</title><style>{CSS}</style></head><body><main>",
             f"<header><h1>Emotion recognition: evaluation report</h1><p class=\"sub\">Split {_e(split)} · "
             f"{len(records)} model{'s' * (len(records) != 1)} · written {_e(time.strftime('%Y-%m-%d %H:%M'))} · "
             f'the same report as markdown: <a href="{REPORT}">{REPORT}</a></p></header>']
    if not records:  # a split evaluated only by LOSO (e.g. the default one, its test actors withheld) still shows it
        loso_only = _loso_rows(store, split_id)
        parts.append("<section><p>No complete runs for this split yet.</p></section>" + (
            '<section id="loso"><h2>Leave-one-actor-out over the train actors</h2><p class="muted">Details: '
            f'<a href="{LOSO_REPORT}">{LOSO_REPORT}</a>.</p>{_loso_table(loso_only)}</section>' if loso_only else "")
            + "</main></body></html>")
        return "\n".join(parts)
    if synthetic:
        note = synthetic_note(synthetic, records).replace("**", "")
        parts.append(f'<div class="banner" role="note">⚠ {_e(note)}</div>')
    curves = [(r, png) for r in records if (png := _curves(store, _folder(store, r), labels[r.rel_dir]))]
    loso = _loso_rows(store, split_id)
    cards = [r for r in chart_order(records) if r.has_card]
    nav = [("scores", "Models side by side"), ("recall", "Per-emotion recall"), ("confusion", "Confusion matrices")]
    nav += [("curves", "Training curves")] if curves else []
    nav += [("loso", "Leave-one-actor-out")] if loso else []
    nav += [("cards", "Model cards")] if cards else []
    parts.append("<nav>" + "".join(f'<a href="#{k}">{_e(t)}</a>' for k, t in nav) + "</nav>")

    k = n_classes(records)
    parts.append('<section id="scores"><h2>Models side by side</h2>'
                 "<p>Each model was tuned by cross-validation grouped by actor on the train actors and scored on the "
                 "test actors, never seen in training. Ranked by grouped-CV accuracy on the train actors, the rule "
                 "that selects the models (as <code>emotion train</code> and summary.json rank them), never by the "
                 "test scores; the lighter bar is the grouped-CV "
                 f"accuracy on the train actors; the dashed line is chance (1/{k}). The selected model of each "
                 "modality (marked <em>selected</em>) is the one <code>emotion predict</code> uses.</p>")
    if scores:
        parts.append(f'<figure class="wide">{_img(scores, "test and grouped-CV accuracy of every model")}</figure>')
    parts.append(_scores_table(records, labels, bool(synthetic)))
    notes = ["Accuracy, macro-F1 and UAR (unweighted average recall) are on the test actors."]
    if frame_model_runs(records):
        notes.append(FRAME_VALIDATION_NOTE)
    if any(r.speaker_norm for r in records):
        notes.append(SINGLE_CLIP_NOTE)
    if any(number(r.metrics.get("n_test_clips_without_face")) for r in records):
        notes.append(NO_FACE_NOTE)
    if any(cv_text(r.metrics) == NONE for r in records):
        notes.append(f"{NONE}: the run recorded no grouped-CV score.")
    parts.append("".join(f'<p class="note">{_e(n)}</p>' for n in notes) + "</section>")

    parts.append('<section id="recall"><h2>Per-emotion recall on the test actors</h2>')
    if recall:
        parts.append(f'<figure class="wide">{_img(recall, "per-emotion recall of every model")}</figure>')
    parts.append("</section>")

    parts.append('<section id="confusion"><h2>Confusion matrices</h2><p class="muted">Rows: the true emotion; '
                 "columns: the predicted one; colour: share of the true emotion's test clips; numbers: clips.</p>"
                 '<div class="grid">')
    for r in chart_order(records):
        png = _confusion(store, r, labels[r.rel_dir])
        if png is None:
            continue
        parts.append(f"<figure>{_img(png, 'confusion matrix of ' + labels[r.rel_dir])}<figcaption>"
                     f'<span class="dot {_e(r.modality)}"></span>{_e(labels[r.rel_dir])}: test accuracy '
                     f"{_num(r.metrics.get('accuracy'))}</figcaption></figure>")
    parts.append("</div></section>")

    if curves:
        parts.append('<section id="curves"><h2>Training curves</h2><p class="muted">Loss and accuracy per epoch on '
                     "the fitting actors and on held-out training actors (validation).</p><div class=\"grid2\">")
        for r, png in curves:
            parts.append(f"<figure>{_img(png, 'training curves of ' + labels[r.rel_dir])}"
                         f"<figcaption>{_e(labels[r.rel_dir])}</figcaption></figure>")
        parts.append("</div></section>")
    if loso:
        parts.append('<section id="loso"><h2>Leave-one-actor-out over the train actors</h2><p class="muted">Each '
                     "train actor held out in turn, trained on the others; the test actors unused. <em>nested</em>: "
                     "hyper-parameters tuned inside every fold; <em>fixed</em>: copied from the stored run (mildly "
                     f'optimistic). Details: <a href="{LOSO_REPORT}">{LOSO_REPORT}</a>.</p>')
        parts.append(_loso_table(loso) + "</section>")
    if cards:
        parts.append('<section id="cards"><h2>Model cards</h2><ul class="cards">'
                     + "".join(f'<li><a href="{_e(r.rel_dir)}/{MODEL_CARD}">{_e(labels[r.rel_dir])}</a>'
                               f'<span class="muted"> · {_e(r.rel_dir)}</span></li>' for r in cards)
                     + "</ul></section>")
    origins = sorted({r.data_origin for r in records})
    parts.append(f"<footer>Training data: {_e('; '.join(origin_text(o) for o in origins))}. Written by "
                 "emotion.reporting.report_html from the run folders of this split; links are relative to this folder.</footer>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _folder(store: Store, r: RunRecord) -> str:
    return store.path("runs", r.split_id, r.rel_dir)


def _confusion(store: Store, r: RunRecord, label: str) -> bytes | None:
    cm = r.metrics.get("confusion_matrix")
    no_face = r.metrics.get("confusion_no_face")
    no_face = no_face if isinstance(no_face, list) else None
    if isinstance(cm, list) and len(cm) == len(EMOTION_LABELS) and (any(any(row) for row in cm) or any(no_face or ())):
        try:
            return confusion_figure(cm, f"{label}\ntest accuracy {_num(r.metrics.get('accuracy'))}", no_face)
        except (TypeError, ValueError):
            pass
    return _read(store, posixpath.join(_folder(store, r), "confusion_matrix.png"))


def write_html(store: Store, split_id: str, records: Sequence[RunRecord], *, scores: bytes | None = None,
               recall: bytes | None = None) -> str:
    """Write ``runs/<split_id>/report.html``; returns its path."""
    path = store.path("runs", split_id, REPORT_HTML)
    store.write_bytes(path, render_html(store, split_id, records, scores=scores, recall=recall).encode())
    return path


def write_reports(store: Store, split_id: str) -> str:
    """Write the split's ``report.md`` and its figures (:func:`emotion.reporting.report.write_report`), then
    ``report.html`` with those figures embedded; returns the markdown report's path."""
    path = write_report(store, split_id)
    records = collect_runs(store, split_id)
    figures = [_read(store, store.path("runs", split_id, name)) if records else None for name in (SCORES_PNG, RECALL_PNG)]
    write_html(store, split_id, records, scores=figures[0], recall=figures[1])
    return path
