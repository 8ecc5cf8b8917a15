"""`emotion deploy` serving: what it says when stopped."""

from __future__ import annotations

import argparse
import signal

import prefect

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
