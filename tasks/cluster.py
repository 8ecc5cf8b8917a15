"""The Dask cluster the extraction work runs on, and the clip counts its workers report (no Prefect here)."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from emotion.core.addresses import check_scheduler_address
from emotion.core.errors import Advice, EmotionError, UsageError
from emotion.extract.chunk import ChunkResult, extract_chunk
from emotion.extract.inventory import ClipRef, Step

if TYPE_CHECKING:  # Dask itself is imported where a cluster is needed: a rerun with nothing to do never loads it
    from distributed import Client, Future, LocalCluster

# A local cluster of no workers, as the command line's option and the flows' parameter (extract's, the pipeline's)
# name the setting: the command line refuses --workers 0 itself, a flow given workers=0 is refused here
_NO_WORKERS = Advice("--workers must be at least 1", "workers must be at least 1")

# Work this small (clips) runs on worker threads inside the flow's process: starting worker processes and
# importing the audio stack in each costs seconds, more than a few clips' work.
SMALL_WORK = 24


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


# Seconds a call to the scheduler (its worker threads, a chunk's small result) may take before it counts as failed:
# Dask's blocking calls otherwise wait without end on a client whose event loop stopped under them
SCHEDULER_CALL_TIMEOUT = 60.0


def _bounded(call: Callable[[], object], seconds: float = SCHEDULER_CALL_TIMEOUT) -> None:
    """``call()`` on a daemon thread, waited for ``seconds`` at most, its errors not raised: for a Dask call that
    takes no timeout of its own (it would wait without end on a client whose loop stopped under it) and whose
    outcome changes nothing for the caller."""

    def quiet() -> None:
        try:
            call()
        except Exception:  # noqa: BLE001 - see above
            logging.getLogger(__name__).debug("Dask call failed", exc_info=True)

    t = threading.Thread(target=quiet, daemon=True, name="emotion-bounded-dask-call")
    t.start()
    t.join(seconds)


def close_cluster(cluster: LocalCluster) -> None:
    """Close a local cluster, waiting ``SCHEDULER_CALL_TIMEOUT`` at most (its close takes seconds; one stuck would
    keep the command from ever ending): worker processes left then may stay until the command exits."""
    try:
        cluster.close(timeout=SCHEDULER_CALL_TIMEOUT)
    except TimeoutError:
        logging.getLogger(__name__).warning("the local Dask cluster did not close within %.0f s; its worker processes "
                                            "may stay until this command exits", SCHEDULER_CALL_TIMEOUT)


def client_stopping(client: Client) -> bool:
    """Whether ``client`` is closing or closed: nothing may be asked of it any more. Dask's blocking calls on it
    would wait forever on its stopped event loop, or fail on its scheduler connection, already dropped."""
    return client.status in ("closing", "closed")


def cluster_threads(client: Client) -> int:
    """Worker threads of the cluster right now (it may grow or shrink while a flow runs); 0 for a client that is
    closing or closed."""
    if client_stopping(client):
        return 0
    try:
        return int(sum(client.nthreads(callback_timeout=SCHEDULER_CALL_TIMEOUT).values()))
    except (OSError, TimeoutError):
        return 0
    except (AttributeError, RuntimeError):  # closed while asked: its scheduler connection gone, its loop closed
        if client_stopping(client):
            return 0
        raise


def no_workers_timeout() -> float:
    """Seconds a cluster may have no worker at all before the work waiting on it fails (runtime setting:
    ``EMOTION_NO_WORKERS_TIMEOUT``, default 300: long enough for a remote cluster's workers to start)."""
    try:
        return max(1.0, float(os.environ.get("EMOTION_NO_WORKERS_TIMEOUT", "300")))
    except ValueError:
        return 300.0


_CLOSED_HERE: weakref.WeakSet[Client] = weakref.WeakSet()  # clients dask_client closed (as its command stops)


def _close(client: Client) -> None:
    _CLOSED_HERE.add(client)
    client.close()


def closed_here(client: Client) -> bool:
    """Whether :func:`dask_client` closed ``client``: the flow that uses it is stopping (it left the client's
    ``with`` on an error, an interruption or its run's cancellation), not Dask closing it on its own."""
    return client in _CLOSED_HERE


def result_while_workers(future: Future, client: Client, what: str, timeout: float | None = None,
                         poll: float = 2.0) -> Any:
    """``future.result()``, but a one-line :class:`EmotionError` instead of a wait without end when the cluster
    has had no worker for ``timeout`` seconds (its workers died, or never started)."""
    limit = no_workers_timeout() if timeout is None else timeout
    idle_since: float | None = None
    # wait on a done-callback, not on future.result(timeout=...): distributed's timed result() can lose a result
    # that arrives as the timeout fires (UnboundLocalError 'result' inside distributed.utils.sync, seen in CI)
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    while not done.wait(poll):
        if client_stopping(client):  # its loop may stop before the callback runs: the wait would have no end
            break
        if cluster_threads(client) > 0:
            idle_since = None
            continue
        now = time.monotonic()
        idle_since = now if idle_since is None else idle_since
        if now - idle_since >= limit:
            if not client_stopping(client):
                _bounded(future.cancel)
            raise EmotionError(f"the Dask cluster at {client.scheduler.address} has had no worker for {limit:.0f} s "
                               f"(its workers died or never started): {what} not done")
    if client_stopping(client):  # closed under the wait (the future is cancelled with it): asking for the result
        # would wait on its stopped loop for ever (seen in CI: the test process never exited)
        raise CancelledError(f"{what}: its Dask client was closed")
    # bounded: a client closed while the result is fetched must not hold the task (and its process) for ever; the
    # result is there already (done), so the time-out cannot race its arrival (the case of the comment above)
    try:
        return future.result(timeout=SCHEDULER_CALL_TIMEOUT)
    except TimeoutError:
        if client_stopping(client):
            raise CancelledError(f"{what}: its Dask client was closed") from None
        raise


def in_flight_limit(client: Client) -> int:
    """How many chunks to keep submitted: one per worker thread, plus a bounded backlog.

    The backlog (half the threads, at least 2) keeps every thread fed while finished chunks are handed back,
    and bounds what waits, so the flow's memory does not grow with the corpus. With no worker yet (a remote
    cluster still starting), 2 chunks wait for the first.
    """
    threads = cluster_threads(client)
    return threads + max(2, threads // 2)


# Without a dashboard the scheduler still serves its health and metrics pages, on port 8787 by default: when that
# port is taken (another command's cluster, a notebook) Dask warns on the console "Port 8787 is already in use...".
# A free port of the loopback interface instead: nothing to warn about, and nothing listens beyond this machine.
NO_DASHBOARD_PORT = {"dashboard_address": "127.0.0.1:0"}


def _distributed() -> tuple[type[Client], type[LocalCluster]]:
    """Dask's client and local cluster, imported on first use. Its import sets the ``distributed`` logger's level
    from Dask's config, undoing the command's (its notices on the console only with --verbose): that level is kept."""
    logger = logging.getLogger("distributed")
    level = logger.level
    from distributed import Client, LocalCluster

    if level != logging.NOTSET:
        logger.setLevel(level)
    return Client, LocalCluster


@contextmanager
def dask_client(address: str | None = None, workers: int | None = None, jobs: int | None = None,
                clips: int | None = None) -> Iterator[Client]:
    """A client of the cluster at ``address``, or of a new local one sized to the work.

    The local cluster has up to ``workers`` single-threaded worker processes
    on 127.0.0.1 (one per core by default), but no more than there are
    ``jobs``: audio and video work is CPU-bound, and multi-threaded libraries
    slow down under contention on few cores. A single job, or at most
    ``SMALL_WORK`` clips, runs on worker threads inside this process, which
    spares the start-up of worker processes (seconds) for small incremental runs.
    """
    Client, LocalCluster = _distributed()

    address = check_scheduler_address(address, "the Dask scheduler address")
    if address:
        try:
            client = Client(address, timeout="15s")
        except (OSError, TimeoutError) as exc:
            raise UsageError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        except (ValueError, TypeError) as exc:  # a form Dask refuses, or a transport it cannot set up (tls:// with
            # no TLS settings): one line, not Dask's traceback
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise UsageError(f"cannot use the Dask scheduler at {address}: {reason}") from None
        try:
            yield client
        finally:
            _close(client)
        return
    if workers is not None and workers < 1:
        raise UsageError(str(_NO_WORKERS), advice=_NO_WORKERS)
    n = min(workers or default_workers(), max(jobs or 1_000_000, 1))
    shared = _SHARED[-1] if _SHARED else None
    on_processes = (jobs or 2) > 1 and (clips is None or clips > SMALL_WORK)
    if shared is not None and on_processes:  # one cluster for every extraction of a pipeline
        if shared.cluster is None:
            shared.cluster = _process_cluster(min(workers or default_workers(), shared.workers or 1_000_000))
        client = Client(shared.cluster)
        try:
            yield client
        finally:
            _close(client)
        return
    if on_processes:
        cluster = _process_cluster(n)
    else:  # in-process (inproc:// transport): nothing listens on the network
        cluster = _started(lambda: LocalCluster(n_workers=1, threads_per_worker=n, processes=False,
                                                dashboard_address=None, silence_logs=40,
                                                scheduler_kwargs=NO_DASHBOARD_PORT))
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            _close(client)
    finally:
        close_cluster(cluster)


def _process_cluster(n_workers: int) -> LocalCluster:
    """A local cluster of ``n_workers`` single-thread worker processes on the loopback address."""
    from multiprocessing import resource_tracker

    _, LocalCluster = _distributed()

    # started before SIGINT is blocked (_started): starting it unblocks SIGINT in the thread that does (CPython's
    # resource_tracker.ensure_running ends with SIG_UNBLOCK), which undid the block for the workers spawned after
    resource_tracker.ensure_running()
    return _started(lambda: LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                         dashboard_address=None, silence_logs=40, scheduler_kwargs=NO_DASHBOARD_PORT,
                                         preload=["tasks.cluster"]))  # dask_setup below, in each worker process


def _started(start: Callable[[], LocalCluster]) -> LocalCluster:
    """``start()`` (a local cluster), with Ctrl-C held until the cluster is whole.

    The terminal sends Ctrl-C (SIGINT) to the whole process group, worker processes being spawned included: one hit
    as it imported Python's site module or Dask printed pages of tracebacks ("Fatal Python error: init_import_site",
    KeyboardInterrupt in multiprocessing's spawn), and the command, interrupted inside Dask's start-up, left a
    half-started cluster whose close at exit failed with "AssertionError: Status.init".

    So SIGINT is blocked in this thread while the cluster starts: the thread of Dask's event loop, created inside,
    inherits the block, and so do the worker processes it spawns (now and when a worker is restarted), which thus
    never see a Ctrl-C; the command stops them (multiprocessing's resource tracker must be running before: see
    :func:`_process_cluster`). A Ctrl-C meanwhile (the other threads of this process still take
    it) is recorded, not raised, and raised as the usual KeyboardInterrupt once the cluster has started, after
    closing it: a second or two late, but the cluster never half-started.
    """
    import signal

    on_main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if on_main else None
    held: list[int] = []
    if callable(handler):  # Python's handler runs in the main thread only: there, a Ctrl-C is held back
        signal.signal(signal.SIGINT, lambda signum, _frame: held.append(signum))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        cluster = start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # one pending on this very thread is recorded here
        if callable(handler):
            signal.signal(signal.SIGINT, handler)
    if held and callable(handler):
        try:
            handler(signal.SIGINT, None)  # KeyboardInterrupt, as the Ctrl-C would have raised
        except BaseException:
            close_cluster(cluster)
            raise
    return cluster


def dask_setup(worker: object) -> None:
    """Run by each worker process of a local cluster as it starts (Dask's preload hook): Ctrl-C, which the terminal
    sends to the whole process group, is left to the command, which stops the cluster; without this every worker
    printed its own KeyboardInterrupt traceback. (The workers start with SIGINT blocked already, see
    :func:`_started`: this keeps it away should anything in a worker unblock it.)"""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Shared:
    def __init__(self, workers: int | None) -> None:
        self.workers = workers
        self.cluster: LocalCluster | None = None


_SHARED: list[_Shared] = []


@contextmanager
def shared_cluster(address: str | None = None, workers: int | None = None) -> Iterator[None]:
    """Inside the block, every :func:`dask_client` without an address that needs worker processes uses one local
    cluster (started on first use, closed at the end), not a cluster of its own: the pipeline's audio and video
    extractions share its start-up. With ``address`` (an existing cluster) nothing changes."""
    if address:
        yield
        return
    if workers is not None and workers < 1:
        raise UsageError(str(_NO_WORKERS), advice=_NO_WORKERS)
    shared = _Shared(workers)
    _SHARED.append(shared)
    try:
        yield
    finally:
        _SHARED.remove(shared)
        if shared.cluster is not None:
            close_cluster(shared.cluster)


def extract_chunk_reporting(step: Step, clips: list[ClipRef], data: str, out: str, run_tag: str, topic: str,
                            index: int) -> ChunkResult:
    """:func:`emotion.extract.chunk.extract_chunk` on a Dask worker, reporting each clip done as a Dask event.

    Workers never talk to Prefect: the client that submitted the chunk
    subscribes to ``topic`` (:class:`ClipCounter`) and turns the counts into
    progress in the UI.
    """
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:  # not on a worker (called directly)
        worker = None

    def report(done: int) -> None:
        if worker is not None:
            worker.log_event(topic, {"chunk": index, "done": done})

    return extract_chunk(step, clips, data, out, run_tag, on_clip=report)


class ClipCounter:
    """Clips done per chunk, as the workers report them through Dask events on ``topic``.

    A chunk rerun elsewhere (its worker died) reports from zero again; the
    largest count seen per chunk is kept, and :meth:`finish` replaces it by
    the chunk's final count.
    """

    def __init__(self, client: Client, topic: str) -> None:
        self.client, self.topic = client, topic
        self._live: dict[int, int] = {}
        self._final: dict[int, int] = {}
        self._lock = threading.Lock()
        client.subscribe_topic(topic, self._on_event)

    def _on_event(self, event: tuple[float, dict[str, int]]) -> None:
        msg = event[1]
        with self._lock:
            self._live[msg["chunk"]] = max(self._live.get(msg["chunk"], 0), msg["done"])

    def finish(self, index: int, done: int) -> None:
        with self._lock:
            self._final[index] = done

    def done(self, chunks: Iterable[int] | None = None) -> int:
        """Clips done in ``chunks`` (default: all)."""
        with self._lock:
            keys = set(self._live) | set(self._final) if chunks is None else set(chunks)
            return sum(self._final[i] if i in self._final else self._live.get(i, 0) for i in keys)

    def close(self) -> None:
        try:
            self.client.unsubscribe_topic(self.topic)
        except Exception:  # noqa: BLE001 - the client may be closing already
            pass
