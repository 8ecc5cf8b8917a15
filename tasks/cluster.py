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
def dask_client(address: str | None = None, workers: int | None = None, jobs: int | None = None) -> Iterator[Client]:
    """A client of the cluster at ``address``, or of a new local one sized to the work.

    The local cluster has up to ``workers`` single-threaded worker processes
    on 127.0.0.1 (one per core by default), but no more than there are
    ``jobs``: audio and video work is CPU-bound, and multi-threaded libraries
    slow down under contention on few cores. A single job runs on one worker
    thread inside this process, which spares the start-up of worker processes
    (seconds) for small incremental runs.
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
    n = min(workers or default_workers(), max(jobs or 1_000_000, 1))
    if (jobs or 2) > 1:
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=40)
    else:  # in-process (inproc:// transport): nothing listens on the network
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                               silence_logs=40)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
