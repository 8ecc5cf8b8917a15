"""The console side of progress: a bar redrawn in place on a terminal, a few plain lines elsewhere.

:func:`display` returns the display for a command: on a terminal (stderr is
a TTY) a ``rich`` progress display that redraws each running task in place
(done of total, rate, time left, a note such as the loss); without one (CI,
logs, pipes) :class:`PlainProgress`, which writes a line when a task
finishes and, for a long task, one now and then while it runs. Both write to
stderr only, so that ``--json`` output on stdout stays clean.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from emotion.core.progress import Tick


def _seconds(s: float) -> str:
    s = max(0.0, s)
    return f"{s:.0f} s" if s < 90 else f"{s // 60:.0f} min {s % 60:02.0f} s"


class PlainProgress:
    """Plain lines for logs: one when a task ends, and one every ``interval`` seconds while it runs."""

    def __init__(self, stream: TextIO | None = None, interval: float = 20.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}
        self._printed: dict[str, float] = {}
        self._finished: set[str] = set()

    def __call__(self, t: Tick) -> None:
        now = self.clock()
        with self._lock:
            if t.task not in self._started or t.task in self._finished and t.done < t.total:  # the task (re)starts
                self._finished.discard(t.task)
                self._started[t.task] = self._printed[t.task] = now
            start = self._started[t.task]
            if t.task in self._finished:
                return
            finished = t.total > 0 and t.done >= t.total
            if not finished and now - self._printed[t.task] < self.interval:
                return
            self._printed[t.task] = now
            if finished:
                self._finished.add(t.task)
            line = self._line(t, now - start, finished)
        stream = self.stream or sys.stderr
        print(line, file=stream, flush=True)

    @staticmethod
    def _line(t: Tick, elapsed: float, finished: bool) -> str:
        unit = f" {t.unit}" if t.unit else ""
        note = f"; {t.info}" if t.info else ""
        if finished:
            done_rate = f", {t.done / elapsed:.1f}{unit}/s" if t.unit in ("clips", "files", "fits") and elapsed > 0 else ""
            return f"{t.task}: {t.done}/{t.total}{unit} done in {_seconds(elapsed)}{done_rate}{note}"
        pct = 100 * t.done / t.total if t.total else 0.0
        if t.done < max(2, t.total / 50) or elapsed <= 0:  # too early for a rate worth showing
            return f"{t.task}: {t.done}/{t.total}{unit} ({pct:.0f} %) after {_seconds(elapsed)}{note}"
        rate = t.done / elapsed
        left = f", about {_seconds((t.total - t.done) / rate)} left"
        # under one a second, the time each takes: "0.2 epochs/s" beside another step's "5 s per epoch" read as two
        # kinds of measure
        each = 1 / rate
        speed = (f"{rate:.1f}{unit}/s" if rate >= 1 else
                 f"{each:.1f} s per{unit.rstrip('s')}" if each < 10 else f"{_seconds(each)} per{unit.rstrip('s')}")
        return f"{t.task}: {t.done}/{t.total}{unit} ({pct:.0f} %), {speed}{left}{note}"

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def close(self) -> None:
        """Nothing to take down: plain lines stay where they are."""


WIDE = 140  # terminal columns from which the progress display shows every column


class RichProgress:
    """A ``rich`` display on stderr: one line per task, redrawn in place (done of total, rate, time left, note)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.table import Column

        self.console = Console(file=stream or sys.stderr)

        def fixed(width: int) -> Column:  # a column that keeps its width: the numbers never turn into "…"
            return Column(width=width, no_wrap=True, overflow="ellipsis")

        # The numbers keep their room; the note (loss, best CV...) takes what is left of the terminal's width and is
        # cut with an ellipsis. Below WIDE columns the bar is shorter and the elapsed time and percentage are left out.
        wide = self.console.width >= WIDE
        columns: list[ProgressColumn] = [
            TextColumn("{task.description}", table_column=fixed(20 if wide else 15)),
            BarColumn(bar_width=24 if wide else 10, table_column=fixed(24 if wide else 10)),
            MofNCompleteColumn(table_column=fixed(11)),
            TextColumn("{task.fields[unit]}", table_column=fixed(6)),
        ]
        if wide:
            columns.append(TaskProgressColumn(table_column=fixed(4)))
        columns.append(TextColumn("{task.fields[rate]}", table_column=fixed(8)))
        if wide:
            columns += [TimeElapsedColumn(table_column=fixed(7)), TextColumn("left", table_column=fixed(4))]
        columns.append(TimeRemainingColumn(table_column=fixed(7)))
        used = sum(c.get_table_column().width or 0 for c in columns) + len(columns)  # one space between columns
        columns.append(TextColumn("{task.fields[info]}", table_column=fixed(max(8, self.console.width - used - 1))))
        self.progress = Progress(
            *columns, console=self.console, transient=False, refresh_per_second=4,
            redirect_stdout=sys.stdout.isatty(), redirect_stderr=True,
        )
        self._ids: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, t: Tick) -> None:
        with self._lock:
            tid = self._ids.get(t.task)
            tasks = {x.id: x for x in self.progress.tasks}
            if tid is None or (t.done < t.total and tasks[tid].finished):
                tid = self.progress.add_task(t.task, total=max(t.total, 1), unit=t.unit, rate="", info=t.info)
                self._ids[t.task] = tid
                tasks = {x.id: x for x in self.progress.tasks}
            task = tasks[tid]
            elapsed = task.elapsed or 0.0
            per_s = t.done / elapsed if t.unit in ("clips", "files", "fits") and elapsed > 0 and t.done else 0.0
            rate = "" if not per_s else f"{per_s:.0f}/s" if per_s >= 100 else f"{per_s:.1f}/s"
            self.progress.update(tid, completed=t.done, total=max(t.total, 1), info=t.info, rate=rate)

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """The last redraw, then stdout and stderr are the terminal's again (stopping twice is harmless)."""
        self.progress.stop()


def display(enabled: bool = True, stream: TextIO | None = None) -> PlainProgress | RichProgress | None:
    """The progress display for this command: rich on a terminal, plain lines otherwise, None when disabled."""
    if not enabled:
        return None
    out = stream or sys.stderr
    if out.isatty():
        return RichProgress(stream)
    return PlainProgress(stream)
