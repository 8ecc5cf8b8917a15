"""The Dask cluster the extraction work runs on."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster

from emotion.errors import UsageError


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


@contextmanager
def dask_client(address: str | None = None, workers: int | None = None) -> Iterator[Client]:
    """A client of the cluster at ``address``, or of a new local one.

    The local cluster has ``workers`` single-threaded worker processes on
    127.0.0.1 (one per core by default): audio and video work is CPU-bound and
    multi-threaded libraries slow down under contention on few cores.
    """
    if address:
        try:
            client = Client(address, timeout="15s")
        except (OSError, TimeoutError) as exc:
            raise UsageError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        try:
            yield client
        finally:
            client.close()
        return
    if workers is not None and workers < 1:
        raise UsageError("--workers must be at least 1")
    cluster = LocalCluster(
        n_workers=workers or default_workers(), threads_per_worker=1, processes=True,
        host="127.0.0.1", dashboard_address=None, silence_logs=40,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
