"""What the flows publish to the Prefect UI, under stable artifact keys.

Keys (lowercase, dashes) stay the same from run to run, so the UI's
Artifacts page shows each one's history:

* ``audio-extract-progress``, ``video-extract-progress``: progress of the running extraction (0-100 %), clip by clip
* ``audio-train-progress``, ``video-train-progress``, ``fusion-train-progress``: progress of the running training
* ``audio-extract-counts``, ``video-extract-counts``: clips processed, skipped, removed and rejected
* ``audio-rejects``, ``video-rejects``: every rejected file with its reason
* ``audio-model-metrics``, ``video-model-metrics``: each model's metrics on the split
* ``audio-evaluation-report``, ``video-evaluation-report``: markdown report with the confusion matrices
"""

from __future__ import annotations

import time
from typing import Any, cast
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from emotion.core.ids import EMOTION_LABELS

MAX_REJECT_ROWS = 1000


def progress_key(modality: str, stage: str) -> str:
    """``audio-extract-progress``, ``video-extract-progress``, ``audio-train-progress``..."""
    return f"{modality}-{stage}-progress"


def progress_bar(fraction: float, width: int = 20) -> str:
    full = round(max(0.0, min(fraction, 1.0)) * width)
    return "█" * full + "░" * (width - full)


class Progress:
    """A progress artifact (0-100 %) whose description shows a bar and the counts, e.g.
    ``████████░░░░ 480 of 1200 clips``.

    :meth:`set` may be called as often as wanted: the artifact is updated
    when the value moved by ``step`` percent and ``interval`` seconds passed
    since the last update, and always at the end.
    """

    def __init__(self, total: int, key: str, what: str, unit: str = "clips", step: float = 0.5,
                 interval: float = 0.5, starting: str = "") -> None:
        self.total, self.what, self.unit, self.step, self.interval = max(total, 1), what, unit, step, interval
        self.done, self._shown, self._at = 0, 0.0, 0.0
        start = self._description(0) + (f": {starting}" if starting else "")  # until the first update
        # called from sync code: Prefect's async_dispatch returns the coroutine (typed in the union) only in an event loop
        self.id = cast(UUID, create_progress_artifact(0.0, key=key, description=start))

    def _description(self, done: int) -> str:
        return f"`{progress_bar(done / self.total)}` {done} of {self.total} {self.unit} {self.what}".rstrip()

    def set(self, done: int, force: bool = False) -> None:
        self.done = min(max(done, self.done), self.total)
        pct = 100.0 * self.done / self.total
        now = time.monotonic()
        final = self.done >= self.total
        if final and self._shown >= 100.0:
            return
        if force or final or (pct - self._shown >= self.step and now - self._at >= self.interval):
            self._shown, self._at = pct, now
            update_progress_artifact(self.id, round(pct, 1), description=self._description(self.done))

    def advance(self, n: int = 1) -> None:
        self.set(self.done + n)


def publish_extract(modality: str, summary: dict[str, Any], data: str) -> None:
    row = {"clips processed": summary["processed"], "clips unchanged (skipped)": summary["skipped"],
           "clips removed": summary["removed"], "files rejected": summary["rejected"]}
    if modality == "audio":
        row["clips without audio"] = summary.get("no_audio", 0)
    faces = summary.get("faces") or {}
    if "n_clips_with_several_faces" in faces:  # mesh face crops: each clip follows one face
        row["clips with more than one face"] = faces["n_clips_with_several_faces"]
    if "n_clips_track_switched" in faces:  # ... and whose track switched person (check their crops)
        row["clips whose face track switched person"] = faces["n_clips_track_switched"]
    row.update({"feature set" if modality == "audio" else "frame set": summary["feature_set"],
                "seconds": summary["seconds"]})
    create_table_artifact([row], key=f"{modality}-extract-counts", description=f"{modality.capitalize()} extraction of {data}")
    rejects = summary["rejects"]
    if not rejects:  # no placeholder row: say it in words
        create_markdown_artifact(f"No {modality} file under {data} was rejected.", key=f"{modality}-rejects",
                                 description="0 rejected files")
        return
    rows = [{"file": r["path"], "reason": r["reason"], "stage": r["stage"]} for r in rejects[:MAX_REJECT_ROWS]]
    more = len(rejects) - len(rows)
    create_table_artifact(rows, key=f"{modality}-rejects",
                          description=f"{len(rejects)} rejected files" + (f" ({more} not shown)" if more else ""))


METRIC_COLUMNS = {"model": "model", "accuracy": "test accuracy", "macro_f1": "macro-F1", "uar": "UAR",
                  "cv_accuracy": "validation accuracy", "cv_std": "validation std", "n_train": "train clips",
                  "n_test": "test clips", "version": "run version"}


def _3(v: Any) -> str:
    """A score with 3 decimals; ``—`` for none (None, NaN)."""
    return f"{v:.3f}" if isinstance(v, (int, float)) and v == v else "—"


def _pm(r: dict[str, Any]) -> str:
    """`` ± 0.010``: the spread of a validation score there is (none for a missing score)."""
    return f" ± {_3(r.get('cv_std'))}" if _3(r.get("cv_accuracy")) != "—" and _3(r.get("cv_std")) != "—" else ""


def publish_metrics(split: str, results: list[dict[str, Any]], confusion: dict[str, list[list[int]]],
                    modality: str = "audio") -> None:
    table = [{label: (round(r[c], 4) if isinstance(r.get(c), float) else r.get(c)) for c, label in METRIC_COLUMNS.items()}
             for r in results]
    create_table_artifact(table, key=f"{modality}-model-metrics",
                          description=f"{modality.capitalize()} models on {split}, best first")
    unit = " (per clip, mean of frame probabilities)" if modality == "video" else ""
    lines = [f"# {modality.capitalize()} evaluation on {split}{unit}", "",
             "| model | accuracy | macro-F1 | UAR | validation accuracy |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {_3(r.get('accuracy'))} | {_3(r.get('macro_f1'))} | {_3(r.get('uar'))} | "
              f"{_3(r.get('cv_accuracy'))}{_pm(r)} |" for r in results]
    for r in results:
        cm = confusion.get(r["model"])
        if not cm:
            continue
        lines += ["", f"## Confusion matrix: {r['model']} (rows true, columns predicted)", "",
                  "| true \\ predicted | " + " | ".join(EMOTION_LABELS) + " |", "|---" * (len(EMOTION_LABELS) + 1) + "|"]
        lines += [f"| **{EMOTION_LABELS[i]}** | " + " | ".join(str(v) for v in row) + " |" for i, row in enumerate(cm)]
    create_markdown_artifact("\n".join(lines), key=f"{modality}-evaluation-report",
                             description=f"{modality.capitalize()} evaluation report for {split}")
