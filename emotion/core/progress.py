"""Progress of long computations, as plain callbacks (the domain never renders anything).

A long function takes an optional ``progress`` callable and calls it with a
:class:`Tick` whenever it moved: fits of a hyper-parameter search, epochs of a
network, clips of an extraction, files of a prediction. What the caller does
with a tick (a redrawn bar on a terminal, a plain line in a log, nothing) is
its own business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Tick:
    """``done`` of ``total`` ``unit`` of the work named ``task``; ``info`` a short note (e.g. loss and accuracy)."""

    task: str
    done: int
    total: int
    unit: str = ""
    info: str = ""


ProgressFn = Callable[[Tick], None]


def report(progress: ProgressFn | None, task: str, done: int, total: int, unit: str = "", info: str = "") -> None:
    """Call ``progress`` (if any) with a :class:`Tick`."""
    if progress is not None:
        progress(Tick(task, done, total, unit, info))
