"""Start and stop real services on 127.0.0.1 for tests (Prefect, Dask, S3)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen | None = None,
             log: Path | None = None) -> None:
    """Poll ``check`` until it is true; a time-out or an early exit of ``proc`` quotes the tail of ``log``."""
    def context() -> str:
        return f"\n--- last lines of {log} ---\n{log.read_text(errors='replace')[-3000:]}" if log and log.exists() else ""

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited early with code {proc.returncode}{context()}")
        try:
            if check():
                return
        except AssertionError:
            raise  # the check saw something definitely wrong: say so now
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s{context()}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def process(argv: list[str], log: Path, env: dict[str, str] | None = None, stop_signal: int = signal.SIGTERM,
            grace: float = 15) -> Iterator[subprocess.Popen]:
    """Run ``argv`` in its own process group; stop the whole group on exit."""
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                start_new_session=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, stop_signal)
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    reap(proc, group=True)


def _leads_group(proc: subprocess.Popen) -> bool:
    try:
        return os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:  # ended and reaped already
        return False


def reap(proc: subprocess.Popen, group: bool | None = None) -> None:
    """Kill ``proc`` if it still runs, and what is left of its process group where it leads one (``group``; found
    out now if not given: the command's Dask workers and temporary Prefect server), and wait for it: a test that
    fails midway leaves nothing running to load the machine under the tests after it."""
    group = _leads_group(proc) if group is None else group
    try:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        elif proc.poll() is None:
            proc.kill()
    except ProcessLookupError:  # nothing left of it
        pass
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:  # killed, not yet reaped: said, not raised over the test's own outcome
        print(f"process {proc.pid} still there 30 s after SIGKILL", file=sys.stderr)


@contextmanager
def reaped(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """``proc`` within, :func:`reap`-ed at the end."""
    group = _leads_group(proc)
    try:
        yield proc
    finally:
        reap(proc, group)


def service_env(tmp: Path) -> dict[str, str]:
    return {"PREFECT_HOME": str(tmp / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DASK_LOGGING__DISTRIBUTED": "warning"}


@contextmanager
def prefect_server(tmp: Path, command: str | list[str] = "prefect",
                   extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    """A real Prefect server on a free port of 127.0.0.1 with its own home, stopped on exit; yields its API URL
    and environment. ``command="emotion"`` starts it as users do, with ``emotion server --port P``; a list
    is a command to which ``--host 127.0.0.1 --port P`` are added. ``extra_env`` is given to the server only
    (e.g. its database URL)."""
    import httpx

    port = free_port()
    env = service_env(tmp)
    if command == "emotion":
        argv = [str(BIN / "emotion"), "server", "--port", str(port)]
    elif isinstance(command, list):
        argv = [*command, "--host", "127.0.0.1", "--port", str(port)]
    else:
        argv = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    # the scheduler creates the runs of cron schedules every 5 s here (default 60)
    server_env = {**env, "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5", **(extra_env or {})}
    with process(argv, tmp / "server.log", server_env) as proc:
        api = f"http://127.0.0.1:{port}/api"
        wait_for(lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200, 120, "prefect server", proc,
                 log=tmp / "server.log")
        yield api, env


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,900")


def chromium() -> str | None:
    """The headless browser of the UI tests (Debian's ``chromium``), or None where it is not installed."""
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


def render_page(url: str, tmp: Path, screenshot: Path | None = None, budget_ms: int = 15000,
                until: str | None = None, attempts: int = 3) -> str:
    """The DOM of ``url`` after the page's scripts ran for ``budget_ms`` of virtual time (and a screenshot).

    With ``until``, a DOM without that text is rendered again with twice the
    budget, up to ``attempts`` times: on a loaded machine a single-page app can
    still be fetching its scripts when the budget ends (CI once got Prefect's
    UI as an empty ``<div id="app">``). The last DOM is returned either way,
    for the caller's assertion; the screenshot shows the same budget.
    """
    exe = chromium()
    assert exe, "chromium is not installed"
    dom = ""
    for attempt in range(attempts if until else 1):
        budget = budget_ms * 2 ** attempt
        base = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'chromium-profile'}", f"--virtual-time-budget={budget}"]
        dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=180, check=True).stdout
        if until is None or until in dom:
            break
    if screenshot is not None:
        subprocess.run([*base, f"--screenshot={screenshot}", url], capture_output=True, timeout=180, check=True)
    return dom


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextmanager
def netns_hosts(n: int) -> Iterator[list[tuple[str, str, str]] | None]:
    """``n`` test hosts, each a network namespace joined to this one by a veth pair.

    Yields ``(namespace, address here, address of the host)`` for each, on
    private /30 links that exist only between these namespaces; or ``None``
    where namespaces cannot be made (not root, no ``ip``). Removed on exit.
    """
    tag = f"{os.getpid() % 10000}"
    made: list[str] = []
    hosts = []
    try:
        for i in range(n):
            ns, here, there = f"emo{tag}w{i}", f"ve{tag}h{i}", f"ve{tag}w{i}"
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("link", "add", here, "type", "veth", "peer", "name", there)
            _ip("link", "set", there, "netns", ns)
            net = f"10.213.{(int(tag) * 7 + i) % 250}"
            _ip("addr", "add", f"{net}.1/30", "dev", here)
            _ip("link", "set", here, "up")
            _ip("netns", "exec", ns, "ip", "addr", "add", f"{net}.2/30", "dev", there)
            _ip("netns", "exec", ns, "ip", "link", "set", there, "up")
            _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
            hosts.append((ns, f"{net}.1", f"{net}.2"))
    except (OSError, subprocess.SubprocessError):
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        yield None
        return
    try:
        yield hosts
    finally:
        for ns in made:  # deleting a namespace deletes its end of the veth pair, and so the pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
