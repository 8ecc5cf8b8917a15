"""The evaluation report of one actor split: every model's scores side by side.

:func:`collect_runs` reads every complete run folder of a split
(``runs/<split-id>/<model>/<version>/`` with ``run.json`` and
``metrics.json``) and keeps the newest version per (modality, feature set,
speaker normalisation, model), where an audio feature set is its key
(``<name>-<parameters hash>``), so two revisions of a set are two rows;
:func:`render_report` turns them into markdown; :func:`write_report` writes
``runs/<split-id>/report.md`` with two figures beside it (scores and
per-emotion recall) and links to each run's confusion matrix and model card
by a relative path, so the folder can be moved or served as is. When the
audio runs differ in feature set or speaker normalisation, a second table
ranks those side by side (:func:`feature_set_table`, the table of
:func:`report_markdown`).

Runs without a ``modality`` field are audio runs (the first release wrote
none); ``features`` defaults to the feature set's name in ``run.json``.

The same module keeps the row-based tables of ``summary.json``
(:func:`merge_results`: the latest result of every feature set, model and
normalisation) and of the leave-one-actor-out evaluation
(:func:`merge_loso`, :func:`loso_markdown`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from emotion.core.ids import EMOTION_LABELS
from emotion.core.names import VIDEO_MODELS
from emotion.core.provenance import SYNTHETIC
from emotion.reporting.metrics import NO_FACE_LABEL
from emotion.store.catalog import (
    MODALITY_ORDER,
    MODEL_CARD,
    SELECTION_RULE,
    SPEAKER_NORM_ASSUMES,
    RunRecord,
    best_per_modality,
    collect_runs,
    loso_row_settings,
    loso_settings_hash,
    loso_settings_text,
    ranked,
    read_run,
    selection_key,
    short_features,
    with_augment,
)
from emotion.store.store import Store

# the run catalog's (emotion.store.catalog), here too
__all__ = ["RunRecord", "best_per_modality", "collect_runs", "read_run", "short_features", "with_augment"]

REPORT = "report.md"
REPORT_HTML = "report.html"  # the same report as one self-contained page (emotion.reporting.report_html)
LOSO_REPORT = "loso/report.md"  # written by the leave-one-actor-out evaluation (tasks/evaluate.py)
SCORES_PNG = "report_scores.png"
RECALL_PNG = "report_recall.png"
NONE = "—"  # a score a run does not have (never ``nan``)


def short_labels(records: Sequence[RunRecord]) -> dict[str, str]:
    """Each record's :attr:`RunRecord.short_label` by ``rel_dir``; labels two runs share get their version."""
    labels = {r.rel_dir: r.short_label for r in records}
    counts: dict[str, int] = {}
    for v in labels.values():
        counts[v] = counts.get(v, 0) + 1
    return {k: v if counts[v] == 1 else f"{v} · {k.rsplit('/', 1)[-1][:6]}" for k, v in labels.items()}


def number(v: Any) -> float | None:
    """``v`` as a finite float, or None (missing, NaN, not a number)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def cv_text(metrics: dict[str, Any], digits: int = 3) -> str:
    """The grouped-CV (or validation) score as shown: ``0.670 ± 0.010``, ``0.670`` without a spread, ``—`` without
    a score."""
    cv, sd = number(metrics.get("cv_accuracy")), number(metrics.get("cv_std"))
    if cv is None:
        return NONE
    return f"{cv:.{digits}f} ± {sd:.{digits}f}" if sd else f"{cv:.{digits}f}"


def test_clips(metrics: dict[str, Any]) -> str:
    """The number of test clips as shown: ``8``, or ``8 (3 no face)`` when a face model found no face in some (they
    count as wrong)."""
    n, none = metrics.get("n_test", NONE), number(metrics.get("n_test_clips_without_face"))
    return f"{n} ({int(none)} {NO_FACE_LABEL})" if none else str(n)


SINGLE_CLIP = "single-clip acc"  # the column of accuracy_single_clip
SINGLE_CLIP_NOTE = (f"{SINGLE_CLIP} (speaker-normalised runs only): with speaker normalisation the test "
                    f"{SPEAKER_NORM_ASSUMES}; {SINGLE_CLIP} is the test accuracy with every test clip normalised that "
                    "way, one clip at a time.")


def single_clip(r: RunRecord) -> str:
    """A speaker-normalised run's test accuracy one clip at a time (``accuracy_single_clip``), as shown; ``–`` for a
    run without speaker normalisation, ``—`` where a normalised run recorded none."""
    return _f(r.metrics.get("accuracy_single_clip")) if r.speaker_norm else "–"


NO_FACE_NOTE = (f"({NO_FACE_LABEL}) in the test clips: clips in none of whose frames a face was found; a face model has "
                "no prediction for them, so they count as wrong and form the confusion matrix's "
                f"\"{NO_FACE_LABEL}\" column.")


def _f(v: Any, digits: int = 3) -> str:
    x = number(v)
    return NONE if x is None else f"{x:.{digits}f}"


def _recall(r: RunRecord, label: str) -> float | None:
    c = (r.metrics.get("per_class") or {}).get(label)
    if not c or not c.get("support"):
        return None  # the emotion has no test clips
    return float(c["recall"])


# the frame models (cnn, fer) have no grouped-CV score: their validation score stands in its column and bar
FRAME_VALIDATION_NOTE = ("For the frame models (cnn, fer) the grouped-CV column holds the per-clip accuracy on "
                         "held-out training actors (validation; their loss also chose the epoch kept, by early "
                         "stopping, so it is mildly optimistic), and train counts the clips of every train actor, "
                         "those held out for validation included.")


def frame_model_runs(records: Sequence[RunRecord]) -> list[RunRecord]:
    """The runs of frame models (cnn, fer), whose validation score is not a grouped-CV one."""
    return [r for r in records if r.modality == "video" and r.model in VIDEO_MODELS]


def render_report(split_id: str, records: Sequence[RunRecord], *, figures: Sequence[str] = (),
                  links: Sequence[tuple[str, str]] = ()) -> str:
    """The markdown report of ``records`` (as from :func:`collect_runs`); ``figures`` are PNG names beside it,
    ``links`` (title, relative path) other reports of the split (the leave-one-actor-out one)."""
    lines = [f"# Evaluation report: {split_id}", ""]
    if not records:  # a split evaluated only by LOSO (e.g. the default one, its test actors withheld) still links it
        return "\n".join([*lines, "No complete runs for this split yet.", "",
                          *[f"{title}: [{rel}]({rel})\n" for title, rel in links]])
    split = records[0].info.get("split") or split_id
    frames = frame_model_runs(records)
    validated = (" (the frame models, cnn and fer, trained on some train actors and validated on the others)"
                 if frames else "")
    lines += [f"Split {split}: models tuned by cross-validation grouped by actor on the train actors{validated} and "
              "scored on the test actors, never seen in training. Accuracy, macro-F1 and UAR (unweighted average recall) "
              "are on the test actors. The newest complete run of each model is shown, ranked by grouped-CV accuracy "
              "on the train actors (the selection rule; as `emotion train` and summary.json rank them), never by the "
              "test scores, which are reported and used for nothing else.", ""]
    synthetic = [r for r in records if r.data_origin == SYNTHETIC]
    if synthetic:
        lines += [synthetic_note(synthetic, records), ""]
    show_features = any(r.features_shown for r in records)
    show_norm = any(r.speaker_norm for r in records)
    head = ["modality", "model"] + (["features"] if show_features else []) + (["speaker norm"] if show_norm else [])
    head += ["accuracy"] + ([SINGLE_CLIP] if show_norm else []) + ["macro-F1", "UAR", "grouped-CV acc", "train", "test"]
    head += (["training data"] if synthetic else []) + ["run"]
    lines += ["## Scores side by side", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    best = best_per_modality(records)
    records = chart_order(records)
    for r in records:
        m = r.metrics
        row = [r.modality, f"**{r.model}** (selected)" if best[r.modality] is r else r.model]
        shown = r.features_shown if r.modality == "audio" else short_features(r.features or "")  # no hashes
        row += [shown or "–"] if show_features else []
        row += [r.speaker_norm or "–"] if show_norm else []
        row += [_f(m.get("accuracy"))] + ([single_clip(r)] if show_norm else [])
        row += [_f(m.get("macro_f1")), _f(m.get("uar")), cv_text(m),
                str(m.get("n_train", NONE)), test_clips(m)]
        row += [r.data_origin] if synthetic else []
        row += [_run_links(r)]
        lines.append("| " + " | ".join(row) + " |")
    if show_norm:
        lines += ["", SINGLE_CLIP_NOTE]
    if frames:
        lines += ["", FRAME_VALIDATION_NOTE]
    if any(number(r.metrics.get("n_test_clips_without_face")) for r in records):
        lines += ["", NO_FACE_NOTE]
    if any(cv_text(r.metrics) == NONE for r in records):
        lines += ["", f"{NONE} in grouped-CV acc: the run recorded no grouped-CV score (it is selected only where no "
                  "run of its modality has one)."]
    lines += ["", f"Selected per modality (in bold; the model `emotion predict` uses; {SELECTION_RULE}): "
              + ", ".join(f"{r.label} (test accuracy {_f(r.metrics.get('accuracy'))})" for m, r in best.items()) + "."]
    absent = [m for m in MODALITY_ORDER if m not in best]
    if absent:
        lines += ["", f"No runs yet for: {', '.join(absent)}."]
    for name in figures:
        lines += ["", f"![{name}]({name})"]
    for title, rel in links:
        lines += ["", f"{title}: [{rel}]({rel})"]
    lines += ["", f"The same report as one page, figures included: [{REPORT_HTML}]({REPORT_HTML})"]
    audio = [r for r in records if r.modality == "audio"]
    if len({(r.feature_set, bool(r.speaker_norm)) for r in audio}) > 1:
        lines += ["", "## Audio feature sets and speaker normalisation", "",
                  "Every audio feature set (by its parameters' key: two revisions of a set are two rows), "
                  "normalisation and model, ranked by grouped-CV accuracy (as selected). " + SPEAKER_NORM_NOTE, "",
                  *feature_set_table([_row(r) for r in ranked(audio)])]
    short = short_labels(records)
    lines += ["", "## Per-emotion recall (test actors)", "",
              "| run | " + " | ".join(EMOTION_LABELS) + " |", "|" + "---|" * (len(EMOTION_LABELS) + 1)]
    for r in records:
        lines.append(f"| {short[r.rel_dir]} | " + " | ".join(_f(_recall(r, e), 2) for e in EMOTION_LABELS) + " |")
    lines += ["", f"{NONE} : no test clips of that emotion.", "", "## Confusion matrices (rows true, columns predicted)", ""]
    for r in records:
        lines += [f"### {short[r.rel_dir]}", "", f"![{short[r.rel_dir]}]({r.rel_dir}/confusion_matrix.png)", ""]
    return "\n".join(lines)


def synthetic_note(synthetic: Sequence[RunRecord], records: Sequence[RunRecord]) -> str:
    """The report's warning about runs trained on synthetic data."""
    which = "Every model here was" if len(synthetic) == len(records) else \
        f"{len(synthetic)} of the {len(records)} models here were"
    return (f"**{which} trained on synthetic data** (the pipeline's generated voices and faces): their scores show "
            "the pipeline works, and are not meaningful for real recordings.")


def _run_links(r: RunRecord) -> str:
    link = f"[{r.rel_dir}]({r.rel_dir}/)"
    return link + (f" · [model card]({r.rel_dir}/{MODEL_CARD})" if r.has_card else "")


def _row(r: RunRecord) -> dict[str, Any]:
    """A run as a row of :func:`feature_set_table` (as in ``summary.json``'s ``all``)."""
    keys = ("accuracy", "macro_f1", "uar", "cv_accuracy", "cv_std", "n_train", "n_test")
    return {"model": r.model, "features": r.features or "seed", "feature_set": r.feature_set,
            "augment": r.speeds,
            "speaker_norm": bool(r.speaker_norm), "run": r.rel_dir, "card": r.has_card,
            **{k: r.metrics[k] for k in keys if r.metrics.get(k) is not None}}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


MODALITY_COLOURS = {"audio": "#3b6fb6", "video": "#d9822b", "fusion": "#3a9a5b"}


def chart_order(records: Sequence[RunRecord]) -> list[RunRecord]:
    """Best first by grouped-CV accuracy as selected (:func:`emotion.store.catalog.ranked`, never the test actors'
    scores): the order of the figures and of every table, as ``emotion train`` and ``summary.json`` rank them."""
    return ranked(records)


def n_classes(records: Sequence[RunRecord]) -> int:
    """How many emotions the runs choose among (for the chance level): the most any run knows, else all eight."""
    known = [len(e) for r in records if isinstance(e := r.info.get("emotions") or r.metrics.get("emotions"), list)]
    return max(known) if known else len(EMOTION_LABELS)


def _save(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    _plt().close(fig)
    return buf.getvalue()


def scores_png(records: Sequence[RunRecord]) -> bytes:
    """:func:`scores_figure` as PNG bytes."""
    return _save(scores_figure(records))


SELECTED_MARK = "(selected)"  # beside the selected run of each modality in the figures and tables


def scores_figure(records: Sequence[RunRecord]) -> Any:
    """Every run's test accuracy beside its grouped-CV accuracy, as horizontal bars ranked by grouped-CV accuracy
    (:func:`chart_order`, as selected), the selected run of each modality marked, with the chance level; the legend
    sits below the bars, and the height grows with the number of runs."""
    plt = _plt()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    recs = chart_order(records)
    labels = short_labels(recs)
    best = best_per_modality(recs)
    chosen = {id(r) for r in best.values()}
    n = len(recs)
    k = n_classes(recs)
    fig, ax = plt.subplots(figsize=(8.0, 0.5 * n + 1.9), dpi=110, layout="constrained")
    y = np.arange(n)
    h = 0.38
    for i, r in enumerate(recs):
        colour = MODALITY_COLOURS.get(r.modality, "#777777")
        acc = number(r.metrics.get("accuracy")) or 0.0
        cv = number(r.metrics.get("cv_accuracy"))
        ax.barh(i - h / 2, acc, h, color=colour)
        ax.text(acc + 0.01, i - h / 2, f"{acc:.3f}", va="center", fontsize=8)  # 3 decimals, as the tables
        if cv is None:
            ax.text(1 / k + 0.01, i + h / 2, "no grouped-CV score", va="center", fontsize=7,
                    color="#666666", style="italic")  # right of the chance line
        else:
            ax.barh(i + h / 2, cv, h, color=colour, alpha=0.35, hatch="///", edgecolor=colour, lw=0)
            ax.text(cv + 0.01, i + h / 2, f"{cv:.3f}", va="center", fontsize=7, color="#444444")
    ax.axvline(1 / k, color="#b22222", ls="--", lw=1)
    ax.set_yticks(y, [f"{labels[r.rel_dir]} {SELECTED_MARK}" if id(r) in chosen else labels[r.rel_dir] for r in recs],
                  fontsize=9)
    for tick, r in zip(ax.get_yticklabels(), recs, strict=True):
        if id(r) in chosen:
            tick.set_fontweight("bold")
    # every row's slot, grouped-CV bar or not: a run without one (ranked last) has only its note there, which the
    # bars' own limits left out of the axes; best on top
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, 1.1)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel("accuracy")
    ax.grid(axis="x", color="#dddddd", lw=0.6)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    present = [m for m in MODALITY_COLOURS if any(r.modality == m for r in recs)]
    handles: list[Any] = [Patch(color=MODALITY_COLOURS[m], label=f"{m}: test accuracy") for m in present]
    handles += [Patch(facecolor="#999999", alpha=0.35, hatch="///", edgecolor="#999999", lw=0,
                      label="grouped-CV accuracy (train actors)" + ("; cnn, fer: validation on held-out train actors"
                                                                     if frame_model_runs(recs) else "")),
                Line2D([], [], color="#b22222", ls="--", lw=1, label=f"chance (1/{k})")]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(3, len(handles)), fontsize=8, frameon=False)
    fig.suptitle("Test accuracy (held-out actors) beside grouped-CV accuracy, ranked by grouped-CV accuracy\n"
                 f"in bold {SELECTED_MARK}: each modality's model chosen by it, the one emotion predict uses",
                 fontsize=9)
    return fig


def recall_png(records: Sequence[RunRecord]) -> bytes:
    """Per-emotion recall of every run as a heat map (blank where an emotion has no test clips), in the order of
    :func:`chart_order` (by grouped-CV accuracy, as selected)."""
    plt = _plt()
    recs = chart_order(records)
    labels = short_labels(recs)
    m = np.array([[np.nan if (v := _recall(r, e)) is None else v for e in EMOTION_LABELS] for r in recs], dtype=float)
    fig, ax = plt.subplots(figsize=(8.0, 0.42 * len(recs) + 1.9), dpi=110, layout="constrained")
    im = ax.imshow(m, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(np.arange(len(EMOTION_LABELS)), EMOTION_LABELS, rotation=30, ha="right", fontsize=9)
    ax.set_yticks(np.arange(len(recs)), [labels[r.rel_dir] for r in recs], fontsize=9)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if not np.isnan(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if m[i, j] > 0.6 else "white")
    fig.colorbar(im, ax=ax, pad=0.02, aspect=40, label="recall")  # as tall as the map
    ax.set_title("Per-emotion recall on the test actors (blank: no test clips)", fontsize=10)
    return _save(fig)


def write_report(store: Store, split_id: str) -> str:
    """Write ``runs/<split_id>/report.md`` and its figures; returns the report's path.

    :func:`emotion.reporting.report_html.write_reports` writes ``report.html`` beside it too (the pipeline's
    tasks call that one)."""
    records = collect_runs(store, split_id)
    figures: list[str] = []
    if records:
        store.write_bytes(store.path("runs", split_id, SCORES_PNG), scores_png(records))
        store.write_bytes(store.path("runs", split_id, RECALL_PNG), recall_png(records))
        figures = [SCORES_PNG, RECALL_PNG]
    links = [("Leave-one-actor-out evaluation over the train actors", LOSO_REPORT)]
    links = [(t, rel) for t, rel in links if store.exists(store.path("runs", split_id, rel))]
    path = store.path("runs", split_id, REPORT)
    store.write_bytes(path, render_report(split_id, records, figures=figures, links=links).encode())
    return path


# -- row tables: summary.json's ``all`` and the leave-one-actor-out evaluation ---------------------------

SPEAKER_NORM_NOTE = ("Speaker normalisation changes what a number means: with it, every test actor's features "
                     "were standardised over that actor's own clips.")


def _key(r: dict[str, Any]) -> tuple[str, str, bool]:
    # the set's key (name and parameters hash) where known: two revisions of a set are two rows
    return (str(r.get("feature_set") or r.get("features", "seed")), str(r["model"]), bool(r.get("speaker_norm", False)))


def merge_results(previous: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest result of every (feature set, model, speaker_norm), best first by grouped-CV accuracy (as
    selected: :func:`emotion.store.catalog.selection_key`, never the test score); ``new`` wins."""
    table = {_key(r): r for r in previous}
    table.update({_key(r): r for r in new})
    return sorted(table.values(), key=lambda r: (selection_key(RunRecord.from_dict(r)), _key(r)))


def feature_set_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown lines of a table of ``rows`` (as :func:`merge_results` gives): set, normalisation, model, scores.

    A row with ``run`` (its folder relative to the report) links it, and its model card when ``card``.
    """
    links = any(r.get("run") for r in rows)
    head = "| features | speaker norm | model | accuracy | macro-F1 | UAR | grouped-CV accuracy | train | test |"
    lines = [head + (" run |" if links else ""), "|---" * (9 + links) + "|"]
    for r in rows:
        cv = cv_text(r) if number(r.get("cv_accuracy")) is not None else ""
        fs = with_augment(str(r.get("feature_set") or r.get("features", "seed")), r.get("augment"))
        line = (f"| {fs} | {'yes' if r.get('speaker_norm') else 'no'} | {r['model']} | "
                f"{_f(r.get('accuracy'))} | {_f(r.get('macro_f1'))} | {_f(r.get('uar'))} | {cv} | {r.get('n_train', '')} | "
                f"{r.get('n_test', '')} |")
        if links:
            run = r.get("run")
            line += (f" [{run}]({run}/)" + (f" · [model card]({run}/{MODEL_CARD})" if r.get("card") else "")
                     if run else "") + " |"
        lines.append(line)
    return lines


def report_markdown(split: str, rows: list[dict[str, Any]]) -> str:
    """A stand-alone markdown table of ``rows`` (e.g. ``summary.json``'s ``all``), in their order."""
    lines = [f"# Speaker-independent evaluation on {split}", "",
             "Every feature set and model trained on this split (latest run of each), ranked by grouped-CV accuracy. "
             "Selection used actor-grouped CV on the training actors only; the test actors were used for nothing "
             "but these numbers. " + SPEAKER_NORM_NOTE, "", *feature_set_table(rows)]
    return "\n".join(lines) + "\n"


def _loso_set(r: dict[str, Any]) -> str:
    return f"{r['features']}-{r['feature_hash']}" if r.get("feature_hash") else str(r["features"])


def _loso_key(r: dict[str, Any]) -> tuple[str, bool, str, str, str]:
    return (_loso_set(r), bool(r["speaker_norm"]), str(r["model"]), str(r["mode"]),
            loso_settings_hash(loso_row_settings(r)))


def loso_settings_cell(r: dict[str, Any]) -> str:
    """A LOSO row's search settings (nested) or source run (fixed), as the tables show them."""
    return loso_settings_text(loso_row_settings(r))


def merge_loso(previous: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest LOSO result of every (features, speaker_norm, model, mode, settings), best first; the settings
    are the search's (nested) or the source run's (fixed: :func:`emotion.store.catalog.loso_settings`)."""
    table = {_loso_key(r): r for r in previous}
    table.update({_loso_key(r): {k: v for k, v in r.items() if k != "path"} for r in new})
    return sorted(table.values(), key=lambda r: (-r["mean"], *_loso_key(r)))


def loso_markdown(split: str, rows: list[dict[str, Any]]) -> str:
    actors = sorted({a for r in rows for a in r["per_actor"]})
    lines = [f"# Leave-one-actor-out over the training actors of {split}", "",
             "Each actor held out in turn, trained on the others; test actors unused. `nested`: hyper-parameters "
             "tuned inside every fold; `fixed`: copied from the stored run (mildly optimistic). Settings: the "
             "search's (nested) or the run the hyper-parameters come from (fixed). A clip without a face (landmarks) counts "
             "as wrong in its actor's fold.", "",
             "| features | speaker norm | model | params | mean | std | min | max | " + " | ".join(actors)
             + " | settings |",
             "|---" * (9 + len(actors)) + "|"]
    for r in rows:
        per = " | ".join(f"{r['per_actor'][a]:.2f}" if a in r["per_actor"] else "" for a in actors)
        fs = with_augment(_loso_set(r), r.get("augment"))
        lines.append(f"| {fs} | {'yes' if r['speaker_norm'] else 'no'} | {r['model']} | {r['mode']} | "
                     f"{r['mean']:.3f} | {r['std']:.3f} | {r['min']:.3f} | {r['max']:.3f} | {per} | "
                     f"{loso_settings_cell(r)} |")
    return "\n".join(lines) + "\n"
