"""Progress on the console (issue 14): redrawn in place on a terminal, a few plain lines elsewhere, never on stdout."""

from __future__ import annotations

import io
import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emotion.core.progress import Tick
from flows.console import PlainProgress, RichProgress, display
from tasks import progress

PROJECT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_plain_lines_when_a_task_ends_and_now_and_then_while_it_runs():
    out = io.StringIO()
    clock = iter([0.0, 1.0, 2.0, 12.0, 13.0, 14.0])
    shown = PlainProgress(out, interval=10.0, clock=lambda: next(clock))
    shown(Tick("extract audio", 0, 100, "clips", "starting the Dask workers"))
    shown(Tick("extract audio", 10, 100, "clips"))
    shown(Tick("extract audio", 20, 100, "clips"))
    shown(Tick("extract audio", 60, 100, "clips"))  # 12 s after the start: a line
    shown(Tick("extract audio", 100, 100, "clips"))
    shown(Tick("extract audio", 100, 100, "clips"))  # said once
    lines = out.getvalue().splitlines()
    assert lines == ["extract audio: 60/100 clips (60 %), 5.0 clips/s, about 8 s left",
                     "extract audio: 100/100 clips done in 13 s, 7.7 clips/s"]


def test_under_one_a_second_the_line_gives_the_time_each_takes():
    """A training's head went at "0.2 epochs/s" and its fine-tuning at "5 s per epoch": one measure for both."""
    out = io.StringIO()
    clock = iter([0.0, 25.0, 26.0, 60.0])
    shown = PlainProgress(out, interval=10.0, clock=lambda: next(clock))
    shown(Tick("fer head", 0, 8, "epochs"))
    shown(Tick("fer head", 5, 8, "epochs"))  # 0.2 epochs/s
    shown(Tick("clips", 0, 100, "clips"))
    shown(Tick("clips", 60, 100, "clips"))  # 60 in 34 s: 1.8 clips/s
    assert out.getvalue().splitlines() == ["fer head: 5/8 epochs (62 %), 5.0 s per epoch, about 15 s left",
                                           "clips: 60/100 clips (60 %), 1.8 clips/s, about 23 s left"]


def test_epochs_show_loss_and_accuracy():
    out = io.StringIO()
    shown = PlainProgress(out)
    shown(Tick("cnn train", 6, 6, "epochs", "loss 0.412 acc 0.871"))
    assert out.getvalue().startswith("cnn train: 6/6 epochs done in") and "loss 0.412 acc 0.871" in out.getvalue()


def test_display_is_rich_on_a_terminal_and_plain_elsewhere():
    assert isinstance(display(stream=io.StringIO()), PlainProgress)
    assert display(False) is None
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            assert isinstance(display(stream=tty), RichProgress)
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("columns", [80, 100, 160])
def test_the_counts_stay_whole_on_a_narrow_terminal_and_the_note_is_cut(columns: int, monkeypatch):
    """On an 80-column terminal every number of every line is shown whole (the note, e.g. the loss, gives way),
    and no line is wider than the terminal."""
    monkeypatch.setenv("COLUMNS", str(columns))
    out = io.StringIO()
    shown = RichProgress(out)
    with shown:
        shown(Tick("extract audio", 1140, 1200, "clips"))
        shown(Tick("svc search", 18, 18, "fits", "6 candidates x 3 folds, best CV 0.817"))
        shown(Tick("fer fine-tune", 3, 6, "epochs", "loss 1.608 acc 0.601 val_loss 1.514 val_acc 0.812 " * 2))
        shown(Tick("fuse voice and face", 1, 3, "models", "fusion-late"))
    lines = [ANSI.sub("", line).rstrip() for line in ANSI.sub("", out.getvalue()).replace("\r", "\n").splitlines()]
    last = lines[-4:]
    assert all(len(line) <= columns for line in last), last
    for count, unit in (("1140/1200", "clips"), ("18/18", "fits"), ("3/6", "epochs"), ("1/3", "models")):
        assert any(re.search(rf"\b{count}\s+{unit}\b", line) for line in last), (count, last)
    if columns != 100:  # the note where there is room for it, cut where there is little
        assert any("0.817" in line for line in last) == (columns > 100), last
    assert "…" in last[2]  # a long note is cut, not wrapped onto more lines


def test_ticks_reach_the_installed_display_only_inside_its_block():
    seen: list[Tick] = []
    assert progress.sink() is None
    progress.tick("nobody listens", 1, 2)
    with progress.use(seen.append):
        fn = progress.sink()
        assert fn is not None
        fn(Tick("a", 1, 2, "fits"))
        progress.tick("b", 2, 2, "epochs", "loss 0.1")
    progress.tick("c", 1, 1)
    assert [t.task for t in seen] == ["a", "b"]


def test_a_failing_display_never_fails_the_work():
    def broken(t: Tick) -> None:
        raise RuntimeError("terminal gone")

    with progress.use(broken):
        progress.tick("a", 1, 2)


# -- the command, end to end -------------------------------------------------------------------------------------
def _env(tmp_path: Path) -> dict[str, str]:
    """The command in a child process with its own Prefect home and temporary server."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "COLUMNS": "160"}
    env.pop("PREFECT_API_URL", None)
    return env


def _run_in_terminal(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run ``emotion ARGV`` with stdout and stderr on a pseudo-terminal, reading it all the time; (exit code, output)."""
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", *argv], stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, env={**env, "TERM": "xterm"}, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("the command did not finish in time:\n" + b"".join(chunks).decode(errors="replace"))
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the terminal's other side is closed (the process ended)
                    data = b""
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                # drain what is left, then stop
                while select.select([master], [], [], 0.2)[0]:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        break
                    chunks.append(data)
                break
        return proc.wait(timeout=30), b"".join(chunks).decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


@pytest.fixture(scope="module")
def demo_in_terminal(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    """``emotion demo`` on four synthetic actors (audio and video, every model), under a pseudo-terminal."""
    tmp = tmp_path_factory.mktemp("demo-tty")
    out = tmp / "demo"
    argv = ["demo", "--out", str(out), "--actors", "1-3,21", "--split", "train=1-3,test=21", "--workers", "2",
            "--n-iter", "2", "--epochs", "3"]
    code, text = _run_in_terminal(argv, _env(tmp), timeout=900)
    return code, text, out


@pytest.mark.slow
def test_the_demo_redraws_its_progress_on_a_terminal(demo_in_terminal):
    code, text, _ = demo_in_terminal
    assert code == 0, text[-3000:]
    # rich redraws the running tasks in place: cursor movements and line erasures, or carriage returns
    assert "\x1b[" in text and ("\x1b[2K" in text or "\r" in text.replace("\r\n", ""))
    plain = ANSI.sub("", text)
    for stage in ("synth video", "extract audio", "extract video", "rf search", "cnn train", "fer head"):
        assert stage in plain, stage
    assert "epochs" in plain and "loss" in plain and "fits" in plain and "clips" in plain


@pytest.mark.slow
def test_the_demo_is_quiet_about_its_own_video_only_clips_and_shows_no_nan(demo_in_terminal):
    code, text, out = demo_in_terminal
    assert code == 0, text[-3000:]
    plain = ANSI.sub("", text)
    assert "no audio features for" not in plain and "more clips without audio" not in plain
    # counted in the summary instead, as video-only where there are some (the demo's audio step reads none: "0 without
    # audio"; the label said "(video-only)" even of none)
    assert re.search(r"^extract audio: .*, \d+ without audio( \(video-only\))? in ", plain, re.MULTILINE), plain[-3000:]
    assert "listed below" not in plain
    assert not re.search(r"\bnan\b", plain, re.IGNORECASE)
    assert "| INFO " not in plain  # Prefect's own lines stay in the Prefect API, not on the console
    assert "XNNPACK" not in plain and "AutoGraph" not in plain
    table = plain[plain.index("models ranked by"):]
    for model in ("rf", "svc", "xgb", "lr", "cnn", "fer", "fusion-late", "lr/landmarks"):
        assert re.search(rf"^[ *] {re.escape(model)}\s", table, re.MULTILINE), model  # "*": the selected of its input
    assert len(re.findall(r"^\* ", table, re.MULTILINE)) == 3  # one selected model per input: audio, video, fusion


@pytest.mark.slow
def test_json_without_a_terminal_keeps_stdout_clean_and_progress_on_stderr(tiny_corpus: Path, tmp_path: Path):
    out = tmp_path / "store"
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "run", str(tiny_corpus), "--out", str(out),
                           "--modality", "audio", "--split", "train=1-3,test=21", "--model", "lr,rf", "--n-iter", "2",
                           "--workers", "2", "--json"],
                          env=_env(tmp_path), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout)  # nothing but the JSON document
    assert {m["model"] for m in payload["train"]["models"]} == {"lr", "rf"}
    assert "\x1b[" not in proc.stderr and "\r" not in proc.stderr  # no terminal: plain lines
    assert re.search(r"^extract audio: 120/120 clips done in ", proc.stderr, re.MULTILINE), proc.stderr
    assert re.search(r"^rf search: 6/6 fits done in .*2 candidates x 3 folds", proc.stderr, re.MULTILINE), proc.stderr
    assert "| INFO " not in proc.stderr
    assert len(proc.stderr.splitlines()) < 30  # a few lines, not a log
