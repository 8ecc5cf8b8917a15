"""Step 2 of extraction: compare the inventory with the store (what to process, what is stale), in chunks."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from emotion.core.params import stable_hash
from emotion.extract.inventory import ClipRef, Inventory, is_unexpected_reject


@dataclass
class Plan:
    """What a run does: which clips to process, what is stale in the store."""

    todo: list[ClipRef]
    skipped: int
    removed: list[str]  # paths whose rows go because the clip is gone
    stale_parts: dict[str, set[tuple[str, str]]]  # part -> (path, hash) rows to drop
    drop_parts: list[str]  # parts to delete whole (full rebuild)


def plan_extraction(inventory: Inventory, stored: pd.DataFrame, *, full: bool = False) -> Plan:
    """Diff the inventory against the stored ``(path, content_hash, _part)`` rows.

    A clip of unknown hash is processed; its stored row, if any, is not marked stale here (the worker may find
    the same content): :func:`stale_rows` decides once the workers have said what they read.
    """
    current = {ref.path: ref for ref, _, _ in inventory.clips}
    # listed but not read for a reason not their own (--verify with the storage failing): kept, not removed
    unread = {r["path"] for r in inventory.rejects if is_unexpected_reject(r)}
    have = set(zip(stored["path"], stored["content_hash"], strict=True)) if len(stored) else set()
    have_keys = {(p, h) for p, h in have}
    if full:
        parts = sorted(set(stored["_part"])) if len(stored) else []
        stored_paths = set(stored["path"]) if len(stored) else set()
        return Plan(list(current.values()), 0, sorted(stored_paths - set(current) - unread), {}, parts)
    stored_hash = dict(zip(stored["path"], stored["content_hash"], strict=True)) if len(stored) else {}
    todo = [dataclasses.replace(r, stored_hash=stored_hash.get(r.path)) if r.content_hash is None else r
            for r in current.values() if r.content_hash is None or (r.path, r.content_hash) not in have_keys]
    unsure = {r.path for r in current.values() if r.content_hash is None}
    wanted = {(r.path, r.content_hash) for r in current.values()}
    stale = stale_rows(stored[~stored["path"].isin(unsure)] if unsure and len(stored) else stored, wanted)
    stored_paths = {p for p, _ in have_keys}
    removed = sorted(stored_paths - set(current) - unread)
    return Plan(todo, len(current) - len(todo), removed, stale, [])


def touched_parts(plan: Plan, stored: pd.DataFrame) -> list[str]:
    """The parts holding a row of a clip the run processes or removes: those the commit may rewrite."""
    if stored.empty:
        return []
    paths = {r.path for r in plan.todo} | set(plan.removed)
    return sorted(set(stored.loc[stored["path"].isin(paths), "_part"]))


def stale_rows(stored: pd.DataFrame, wanted: set[tuple[str, str | None]]) -> dict[str, set[tuple[str, str]]]:
    """Stored ``(path, content_hash)`` rows that are not ``wanted`` (deleted or changed clips), by part."""
    stale: dict[str, set[tuple[str, str]]] = {}
    for p, h, part in zip(stored["path"], stored["content_hash"], stored["_part"], strict=True):
        if (p, h) not in wanted:
            stale.setdefault(part, set()).add((p, h))
    return stale


def duplicate_rows(stored: pd.DataFrame) -> dict[str, set[tuple[str, str]]]:
    """Rows of a clip that also has rows in a newer part, by part.

    They appear when a chunk ran twice (its worker died after writing, and
    Dask ran it again elsewhere) or a killed run is resumed; dropping them
    leaves every clip in exactly one part.
    """
    if stored.empty:
        return {}
    newest = stored.groupby("path")["_part"].transform("max")
    older = stored[stored["_part"] != newest]
    out: dict[str, set[tuple[str, str]]] = {}
    for p, h, part in zip(older["path"], older["content_hash"], older["_part"], strict=True):
        out.setdefault(part, set()).add((p, h))
    return out


def data_version(clips: Iterable[ClipRef]) -> str:
    """The version of a data snapshot: a hash of every clip's path and content hash (8 hex digits; a clip whose
    hash is not known yet counts by its listing fingerprint).

    Extraction records it beside the features it writes, so the runs that
    read them name the same version as the extraction that wrote them.
    """
    return stable_hash(sorted({(r.path, r.content_hash or f"listing:{r.meta}") for r in clips}), 8)


def chunked(items: Sequence[ClipRef], size: int) -> list[list[ClipRef]]:
    size = max(1, size)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
