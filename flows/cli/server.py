"""``emotion server`` (a Prefect server and UI on any host and port) and ``emotion deploy`` (the schedules)."""

from __future__ import annotations

import argparse
import errno
import os
import re
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from emotion.core.errors import EmotionError, UsageError

WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def server_env(host: str, port: int, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of ``prefect server start --host HOST --port PORT``, with the UI pointed at this server's API.

    Prefect's UI takes its API address from ``PREFECT_UI_API_URL``, else
    ``PREFECT_API_URL``, else port 4200, whatever port the server listens on.
    Bound to one address, the UI gets ``http://HOST:PORT/api``; bound to every
    address (``0.0.0.0``), a browser on another machine cannot use any one of
    them, so the UI gets ``/api``, relative to the address the browser used.
    An explicit ``PREFECT_UI_API_URL`` is kept.
    """
    # PREFECT_CLI_PROMPT: in a terminal, Prefect's `server start` otherwise stops before it listens, at a menu
    # asking to write PREFECT_API_URL into the Prefect profile (which would then send every command in every shell
    # to this server); the start-up lines say what to export instead
    env = {**(os.environ if environ is None else environ), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_CLI_PROMPT": "false"}
    if not env.get("PREFECT_UI_API_URL"):
        env["PREFECT_UI_API_URL"] = "/api" if host in WILDCARD_HOSTS else f"http://{_url_host(host)}:{port}/api"
    return env


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def database_location(env: dict[str, str]) -> str:
    """Where the server keeps its database: the PostgreSQL URL (without its password) or the SQLite file."""
    url = env.get("PREFECT_API_DATABASE_CONNECTION_URL") or env.get("PREFECT_SERVER_DATABASE_CONNECTION_URL")
    if url:
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
    home = Path(env.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    return f"SQLite in {home / 'prefect.db'}"


def check_can_listen(host: str, port: int) -> None:
    """Fail, naming why, where the server could not listen: Prefect calls every such failure "Port P is already in
    use", an address this machine does not have included, and only after our banner announced the server."""
    bare = host.strip("[]")
    with socket.socket(socket.AF_INET6 if ":" in bare else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server does: a port in TIME_WAIT is free
        try:
            s.bind((bare, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"port {port} on {host or '0.0.0.0'} is in use (another server?); choose another "
                                 "with --port") from None
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (--host takes an address of this "
                             "machine, e.g. 127.0.0.1 or 0.0.0.0)") from None


def check_server_database() -> None:
    """Fail with one line where the database is one another Prefect version migrated: Prefect's own server prints
    pages of alembic tracebacks ("Can't locate revision ...") instead."""
    from flows.cli.commands import foreign_database_reason, foreign_prefect_database

    found = foreign_prefect_database()
    if found is not None:
        raise EmotionError(f"{foreign_database_reason(*found)}; start the server with that version, or set "
                           "PREFECT_HOME to another folder (or PREFECT_API_DATABASE_CONNECTION_URL to another database)")


def cmd_server(args: argparse.Namespace) -> int:
    check_can_listen(args.host, args.port)
    check_server_database()
    env = server_env(args.host, args.port)
    shown = socket.gethostname() if args.host in WILDCARD_HOSTS else _url_host(args.host)
    api = f"http://{shown}:{args.port}/api"
    where = " (listening on every address)" if args.host in WILDCARD_HOSTS else ""
    print(f"Prefect server and UI at http://{shown}:{args.port}{where}; the UI reads its API at "
          f"{env['PREFECT_UI_API_URL']}\n"
          f"database: {database_location(env)}\n"
          f"in other shells: export PREFECT_API_URL={api}", flush=True)
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", args.host, "--port", str(args.port)]
    os.execve(sys.executable, argv, env)
    return 0  # not reached


def cmd_deploy(args: argparse.Namespace) -> int:
    from deployments import DEFAULT_FILE, build, load_specs

    if not os.environ.get("PREFECT_API_URL"):
        raise UsageError("set PREFECT_API_URL to the Prefect server that schedules the runs (start one with `emotion server`)")
    from flows.cli.commands import flows_module

    flows_module(served=True)
    specs = load_specs(args.file or DEFAULT_FILE)
    deployments = build(specs)
    for s in specs:
        print(f"deployment {s.flow}/{s.name}: cron {s.cron!r} ({s.timezone})", flush=True)
    if args.register_only:
        for d in deployments:
            d.apply()
        print(f"registered {len(deployments)} deployments; run `emotion deploy` to serve them")
        return 0
    busy = served_elsewhere(deployments)
    if busy:  # alive if it polls again; one killed outright does not, and is waited out (a service restarting it)
        print(f"deployment {busy[0]} was polled for runs {busy[1]:.0f} s ago: waiting up to {busy[2] - busy[1]:.0f} s "
              "to tell whether another `emotion deploy` serves it", flush=True)
        busy = polled_again(deployments, busy)
    if busy:
        raise EmotionError(f"{busy[0]} is served already by another `emotion deploy` (polled for runs {busy[1]:.0f} s "
                           "ago): stop that one first: two would start each scheduled run side by side, and stopping "
                           "either pauses the schedules of both")
    for name in unserved_deployments(deployments):
        print(f"note: deployment {name} is registered but not in this file: nothing serves its scheduled runs (pause "
              f"or delete it: prefect deployment delete {name})", flush=True)
    import signal

    from prefect import serve

    from deployments import RUNS_AT_ONCE

    # SIGINT stops the runner as its SIGTERM does (_stop_as_on_sigterm), not with Python's KeyboardInterrupt (the
    # batch commands' handler, installed by flows_module, ends in it too)
    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, _stop_as_on_sigterm)
    try:
        serve(*deployments, print_starting_message=True, limit=RUNS_AT_ONCE)  # returns once SIGINT or SIGTERM stopped it
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])
    n = len(deployments)
    print(f"emotion deploy: stopped; {n} deployment{'s' * (n != 1)} paused (emotion deploy serves them again)", flush=True)
    return 0


def _poll_window() -> float:
    """Seconds since its last poll for runs within which a deployment counts as served: three of the runners' poll
    intervals, 30 s at least (a runner pauses its deployments as it stops; one killed outright counts until then)."""
    from prefect.settings import PREFECT_RUNNER_POLL_FREQUENCY

    return max(30.0, 3.0 * float(PREFECT_RUNNER_POLL_FREQUENCY.value()))


def _polled_ago(deployment: Any) -> float | None:
    """Seconds since a registered deployment (as the API reads it) was polled for runs; None if paused or never."""
    from datetime import UTC, datetime

    if deployment.paused or deployment.last_polled is None:
        return None
    return max(0.0, (datetime.now(UTC) - deployment.last_polled).total_seconds())


def served_elsewhere(deployments: list[Any]) -> tuple[str, float, float] | None:
    """The first of ``deployments`` (Prefect ``RunnerDeployment`` objects) that another runner serves now (see
    :func:`_poll_window`), how many seconds ago it polled for runs, and the window; None if none is."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    window = _poll_window()
    with get_client(sync_client=True) as client:
        for d in deployments:
            name = f"{d.flow_name}/{d.name}"
            try:
                age = _polled_ago(client.read_deployment_by_name(name))
            except ObjectNotFound:
                continue
            if age is not None and age < window:
                return name, age, window
    return None


def polled_again(deployments: list[Any], busy: tuple[str, float, float], every: float = 1.0
                 ) -> tuple[str, float, float] | None:
    """Watch the deployments :func:`served_elsewhere` found ``busy``: the first one polled again (its runner is alive),
    or None once none has been polled within the window (a runner that stopped without pausing them)."""
    import time

    seen = {busy[0]: time.monotonic() - busy[1]}  # when each was last polled, on this clock
    while True:
        time.sleep(every)
        now_busy = served_elsewhere(deployments)
        if now_busy is None:
            return None
        name, age, _ = now_busy
        polled = time.monotonic() - age
        if name in seen and polled > seen[name] + 0.5:
            return now_busy
        seen.setdefault(name, polled)


def unserved_deployments(deployments: list[Any]) -> list[str]:
    """Deployments of the same flows registered on the server, not paused, not served by another runner, and not
    among ``deployments``: left from an earlier file (renamed or removed there), they keep getting scheduled runs
    that nothing serves."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    ours = {f"{d.flow_name}/{d.name}" for d in deployments}
    flows = FlowFilter(name=FlowFilterName(any_=sorted({d.flow_name for d in deployments})))
    window = _poll_window()
    with get_client(sync_client=True) as client:
        names = {f.id: f.name for f in client.read_flows(flow_filter=flows)}
        registered = client.read_deployments(flow_filter=flows)
    left = []
    for d in registered:
        name = f"{names.get(d.flow_id, '?')}/{d.name}"
        age = _polled_ago(d)
        if not d.paused and name not in ours and (age is None or age >= window):
            left.append(name)
    return sorted(left)


def _stop_as_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGINT of ``emotion deploy``: what Prefect's runner does on SIGTERM, once it set its handler (it stops the
    processes of the flow runs in progress, which end Cancelled, pauses the schedules, and ``serve`` returns).

    On KeyboardInterrupt, ``serve`` returned at once and the runs' processes were killed on the way out, with no
    word to the server: a SIGINT sent to the deploy process alone (``kill -INT``; the terminal's Ctrl-C reaches the
    runs' processes too, and they end themselves) left its run shown Running in the UI for good.
    Before the runner starts (while registering): KeyboardInterrupt, as always.
    """
    import signal

    from prefect.runner import Runner

    handler = signal.getsignal(signal.SIGTERM)
    if callable(handler) and isinstance(getattr(handler, "__self__", None), Runner):  # Runner.handle_sigterm
        handler(signum, frame)
    else:
        signal.default_int_handler(signum, frame)
