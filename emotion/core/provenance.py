"""Where a model's training data came from: synthetic corpora or recordings.

``emotion synth`` (and the demo) write a marker file, :data:`MARKER`, into the
root of every synthetic corpus they make (:func:`mark_synthetic`). Extraction
looks for it in the data root it reads, and in the folders below
(:func:`corpus_origin`), and records the answer beside the data root in the
store's ``store.json`` (``data_origin``). Training copies the store's origin
into each run's ``run.json`` (:func:`stamp_run`, with
:meth:`emotion.store.store.Store.data_origin`) and model card, so that
``emotion predict`` and the report can say, beside every answer from such a
model, that it learnt from synthetic voices and faces.

Origins: ``synthetic`` (a marker was found), ``recorded`` (no marker: real
recordings as far as the pipeline can tell) and ``unknown`` (a store or run
from before this was recorded).
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any

SYNTHETIC, RECORDED, UNKNOWN = "synthetic", "recorded", "unknown"
ORIGINS = (SYNTHETIC, RECORDED, UNKNOWN)
MARKER = "SYNTHETIC-CORPUS.json"  # not a clip: extraction never reads it as input
FIELD = "data_origin"  # in store.json, run.json and metrics.json
SYNTHETIC_WARNING = "trained on synthetic data: not meaningful for real recordings"


def mark_synthetic(root: str | Path, generator: str, params: dict[str, Any] | None = None) -> Path:
    """Write :data:`MARKER` into the corpus folder ``root`` (created if needed); returns its path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / MARKER
    try:  # audio and video generators write into one root: keep both
        generators = dict(json.loads(path.read_text()).get("generators") or {})
    except (OSError, ValueError, AttributeError):
        generators = {}
    generators[generator] = params or {}
    body = {"data_origin": SYNTHETIC, "generators": generators,
            "note": "written by the emotion pipeline's synthetic corpus generator; models trained on these clips "
                    "have learnt synthetic voices and faces, not people"}
    path.write_text(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
    return path


def corpus_origin(data_url: str) -> str:
    """``synthetic`` when :data:`MARKER` is in the data root or any folder below it, else ``recorded``.

    ``data_url`` is a local folder or an fsspec URL; a root that cannot be
    searched counts as ``unknown``.
    """
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(data_url)
        root = root.rstrip("/") or "/"
        if fs.exists(posixpath.join(root, MARKER)):
            return SYNTHETIC
        found = fs.glob(posixpath.join(root, "**", MARKER))
    except (OSError, ValueError):
        return UNKNOWN
    return SYNTHETIC if found else RECORDED


def origin_of(record: dict[str, Any] | None) -> str:
    """The origin recorded in a ``store.json`` or ``run.json`` object; ``unknown`` when none is."""
    v = (record or {}).get(FIELD)
    return v if v in ORIGINS else UNKNOWN


def stamp_run(result: Any, origin: str) -> None:
    """Record ``origin`` in a training result (run.json, metrics.json, model card) before it is written."""
    result.run[FIELD] = origin
    result.metrics[FIELD] = origin
    card = result.extra.get("model_card.md")
    if card is not None:
        result.extra["model_card.md"] = card_with_origin(card.decode(), origin).encode()


def origin_text(origin: str) -> str:
    """A sentence about the training data for model cards and reports."""
    if origin == SYNTHETIC:
        return f"synthetic (the pipeline's generated voices and faces): {SYNTHETIC_WARNING}"
    if origin == RECORDED:
        return "recorded clips (no synthetic-corpus marker in the data root)"
    return "unknown (recorded before the pipeline kept track of it)"


def card_with_origin(card: str, origin: str) -> str:
    """A model card with a line on where its training data came from, after its title (and a warning on top when
    synthetic)."""
    lines = card.split("\n")
    at = 1 if lines and lines[0].startswith("# ") else 0
    add = ["", f"**Training data: {origin_text(origin)}.**"] if origin == SYNTHETIC else \
        ["", f"Training data: {origin_text(origin)}."]
    return "\n".join([*lines[:at], *add, *lines[at:]])


def warning_for(origin: str | None) -> str | None:
    """The note to print beside an answer from a model of this origin (None: nothing to say)."""
    return SYNTHETIC_WARNING if origin == SYNTHETIC else None
