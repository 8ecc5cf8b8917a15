"""Model files whose bytes are a function of the fitted model: the same training saves the same file (same SHA-256).

The formats we save in are zip archives, and their writers put in what has nothing to do with the model: the time
of writing (each zip entry's date, Keras' ``date_saved``) and numbers taken from the process (skops names every
object it stores, and the file of each array, by its address in memory, ``id()``; Keras records the address of an
object its layers share, ``shared_object_id``). The functions here rewrite an archive as it was written, with those
replaced by what depends on the content only: the numbers in order of first appearance in the archive's own
description, the entries in the order their writer gave them (a fixed one for our own archives), each dated
1980-01-01 00:00 with fixed attributes. Nothing else changes, so the files load as before, through the same checks.
What stays is what the writers record about themselves (skops' and Keras' version): a newer library may save the
same model in other bytes.
"""

from __future__ import annotations

import io
import json
import posixpath
import zipfile
from collections.abc import Iterable
from typing import Any

from emotion.core.errors import ModelIntegrityError

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip entry can carry
FIXED_DATE_SAVED = "1980-01-01@00:00:00"  # Keras' metadata.json date_saved, in its own format
SKOPS_SCHEMA = "schema.json"


def zip_bytes(entries: Iterable[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip archive of ``entries`` (name, content) in their order, each with the same date and attributes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
            info.compress_type = compression
            info.create_system = 3  # Unix, whichever system writes it
            info.external_attr = 0o600 << 16  # rw------- as zipfile.writestr gives an entry named by a string
            zf.writestr(info, data)
    return buf.getvalue()


def _entries(data: bytes, what: str) -> list[tuple[str, bytes]]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return [(i.filename, zf.read(i)) for i in zf.infolist()]
    except (zipfile.BadZipFile, OSError) as exc:  # pragma: no cover - written by the library a moment ago
        raise ModelIntegrityError(f"{what}: not a zip archive ({exc})") from None


def canonical_skops(data: bytes) -> bytes:
    """``skops.io.dumps``' archive with its object numbers and array files named in order of first appearance.

    Every object skops stores carries ``__id__``, its ``id()`` while saving (an object met again refers to the
    first by it), and an array's file (``<id>.npy``; ``.npz`` for sparse matrices, a random ``.bin`` name for bytes)
    is named by ``file``. They become 1, 2, ... (0 would not count as a number to skops) and ``0.npy``, ``1.npy``,
    ... in the order ``schema.json`` first names them; an object named twice keeps one number. The entries are the
    array files in that order, then ``schema.json`` (written as skops writes it), stored uncompressed as skops
    stores them.
    """
    entries = dict(_entries(data, "skops archive"))
    if SKOPS_SCHEMA not in entries:
        raise ModelIntegrityError(f"skops archive: no {SKOPS_SCHEMA}")
    schema = json.loads(entries[SKOPS_SCHEMA])
    ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for v in node:
                walk(v)
            return
        if not isinstance(node, dict):
            return
        if "__loader__" in node:  # an object's state (a dict's keys are in its "content")
            old = node.get("__id__")
            if isinstance(old, int) and not isinstance(old, bool):
                node["__id__"] = ids.setdefault(old, len(ids) + 1)
            name = node.get("file")
            if isinstance(name, str):
                node["file"] = files.setdefault(name, f"{len(files)}{posixpath.splitext(name)[1]}")
        for v in node.values():
            walk(v)

    walk(schema)
    stored = set(entries) - {SKOPS_SCHEMA}
    if stored != set(files):  # a file skops wrote that no state names, or the reverse: leave nothing behind
        raise ModelIntegrityError(f"skops archive: files {sorted(stored ^ set(files))} are not named once by its schema")
    out = [(new, entries[old]) for old, new in files.items()]
    out.append((SKOPS_SCHEMA, json.dumps(schema, indent=2).encode()))
    return zip_bytes(out)


def canonical_keras(data: bytes) -> bytes:
    """A ``.keras`` archive with a fixed ``date_saved`` and ``shared_object_id`` numbered in order of appearance.

    ``metadata.json``'s ``date_saved`` (the time of saving; Keras does not read it) becomes
    :data:`FIXED_DATE_SAVED`; in ``config.json`` the ids of objects that layers share (the address in memory of, for
    instance, the dtype policy) become 1, 2, ... in the order they appear, the same object keeping one. Both are
    written back as Keras writes them (``json.dumps`` with its defaults); the weights file is kept as it is; the
    entries stay in Keras' order, stored uncompressed as Keras stores them. Layer names, which Keras numbers by how
    many layers of a kind the process built before, are not touched here: the model builders name their layers.
    """
    out = []
    for name, blob in _entries(data, "Keras archive"):
        if name == "metadata.json":
            meta = json.loads(blob)
            if "date_saved" in meta:
                meta["date_saved"] = FIXED_DATE_SAVED
            blob = json.dumps(meta).encode()
        elif name == "config.json":
            blob = json.dumps(_renumber_shared(json.loads(blob), {})).encode()
        out.append((name, blob))
    return zip_bytes(out)


def _renumber_shared(node: Any, ids: dict[Any, int]) -> Any:
    if isinstance(node, list):
        return [_renumber_shared(v, ids) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "shared_object_id" and isinstance(v, int) and not isinstance(v, bool):
            out[k] = ids.setdefault(v, len(ids) + 1)
        else:
            out[k] = _renumber_shared(v, ids)
    return out
