"""The run report of a split: every feature set, normalisation and model side by side."""

from __future__ import annotations

from typing import Any


def _key(r: dict[str, Any]) -> tuple[str, str, bool]:
    # the set's key (name and parameters hash) where known: two revisions of a set are two rows
    return (str(r.get("feature_set") or r.get("features", "seed")), str(r["model"]), bool(r.get("speaker_norm", False)))


def merge_results(previous: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest result of every (feature set, model, speaker_norm), best first; ``new`` wins."""
    table = {_key(r): r for r in previous}
    table.update({_key(r): r for r in new})
    return sorted(table.values(), key=lambda r: (-r["accuracy"], *_key(r)))


def _loso_set(r: dict[str, Any]) -> str:
    return f"{r['features']}-{r['feature_hash']}" if r.get("feature_hash") else str(r["features"])


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
        fs = r.get("feature_set") or r.get("features", "seed")
        lines.append(f"| {fs} | {'yes' if r.get('speaker_norm') else 'no'} | {r['model']} | "
                     f"{r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['uar']:.3f} | {cv} | {r.get('n_train', '')} | "
                     f"{r.get('n_test', '')} |")
    return "\n".join(lines) + "\n"


def _loso_key(r: dict[str, Any]) -> tuple[str, bool, str, str]:
    return (_loso_set(r), bool(r["speaker_norm"]), str(r["model"]), str(r["mode"]))


def merge_loso(previous: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest LOSO result of every (features, speaker_norm, model, mode), best first."""
    table = {_loso_key(r): r for r in previous}
    table.update({_loso_key(r): {k: v for k, v in r.items() if k != "path"} for r in new})
    return sorted(table.values(), key=lambda r: (-r["mean"], *_loso_key(r)))


def loso_markdown(split: str, rows: list[dict[str, Any]]) -> str:
    actors = sorted({a for r in rows for a in r["per_actor"]})
    lines = [f"# Leave-one-actor-out over the training actors of {split}", "",
             "Each actor held out in turn, trained on the others; test actors unused. `nested`: hyper-parameters "
             "tuned inside every fold; `fixed`: copied from the stored run (mildly optimistic).", "",
             "| features | speaker norm | model | params | mean | std | min | max | " + " | ".join(actors) + " |",
             "|---" * (8 + len(actors)) + "|"]
    for r in rows:
        per = " | ".join(f"{r['per_actor'][a]:.2f}" if a in r["per_actor"] else "" for a in actors)
        lines.append(f"| {_loso_set(r)} | {'yes' if r['speaker_norm'] else 'no'} | {r['model']} | {r['mode']} | "
                     f"{r['mean']:.3f} | {r['std']:.3f} | {r['min']:.3f} | {r['max']:.3f} | {per} |")
    return "\n".join(lines) + "\n"
