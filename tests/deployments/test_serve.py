"""`emotion deploy` serving: how it stops, and what it says then."""

from __future__ import annotations

import argparse
import logging
import signal

import prefect
import pytest

import flows.cli.commands
from flows.cli.server import cmd_deploy


def test_stopping_says_the_deployments_are_paused(tmp_path, monkeypatch, capsys):
    # Prefect's serve returns once Ctrl-C or SIGTERM stopped it (after pausing the schedules); the command then
    # exited 0 without a word of its own
    p = tmp_path / "d.yaml"
    p.write_text("deployments:\n"
                 "  - {name: a, flow: train-audio, cron: '0 1 * * *', parameters: {out: /o}}\n"
                 "  - {name: b, flow: evaluate-loso, cron: '0 3 * * *', parameters: {out: /o}}\n")
    served: list[str] = []
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setattr(flows.cli.commands, "flows_module", lambda *a, **k: None)
    monkeypatch.setattr(prefect, "serve", lambda *deps, **kw: served.extend(d.name for d in deps))
    handler = signal.getsignal(signal.SIGINT)
    try:
        assert cmd_deploy(argparse.Namespace(file=str(p), register_only=False)) == 0
    finally:
        signal.signal(signal.SIGINT, handler)
    assert served == ["a", "b"]
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "emotion deploy: stopped; 2 deployments paused (emotion deploy serves them again)"


def test_sigint_stops_the_runner_as_its_sigterm_does(tmp_path, monkeypatch):
    """`kill -INT` of the deploy process alone: Prefect's runner stops on SIGTERM by cancelling its runs in progress;
    on SIGINT (KeyboardInterrupt) serve returned at once, and the run it was running stayed Running in the UI."""
    from prefect.runner import Runner

    p = tmp_path / "d.yaml"
    p.write_text("deployments:\n  - {name: a, flow: train-audio, cron: '0 1 * * *', parameters: {out: /o}}\n")
    stopped: list[int] = []

    class StartedRunner(Runner):
        def handle_sigterm(self, signum, frame):  # the runner's graceful stop (astop: cancels the runs in progress)
            stopped.append(signum)

    def serve(*deps, **kw):
        signal.signal(signal.SIGTERM, StartedRunner().handle_sigterm)  # as Runner.start sets it
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:  # as Prefect's serve catches it: returning at once, its runs' processes killed
            stopped.append(-1)

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setattr(flows.cli.commands, "flows_module", lambda *a, **k: None)
    monkeypatch.setattr(prefect, "serve", serve)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        assert cmd_deploy(argparse.Namespace(file=str(p), register_only=False)) == 0
        assert stopped == [signal.SIGINT]
        # the command's handlers are back once serve returned (the runner's SIGTERM handler ends the process then)
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])


def test_sigint_before_the_runner_started_interrupts_as_always(tmp_path, monkeypatch):
    p = tmp_path / "d.yaml"
    p.write_text("deployments:\n  - {name: a, flow: train-audio, cron: '0 1 * * *', parameters: {out: /o}}\n")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setattr(flows.cli.commands, "flows_module", lambda *a, **k: None)
    monkeypatch.setattr(prefect, "serve", lambda *deps, **kw: signal.raise_signal(signal.SIGINT))  # registering
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(KeyboardInterrupt):  # main() says "emotion: interrupted", exit 130
            cmd_deploy(argparse.Namespace(file=str(p), register_only=False))
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])


def _console_shows(name: str, msg: str, level: int = logging.INFO) -> bool:
    """Whether the console of a command (``emotion deploy`` here) shows a record of logger ``name``."""
    return flows.cli.commands._CONSOLE_LINES.filter(logging.LogRecord(name, level, __file__, 1, msg, None, None))


def test_the_runners_own_lines_reach_the_deploy_terminal(monkeypatch):
    """The runner serving the deployments says, in the deploy process, how a run it stopped ended and how it stops;
    the console of our commands showed only warnings and errors, so a run cancelled from the UI, or by stopping
    `emotion deploy`, ended with the run's own misleading last line ("Finished in state Running()")."""
    monkeypatch.setattr(flows.cli.commands, "VERBOSE", [False])
    monkeypatch.setattr(flows.cli.commands, "INTERRUPTED", [False])
    assert _console_shows("prefect.runner.cancellation_manager", "Cancelled flow run 'extract-audio-seed-1a2b3c'")
    assert _console_shows("prefect.runner.state_proposer", "Reported flow run 'f00' as crashed: Process exited")
    assert _console_shows("prefect.runner", "SIGTERM received, initiating graceful shutdown...")
    # the flow runs' own lines at INFO stay off a command's console (a served run's process has its own console)
    assert not _console_shows("prefect.flow_runs", "Downloading flow code from storage at '.'")
    assert not _console_shows("prefect.task_runs", "Finished in state Completed()")
    assert not _console_shows("prefect.runner", "debugging", logging.DEBUG)
