"""Objects that must not be shared between the threads of one process."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def per_thread(build: Callable[[], T]) -> Callable[[], T]:
    """``build``'s result, built on the first call in each thread and kept for as long as the thread lives.

    For models whose runtimes are not thread-safe (LiteRT's interpreters, OpenCV's CascadeClassifier), used by the
    worker threads of one process: a Dask worker's threads, the in-process cluster of a small run.
    """
    local = threading.local()

    @functools.wraps(build)
    def get() -> T:
        try:
            value: T = local.value
        except AttributeError:
            value = local.value = build()
        return value

    return get
