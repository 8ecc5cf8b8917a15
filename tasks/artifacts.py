"""What the flows publish to the Prefect UI, under stable artifact keys.

Keys (lowercase, dashes) stay the same from run to run, so the UI's
Artifacts page shows each one's history:

* ``extract-progress``: progress of the running extraction (0-100 %)
* ``audio-extract-counts``, ``video-extract-counts``: clips processed, skipped, removed and rejected
* ``audio-rejects``, ``video-rejects``: every rejected file with its reason
* ``audio-model-metrics``, ``video-model-metrics``: each model's metrics on the split
* ``audio-evaluation-report``, ``video-evaluation-report``: markdown report with the confusion matrices
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from emotion.ids import EMOTION_LABELS

KEYS = {"progress": "extract-progress"}
MAX_REJECT_ROWS = 1000


class Progress:
    """A progress artifact updated as chunks finish (at most every 5 %)."""

    def __init__(self, total: int, what: str) -> None:
        self.total, self.done, self._shown = max(total, 1), 0, 0.0
        self.id: UUID = create_progress_artifact(0.0, key=KEYS["progress"], description=what)

    def advance(self, n: int) -> None:
        self.done += n
        pct = 100.0 * self.done / self.total
        if pct - self._shown >= 5 or self.done >= self.total:
            self._shown = pct
            update_progress_artifact(self.id, min(pct, 100.0))


def publish_extract(modality: str, summary: dict[str, Any], data: str) -> None:
    counts = {k: summary[k] for k in ("processed", "skipped", "removed", "rejected")}
    if modality == "audio":
        counts["no_audio"] = summary.get("no_audio", 0)
    create_table_artifact([{**counts, "feature_set": summary["feature_set"], "seconds": summary["seconds"]}],
                          key=f"{modality}-extract-counts", description=f"{modality.capitalize()} extraction of {data}")
    rows = [{"path": r["path"], "reason": r["reason"], "stage": r["stage"]} for r in summary["rejects"][:MAX_REJECT_ROWS]]
    more = len(summary["rejects"]) - len(rows)
    create_table_artifact(rows or [{"path": "", "reason": "no rejects", "stage": ""}], key=f"{modality}-rejects",
                          description=f"{len(summary['rejects'])} rejected files" + (f" ({more} not shown)" if more else ""))


def publish_metrics(split: str, results: list[dict[str, Any]], confusion: dict[str, list[list[int]]],
                    modality: str = "audio") -> None:
    cols = ("model", "accuracy", "macro_f1", "uar", "cv_accuracy", "cv_std", "n_train", "n_test", "version")
    table = [{c: (round(r[c], 4) if isinstance(r.get(c), float) else r.get(c)) for c in cols} for r in results]
    create_table_artifact(table, key=f"{modality}-model-metrics",
                          description=f"{modality.capitalize()} models on {split}, best first")
    unit = " (per clip, mean of frame probabilities)" if modality == "video" else ""
    lines = [f"# {modality.capitalize()} evaluation on {split}{unit}", "",
             "| model | accuracy | macro-F1 | UAR | validation accuracy |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['uar']:.3f} | "
              f"{r['cv_accuracy']:.3f} ± {r['cv_std']:.3f} |" for r in results]
    for r in results:
        cm = confusion.get(r["model"])
        if not cm:
            continue
        lines += ["", f"## Confusion matrix: {r['model']} (rows true, columns predicted)", "",
                  "| true \\ predicted | " + " | ".join(EMOTION_LABELS) + " |", "|---" * (len(EMOTION_LABELS) + 1) + "|"]
        lines += [f"| **{EMOTION_LABELS[i]}** | " + " | ".join(str(v) for v in row) + " |" for i, row in enumerate(cm)]
    create_markdown_artifact("\n".join(lines), key=f"{modality}-evaluation-report",
                             description=f"{modality.capitalize()} evaluation report for {split}")


def name_flow_run(name: str) -> None:
    """Rename the current flow run, e.g. once the data version is known."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run_id=ctx.flow_run.id, name=name)
