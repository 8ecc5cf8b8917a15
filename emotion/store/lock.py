"""One writer at a time per store: the writer lock ``OUT/.lock``.

Local stores: an exclusive ``flock`` on ``OUT/.lock``, held for the whole
extraction and released by the kernel when the holder dies, so a killed
writer leaves no stale lock. Object stores have no such lock; there a lock
object older than 6 hours counts as stale, and two writers starting within the
same instant are not excluded. The lock is re-entrant within a process (the
command line takes it before the flow asks for it again). The second writer
gets a one-line :class:`~emotion.core.errors.StoreError` naming the first.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import socket
import time
from collections.abc import Iterator
from typing import Any

import pandas as pd

from emotion.core.errors import StoreError, storage_errors, storage_reason

LOCK_FILE = ".lock"
STALE_AFTER = pd.Timedelta(hours=6)  # an object-store lock this old was left by a writer that died
NAMING_WAIT = 1.0  # seconds a second writer waits for the holder of a local lock to write who it is

_HELD: dict[str, int] = {}  # writer locks this process holds (path -> depth)


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").floor("ms")


def _busy(url: str, raw: bytes, stale_at: pd.Timestamp | None = None) -> StoreError:
    """The second writer's error; on object storage (``stale_at``: when the lock object counts as stale) also what
    to do when its writer died without removing it (killed, its machine lost): nothing else ever removes it."""
    gone = "" if stale_at is None else (
        f" (if that writer is gone, remove {url.rstrip('/')}/{LOCK_FILE}; else it counts as stale from "
        f"{stale_at.isoformat()})")
    return StoreError(f"the store {url} is being written by {holder(raw)}; "
                      f"one writer at a time: try again when it has finished{gone}")


@contextlib.contextmanager
def writer_lock(fs: Any, root: str, url: str, is_local: bool, what: str = "extract") -> Iterator[None]:
    """Hold the writer lock of the store at ``root`` (on the fsspec filesystem ``fs``) for the block, or raise
    :class:`StoreError` saying who holds it. ``what`` says who this writer is, for the message the next one gets."""
    path = posixpath.join(root, LOCK_FILE)
    if _HELD.get(path):  # this process holds it already: re-entrant
        _HELD[path] += 1
        try:
            yield
        finally:
            _HELD[path] -= 1
        return
    me = {"pid": os.getpid(), "host": socket.gethostname(), "pid_namespace": _pid_namespace(), "since": _now().isoformat(),
          "what": what}
    if not is_local:
        yield from _object_lock(fs, path, url, me)
        return
    import fcntl

    fd = _open_lock_file(root, create_root=True)
    try:
        deadline = time.monotonic() + NAMING_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                raw = os.pread(fd, 4096, 0)
                # an empty record: the holder has just taken the lock and not yet written who it is, or is letting
                # go (it empties the record before it unlocks); look again for a moment
                if raw.strip() or time.monotonic() > deadline:
                    raise _busy(url, raw) from None
                time.sleep(0.02)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        _HELD[path] = 1
        try:
            yield
        finally:
            _HELD.pop(path, None)
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


def _open_lock_file(root: str, *, create_root: bool = False) -> int:
    """The writer lock's file ``root/.lock`` opened for reading and writing (created when absent), or a
    :class:`StoreError` ``cannot write <file>: <reason>``: a read-only store, or a ``.lock`` that is not a file, is
    named in one line, like any write that fails. ``create_root``: a missing ``root`` is created first (the writer
    lock: the store begins here)."""
    path = posixpath.join(root, LOCK_FILE)
    try:
        if create_root:
            os.makedirs(root, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None


def check_writable(fs: Any, root: str, url: str, is_local: bool) -> None:
    """Raise :class:`StoreError` (``cannot write <file>: <reason>``) when the store at ``root`` cannot be written,
    as the writer lock does at once, for the commands that write into a store without taking it (train, evaluate:
    their runs, summaries and reports), so that a read-only store stops them before minutes of work, not after.
    A store that does not exist yet is left to the command (there is nothing in it to read)."""
    if is_local:
        if os.path.isdir(root):  # the file the writer lock opens, opened the same way (and closed at once)
            os.close(_open_lock_file(root))
        return
    probe = posixpath.join(root, f".write-check-{os.getpid()}-{time.time_ns()}")
    try:
        fs.pipe_file(probe, b"")
    except storage_errors() as exc:
        raise StoreError(f"cannot write {url.rstrip('/')}/{posixpath.basename(probe)}: {storage_reason(exc)}") from None
    with contextlib.suppress(*storage_errors()):
        fs.rm_file(probe)


def _pid_namespace() -> str:
    """This process's process-id namespace (Linux), "" where unknown: containers that share a host name (host
    networking) have each their own."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _left_by_a_dead_process_here(raw: bytes) -> bool:
    """Whether a lock's record names a process of this machine and of this process namespace that is gone (a writer
    that ended without removing it: its storage failed as it left): such a lock is taken over at once, not after
    :data:`STALE_AFTER`. A record without its namespace (another container, an older version) never is."""
    try:
        rec = json.loads(raw)
        pid, host, ns = int(rec["pid"]), str(rec["host"]), str(rec.get("pid_namespace") or "")
    except (ValueError, KeyError, TypeError):
        return False
    if host != socket.gethostname() or not ns or ns != _pid_namespace() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False


def _object_lock(fs: Any, path: str, url: str, me: dict[str, Any]) -> Iterator[None]:
    try:
        there = fs.exists(path)
    except storage_errors() as exc:  # the endpoint down, refused credentials
        raise StoreError(f"cannot read the store's lock {url}/{posixpath.basename(path)}: {storage_reason(exc)}"
                         ) from None
    if there:
        try:
            held = fs.cat_file(path)
            since = pd.Timestamp(json.loads(held)["since"])
        except (ValueError, KeyError, TypeError, OSError):
            held, since = b"", pd.Timestamp(0, tz="UTC")
        if _now() - since < STALE_AFTER and not _left_by_a_dead_process_here(held):
            raise _busy(url, held, since + STALE_AFTER)
    try:
        fs.pipe_file(path, json.dumps(me).encode())
    except storage_errors() as exc:  # a missing bucket, refused credentials, an endpoint down: one line, not a trace
        raise StoreError(f"cannot write the store's lock {url}/{posixpath.basename(path)}: {storage_reason(exc)}"
                         ) from None
    _HELD[path] = 1
    try:
        yield
    finally:
        _HELD.pop(path, None)
        with contextlib.suppress(*storage_errors()):  # (the error that ended the run is the one to see)
            fs.rm_file(path)


def holder(raw: bytes) -> str:
    """Who holds a lock, from its JSON record, in a few words."""
    try:
        h = json.loads(raw)
        return f"{h.get('what', 'a writer')} (pid {h['pid']} on {h['host']}, since {h['since']})"
    except (ValueError, KeyError, TypeError):
        return "another process"
