"""The command line as a new user meets it: what ``--help`` says each command takes and defaults to, and what a
command does without the options it calls optional."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from flows.cli import main


def _fake_flows(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """``flows_module()`` replaced by one whose evaluate flow records its call (no Prefect, no store read)."""
    from flows.cli import commands

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def evaluate_loso(*a: Any, **k: Any) -> dict[str, Any]:
        calls.append((a, k))
        return {"models": []}

    fake = SimpleNamespace(evaluate=SimpleNamespace(evaluate_loso=evaluate_loso))
    monkeypatch.setattr(commands, "flows_module", lambda *a, **k: fake)
    return calls


def test_evaluate_runs_leave_one_speaker_out_without_loso(tmp_path, monkeypatch, capsys):
    """--help shows [--loso] as optional: without it, evaluate is leave-one-speaker-out (it was exit 2, "evaluate
    needs --loso"); with it, the same."""
    calls = _fake_flows(monkeypatch)
    for loso in ([], ["--loso"]):
        code = main(["evaluate", str(tmp_path), "--model", "lr", "--json", *loso])
        out, err = capsys.readouterr()
        assert code == 0 and json.loads(out) == {"models": []}, err
    assert len(calls) == 2 and calls[0] == calls[1]
    assert calls[0][1]["mode"] == "nested"
