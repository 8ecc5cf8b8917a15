import time

import pytest
from distributed import Client, LocalCluster

from emotion.core.errors import EmotionError
from tasks.cluster import cluster_threads, in_flight_limit, result_while_workers


def _slow(x: int) -> int:
    time.sleep(0.2)
    return x + 1


def test_a_result_is_awaited_while_the_cluster_has_workers():
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        assert result_while_workers(client.submit(_slow, 1), client, "one job", timeout=1, poll=0.05) == 2
        assert in_flight_limit(client) == 2 + 2  # one per thread and a backlog of at least 2


def test_a_cluster_without_workers_fails_with_one_line_instead_of_waiting_forever():
    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        future = client.submit(_slow, 1)
        t0 = time.monotonic()
        with pytest.raises(EmotionError, match=r"has had no worker for 1 s \(its workers died or never started\): "
                                               r"audio clips 1-8 not done"):
            result_while_workers(future, client, "audio clips 1-8", timeout=1, poll=0.1)
        assert time.monotonic() - t0 < 10


def test_a_wait_on_a_client_closed_under_it_ends_at_once():
    """The client closes (its flow stops) while a chunk waits: the wait ends with CancelledError. It asked the closed
    client for its workers (AttributeError), or waited without end on its stopped loop, which kept a CI run's
    process from ever exiting."""
    import threading
    from concurrent.futures import CancelledError

    ended: list[object] = []

    def wait() -> None:
        try:
            ended.append(result_while_workers(future, client, "audio clips 1-8", timeout=60, poll=0.05))
        except BaseException as exc:  # noqa: BLE001 - what the wait raised, for the test to see
            ended.append(exc)

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        client = Client(cluster)
        future = client.submit(_slow, 1)
        client.close()
        waiting = threading.Thread(target=wait, daemon=True)
        waiting.start()
        waiting.join(20)
        assert len(ended) == 1 and isinstance(ended[0], CancelledError), ended
        assert str(ended[0]) == "audio clips 1-8: its Dask client was closed"
        assert cluster_threads(client) == 0  # asks nothing of a closed client


@pytest.mark.parametrize("clips", [1, 100], ids=["in-process", "worker-processes"])
def test_a_local_cluster_serves_http_on_a_free_loopback_port_without_a_warning(clips):
    import socket
    import warnings

    from tasks.cluster import dask_client

    holder = socket.socket()
    try:  # another cluster holds Dask's default port (if nothing else already does)
        holder.bind(("127.0.0.1", 8787))
        holder.listen()
    except OSError:
        pass
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with dask_client(workers=1, jobs=2, clips=clips) as client:
                http = client.cluster.scheduler.http_server
                assert (http.address, http.port != 8787) == ("127.0.0.1", True)
        assert not [w for w in caught if "already in use" in str(w.message)]
    finally:
        holder.close()


@pytest.mark.parametrize("exc", [ValueError("missing port number in address 'foo'"),
                                 TypeError("TLS expects a `ssl_context` argument\nof type ssl.SSLContext")])
def test_an_address_dask_refuses_is_one_line_not_a_traceback(monkeypatch, exc):
    """Dask's client raises ValueError (a form it cannot parse) or TypeError (tls:// without TLS settings): either
    is a one-line usage error naming the address, as an unreachable one is."""
    import tasks.cluster as cluster
    from emotion.core.errors import UsageError

    def refuse(*a, **k):
        raise exc

    real = cluster._distributed
    monkeypatch.setattr(cluster, "_distributed", lambda: (refuse, real()[1]))
    with pytest.raises(UsageError) as got, cluster.dask_client("tls://127.0.0.1:8786"):
        pass
    assert str(got.value).startswith("cannot use the Dask scheduler at tls://127.0.0.1:8786: ")
    assert "\n" not in str(got.value)
    with pytest.raises(UsageError, match=r"the Dask scheduler address 'foo': no port; expected tcp://HOST:PORT"), \
            cluster.dask_client("foo"):
        pass


def test_a_local_cluster_of_no_workers_is_refused_naming_the_setting_as_the_command_line_and_a_flow_take_it():
    """The command line refuses --workers 0 itself (its number ranges); a flow given workers=0 (a deployment, the UI's
    run form, Python) is refused here, and a served run names the flows' parameter (extract's, the pipeline's)."""
    import tasks.cluster as cluster
    from emotion.core.errors import UsageError

    for refused in (cluster.dask_client(workers=0), cluster.shared_cluster(workers=0)):
        with pytest.raises(UsageError) as got, refused:
            pass
        assert str(got.value) == "--workers must be at least 1"
        assert got.value.served_message() == "workers must be at least 1"


def test_a_cluster_close_is_bounded_and_one_that_times_out_is_a_warning(caplog):
    """A local cluster closes with a time limit; one that does not close in time is a warning, not an error (the
    command's work is done) nor a wait without end (a close is Dask's blocking call on its event loop)."""
    from tasks.cluster import SCHEDULER_CALL_TIMEOUT, close_cluster

    cluster = LocalCluster(n_workers=1, processes=False, dashboard_address=None)
    close_cluster(cluster)
    assert cluster.status.name == "closed"

    class Stuck:
        def close(self, timeout: float | None = None) -> None:
            assert timeout == SCHEDULER_CALL_TIMEOUT
            raise TimeoutError(f"timed out after {timeout} s.")

    close_cluster(Stuck())  # type: ignore[arg-type]
    assert "did not close within 60 s" in caplog.text
