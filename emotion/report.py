"""The run report of a split: every feature set, normalisation and model side by side."""

from __future__ import annotations

from typing import Any


def _key(r: dict[str, Any]) -> tuple[str, str, bool]:
    return (str(r.get("features", "seed")), str(r["model"]), bool(r.get("speaker_norm", False)))


def merge_results(previous: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest result of every (feature set, model, speaker_norm), best first; ``new`` wins."""
    table = {_key(r): r for r in previous}
    table.update({_key(r): r for r in new})
    return sorted(table.values(), key=lambda r: (-r["accuracy"], *_key(r)))


def report_markdown(split: str, rows: list[dict[str, Any]]) -> str:
    lines = [f"# Speaker-independent evaluation on {split}", "",
             "Every feature set and model trained on this split (latest run of each), best first. "
             "Selection used actor-grouped CV on the training actors only; the test actors were used for nothing "
             "but these numbers. Speaker normalisation changes what a number means: with it, every test actor's "
             "features were standardised over that actor's own clips.", "",
             "| features | speaker norm | model | accuracy | macro-F1 | UAR | grouped-CV accuracy | train | test |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cv = f"{r['cv_accuracy']:.3f} ± {r['cv_std']:.3f}" if "cv_accuracy" in r else ""
        lines.append(f"| {r.get('features', 'seed')} | {'yes' if r.get('speaker_norm') else 'no'} | {r['model']} | "
                     f"{r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['uar']:.3f} | {cv} | {r.get('n_train', '')} | "
                     f"{r.get('n_test', '')} |")
    return "\n".join(lines) + "\n"
