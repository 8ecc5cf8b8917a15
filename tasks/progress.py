"""Where the progress of the flows goes on the console: a sink the command line installs (no Prefect here).

The domain's long functions take a plain ``progress`` callable
(:mod:`emotion.core.progress`); tasks and flows pass them :func:`sink`, which
forwards every :class:`~emotion.core.progress.Tick` to whatever the command line
installed with :func:`use` (a bar redrawn on a terminal, a few plain lines in
a log), or drops it. The Prefect UI gets its own progress artifacts
(:mod:`tasks.artifacts`), whatever the console does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from emotion.core.progress import ProgressFn, Tick

_lock = threading.Lock()
_sinks: list[ProgressFn] = []


@contextmanager
def use(fn: ProgressFn | None) -> Iterator[None]:
    """Send every tick to ``fn`` inside the block (``None``: nowhere)."""
    if fn is None:
        yield
        return
    with _lock:
        _sinks.append(fn)
    try:
        yield
    finally:
        with _lock:
            _sinks.remove(fn)


def _forward(tick: Tick) -> None:
    with _lock:
        fn = _sinks[-1] if _sinks else None
    if fn is not None:
        try:
            fn(tick)
        except Exception:  # noqa: BLE001 - a display that fails must never fail the work
            pass


def sink() -> ProgressFn | None:
    """The callable to pass to a domain function: forwards to the installed display, or None if there is none."""
    with _lock:
        return _forward if _sinks else None


def tick(task: str, done: int, total: int, unit: str = "", info: str = "") -> None:
    """Tell the installed display (if any) that ``done`` of ``total`` ``unit`` of ``task`` are done."""
    _forward(Tick(task, done, total, unit, info))
