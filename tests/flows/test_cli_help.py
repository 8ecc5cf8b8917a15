"""The command line as a new user meets it: what ``--help`` says each command takes and defaults to, and what a
command does without the options it calls optional."""

from __future__ import annotations

import json
import re
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


def _help(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse's line breaks undone


def test_evaluate_help_lists_only_the_models_and_options_evaluate_takes(capsys):
    """It listed cnn, fer and fusion-* (which evaluate refuses: "unknown model 'cnn'"), --epochs (which it never
    used) and the defaults of train and run."""
    from emotion.core.names import AUDIO_MODELS, FUSION_MODELS, VIDEO_MODELS

    text = _help(capsys, "evaluate")
    models = text.split("--model NAME", 2)[2].split(" --", 1)[0]  # past the usage line: the option's help
    assert all(m in models for m in AUDIO_MODELS) and "default lr" in models, models
    assert not any(re.search(rf"\b{m}\b", text) for m in (*VIDEO_MODELS, *FUSION_MODELS)), text
    assert "--epochs" not in text and "for train" not in text and "for run" not in text, text
    assert "fused" not in text and "video" not in text, text
    with pytest.raises(SystemExit) as exit_:  # refused, not silently ignored
        main(["evaluate", ".", "--epochs", "3"])
    assert exit_.value.code == 2 and "unrecognized arguments: --epochs 3" in capsys.readouterr().err


def test_demo_help_gives_the_demos_own_defaults(capsys):
    """It gave run's (--n-iter default 50, --epochs 20, frames every 20th at 256 pixels), not the demo's."""
    from flows.cli.parser import DEMO_DEFAULTS, build_parser

    demo = build_parser().parse_args(["demo"])
    text = _help(capsys, "demo")
    assert demo.n_iter == DEMO_DEFAULTS["n_iter"] == 6 and demo.epochs == DEMO_DEFAULTS["epochs"] == 6
    assert "--n-iter N_ITER randomized-search candidates (default 6)" in text, text
    assert "--epochs EPOCHS video models: training epochs in all (default 6 in the demo: cnn 6, fer 2 " in text, text
    assert f"--every EVERY keep every Nth video frame (default {demo.every})" in text, text
    assert f"(default {demo.frame_size})" in text.split("--frame-size FRAME_SIZE", 2)[2], text
    assert "skip the grid search around the best candidate (always, in the demo)" in text, text
    assert "default 50" not in text and "default 20" not in text and "default 256" not in text, text


def test_version_prints_the_installed_distributions_version(capsys):
    """`emotion --version` failed with "the following arguments are required: COMMAND"."""
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0, capsys.readouterr().err
    assert capsys.readouterr().out == f"emotion {version('emotion-pipeline')}\n"


def test_every_argument_of_every_command_has_help():
    """The positional DIR, DATA and OUT (and synth's --seed, server's --port) showed in --help with no word on what
    they are."""
    from flows.cli.parser import build_parser

    parser = build_parser()
    silent = [f"{name} {a.metavar or a.dest}" for name, sub in parser.commands.items() for a in sub._actions
              if not a.help]
    assert silent == []


def test_deploy_help_says_what_the_default_file_schedules_and_reads(capsys, tmp_path, monkeypatch):
    """`deploy --help` listed only its two options: where schedules are set, and which variables the default file
    reads, were in the README only. What it says of the default file is the file's."""
    from deployments import DEFAULT_FILE, load_specs

    with pytest.raises(SystemExit):
        main(["deploy", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "PREFECT_API_URL" in text and "--file" in text and "cron" in text
    monkeypatch.setenv("EMOTION_DATA", str(tmp_path))  # the file's data root must exist
    specs = load_specs(DEFAULT_FILE)
    assert sorted((s.flow, s.cron) for s in specs) == [("emotion-pipeline", "0 5 1 * *"), ("extract", "0 2 * * *"),
                                                      ("train-audio", "0 4 * * 0")]
    assert {s.timezone for s in specs} == {"UTC"}
    assert "nightly extraction (02:00 UTC), a weekly training (Sundays, 04:00) and a monthly pipeline (the 1st, 05:00)" \
        in text
    raw = open(DEFAULT_FILE).read()
    assert set(re.findall(r"\$\{(EMOTION_\w+)", raw)) == {"EMOTION_DATA", "EMOTION_OUT", "EMOTION_DASK_ADDRESS"}
    assert all(v in text for v in ("EMOTION_DATA", "EMOTION_OUT", "EMOTION_DASK_ADDRESS"))
