"""The console's error lines: Prefect's lines about one of our errors give way to the command's one line."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys

import pytest

from emotion.core.errors import StoreError
from flows.cli import commands

MESSAGE = "no clips of the test actors of train=01-10,test=23 in the store"


def _record(msg: str, err: BaseException | None = None) -> logging.LogRecord:
    exc_info = None
    if err is not None:
        try:
            raise err
        except type(err):
            exc_info = sys.exc_info()
    record = logging.LogRecord("prefect.task_runs", logging.ERROR, __file__, 1, msg, None, exc_info)
    record.task_run_name = "train-lr"  # as Prefect's task run logger gives it (its console format names the task run)
    return record


def _shown(record: logging.LogRecord) -> bool:
    """Through the console handler's filters, in the order flows_module adds them."""
    return commands._DomainErrorsWithoutTraceback().filter(record) and commands._CONSOLE_LINES.filter(record)


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    monkeypatch.setattr(commands, "VERBOSE", [False])
    commands.held_errors(None)
    yield
    commands.held_errors(None)


def _prefect_lines_about_our_error() -> list[bool]:
    err = StoreError(MESSAGE)
    return [_shown(_record(f"Task run failed with exception: {err!r}", err)),
            _shown(_record(f"Finished in state Failed('Task run encountered an exception StoreError: {MESSAGE}')")),
            _shown(_record(f"Encountered exception during execution: {err!r}", err))]


def test_prefect_lines_about_the_error_the_command_reports_are_not_repeated():
    assert _prefect_lines_about_our_error() == [False, False, False]
    assert _shown(_record("Finished in state Failed('the disk is on fire')"))  # not ours: shown as it comes
    assert commands.held_errors(MESSAGE) == []


def test_held_lines_are_shown_when_the_command_does_not_report_their_error():
    _prefect_lines_about_our_error()
    held = commands.held_errors(None)  # the command succeeded after all
    assert len(held) == 3 and all(MESSAGE in line for line in held)
    _prefect_lines_about_our_error()
    assert len(commands.held_errors("another error")) == 3
    assert commands.held_errors(None) == []  # each is given once


def test_verbose_shows_every_line_as_it_comes(monkeypatch):
    monkeypatch.setattr(commands, "VERBOSE", [True])
    assert _prefect_lines_about_our_error() == [True, True, True]
    assert commands.held_errors(None) == []


def test_other_errors_keep_their_traceback():
    record = _record("Task run failed with exception: ValueError('x')", ValueError("x"))
    assert _shown(record) and record.exc_info is not None


def test_a_held_line_the_console_cannot_format_is_still_given_and_the_hold_empties():
    record = logging.LogRecord("prefect.task_runs", logging.ERROR, __file__, 1, f"Task run failed: {MESSAGE}", None, None)
    try:
        raise StoreError(MESSAGE)
    except StoreError:
        record.exc_info = sys.exc_info()  # no task_run_name: Prefect's console format does not fit it
    assert not _shown(record)
    held = commands.held_errors(None)
    assert len(held) == 1 and MESSAGE in held[0]
    assert commands.held_errors(None) == []


def test_a_failed_state_of_our_error_with_no_traceback_before_it_is_held():
    # a chunk task whose retry condition declines logs only its failed state, with no traceback first (a Dask
    # worker that cannot open the data root): one such line per chunk reached the console before the one line
    assert not _shown(_record(f"Finished in state Failed('Task run encountered an exception EmotionError: {MESSAGE}')"))
    assert not _shown(_record(f"Finished in state Failed(\"Task run encountered an exception StoreError: {MESSAGE}\")"))
    assert _shown(_record("Finished in state Failed('Task run encountered an exception OSError: disk on fire')"))
    assert commands.held_errors(MESSAGE) == []


def _extract_summary() -> dict:
    from flows.cli.render import extract_payload

    reject = {"path": "Actor_01/03-01-01-01-01-01-01.flac", "reason": "cannot decode audio: Format not recognised",
              "stage": "decode"}
    return extract_payload({"audio": {"processed": 90, "skipped": 0, "removed": 0, "rejected": 1, "seconds": 4.1,
                                      "workers": [], "feature_set": "seed-4bd9", "no_audio": 0, "rejects": [reject],
                                      "no_audio_clips": []}})


def test_a_run_whose_training_fails_prints_the_extraction_it_did_before_its_error(monkeypatch, capsys):
    """The extraction's summary (and its rejects: here why the train side cannot be trained) was lost with the
    training's error, although the features were stored."""
    from emotion.core.errors import UsageError, note_done
    from flows.cli import main

    def run_failing_in_training(args):
        exc = UsageError("grouped CV needs at least 3 training actors, got 2: give --cv-folds 2, or a split with "
                         "more train actors")
        note_done(exc, extract=_extract_summary(), notes=["no video clips under the data root: video models skipped"])
        raise exc

    monkeypatch.setattr(commands, "cmd_run", run_failing_in_training)
    code = main(["run", "data", "--out", "store"])
    out, err = capsys.readouterr()
    assert code == 2  # the training's error, as before
    assert out.splitlines() == [
        "extract audio: 90 processed, 0 skipped, 0 removed, 1 rejected, 0 without audio in 4.1 s "
        "(features seed-4bd9)",
        "  rejected Actor_01/03-01-01-01-01-01-01.flac: cannot decode audio: Format not recognised",
        "note: no video clips under the data root: video models skipped"]
    assert err.splitlines() == ["emotion: error: grouped CV needs at least 3 training actors, got 2: give --cv-folds 2, "
                                "or a split with more train actors"]
    assert main(["run", "data", "--out", "store", "--json"]) == 2
    failed, _ = _json_failure(capsys)  # --json: the failure as one object, with the same summary as a successful run's
    assert (failed["ok"], failed["exit_code"], failed["extract"], failed["notes"]) == (
        False, 2, _extract_summary(), ["no video clips under the data root: video models skipped"])


def _json_failure(capsys) -> tuple[dict, list[str]]:
    out, err = capsys.readouterr()
    return json.loads(out), err.splitlines()


def test_a_usage_error_with_json_is_a_json_object_on_stdout_too(capsys):
    from flows.cli import main

    code = main(["train", "store", "--n-iter", "0", "--json"])
    failed, err = _json_failure(capsys)
    assert code == 2 and failed == {"ok": False, "command": "train", "error": "--n-iter must be between 1 and 100000, "
                                    "got 0", "exit_code": 2}
    assert err == ["emotion: error: --n-iter must be between 1 and 100000, got 0"]  # stderr as before
    main(["train", "store", "--n-iter", "0"])  # without --json: nothing on stdout
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("argv, message", [
    (["train", "store", "--json", "--models", "lr"], "unrecognized arguments: --models lr"),
    (["run", "data", "--out", "o", "--modality", "sound", "--js"],  # --js: argparse reads it as --json
     "argument --modality: invalid choice: 'sound' (choose from 'audio', 'video', 'all')"),
    (["extract", "data", "--json"], "the following arguments are required: --out"),
])
def test_a_command_line_argparse_refuses_is_a_json_object_where_json_was_asked_for(argv, message, capsys):
    from flows.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    failed, err = _json_failure(capsys)
    assert exit_.value.code == 2 and failed == {"ok": False, "command": argv[0], "error": message, "exit_code": 2}
    assert err[0].startswith(f"usage: emotion {argv[0]} ") and err[-1] == f"emotion {argv[0]}: error: {message}"


@pytest.mark.parametrize("argv", [["server", "--json"], ["train", "store", "--models", "lr"],
                                  ["predict", "--jobs", "2", "--", "--json"]])
def test_no_json_where_the_command_takes_none_or_it_was_not_asked_for(argv, capsys):
    from flows.cli import main

    with pytest.raises(SystemExit):
        main(argv)
    assert capsys.readouterr().out == ""


def test_a_runtime_error_with_json_is_a_json_object_on_stdout_too(tmp_path, capsys):
    from flows.cli import main

    code = main(["train", str(tmp_path), "--model", "lr", "--json"])  # a store with nothing extracted
    failed, err = _json_failure(capsys)
    assert code == 1 and (failed["ok"], failed["command"], failed["exit_code"]) == (False, "train", 1)
    assert failed["error"].startswith("no features/audio rows for seed-") and set(failed) == {
        "ok", "command", "error", "exit_code"}
    assert err[-1] == f"emotion: train failed: {failed['error']}"


def test_an_interrupt_or_a_crash_with_json_is_a_json_object_on_stdout_too(monkeypatch, capsys):
    from flows.cli import main

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "cmd_train", interrupted)
    assert main(["train", "store", "--json"]) == 130
    failed, err = _json_failure(capsys)
    assert failed == {"ok": False, "command": "train", "error": "interrupted", "exit_code": 130}
    assert err == ["emotion: interrupted"]

    def crashes(args):
        raise RuntimeError("the disk is on fire\nand more")

    monkeypatch.setattr(commands, "cmd_train", crashes)
    with pytest.raises(RuntimeError):  # its traceback still follows, and Python exits 1
        main(["train", "store", "--json"])
    failed, _ = _json_failure(capsys)
    assert failed == {"ok": False, "command": "train", "error": "RuntimeError: the disk is on fire", "exit_code": 1}


# A migration revision no Prefect has (as one of a newer Prefect than this one). Not a real one: 27d8f4e1a6c9, the
# revision of Prefect 3.9.1 that this machine's ~/.prefect had when the tests installed 3.9.0, is known since 3.9.1
NEWER = "feedfacecafe"


def _prefect_db(path, revision: str) -> str:
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        db.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
    db.close()
    return f"sqlite+aiosqlite:///{path}"


def _current_revision() -> str:
    import re
    from pathlib import Path

    import prefect

    versions = Path(prefect.__file__).parent / "server" / "database" / "_migrations" / "versions" / "sqlite"
    return re.search(r'^revision = "(\w+)"', next(versions.glob("*.py")).read_text(), re.M).group(1)


def test_a_prefect_database_of_another_prefect_version_is_found_by_its_revision(tmp_path):
    newer = _prefect_db(tmp_path / "newer.db", NEWER)  # a revision this Prefect does not have
    assert commands.foreign_prefect_database(newer) == (tmp_path / "newer.db", NEWER)
    assert commands.foreign_prefect_database(_prefect_db(tmp_path / "ours.db", _current_revision())) is None
    assert commands.foreign_prefect_database(f"sqlite+aiosqlite:///{tmp_path}/absent.db") is None  # a first start
    assert commands.foreign_prefect_database("postgresql+asyncpg://u@host/db") is None  # not a file: Prefect's
    (tmp_path / "empty.db").touch()
    assert commands.foreign_prefect_database(f"sqlite+aiosqlite:///{tmp_path}/empty.db") is None  # no tables yet


def test_the_temporary_server_falls_back_to_a_throwaway_database_with_a_note(tmp_path, monkeypatch, capsys):
    import re

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    # set, then removed: monkeypatch then removes what the check sets (a delenv of an absent variable records
    # nothing, and the throwaway URL leaked into every later test's Prefect servers)
    monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", "unset")
    monkeypatch.delenv("PREFECT_SERVER_DATABASE_CONNECTION_URL")
    monkeypatch.setattr(commands, "_THROWAWAY_DB", [])
    from prefect.settings import PREFECT_API_URL, temporary_settings

    newer = _prefect_db(tmp_path / "newer.db", NEWER)
    commands.check_prefect_database(newer)  # the tests' own Prefect API is set: no temporary server, nothing to do
    assert "PREFECT_SERVER_DATABASE_CONNECTION_URL" not in __import__("os").environ
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # as a command with no Prefect API set
        commands.check_prefect_database(_prefect_db(tmp_path / "ours.db", _current_revision()))
        assert "PREFECT_SERVER_DATABASE_CONNECTION_URL" not in __import__("os").environ  # its own database: kept
        commands.check_prefect_database(newer)
    url = __import__("os").environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert url.startswith("sqlite+aiosqlite:///") and "emotion-prefect-" in url and commands._THROWAWAY_DB == [url]
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert re.match(rf"note: the Prefect database {re.escape(str(tmp_path))}/newer.db was migrated by another Prefect "
                    rf"version \(revision {NEWER} is unknown .*throwaway database.*PREFECT_HOME", err), err


def test_emotion_server_refuses_a_database_of_another_prefect_version_in_one_line(tmp_path, monkeypatch, capsys):
    from flows.cli import main

    newer = _prefect_db(tmp_path / "prefect.db", NEWER)
    real = commands.foreign_prefect_database
    monkeypatch.setattr(commands, "foreign_prefect_database", lambda url=None: real(newer))  # as the settings name it

    def started(*args):
        raise AssertionError("Prefect's server was started on a database it cannot migrate")

    monkeypatch.setattr("flows.cli.server.os.execve", started)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["server", "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("emotion: server failed: the Prefect database "), err
    assert NEWER in err and "PREFECT_HOME" in err


@pytest.mark.slow
def test_a_command_runs_on_a_throwaway_database_beside_one_of_another_prefect_version(tiny_corpus, tmp_path):
    """The whole command, as a user with a newer Prefect's ~/.prefect runs it: the note, the run, the database kept."""
    import os
    import subprocess

    home = tmp_path / "prefect-home"
    home.mkdir()
    _prefect_db(home / "prefect.db", NEWER)
    before = (home / "prefect.db").read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API") and "DATABASE" not in k}
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "extract", str(tiny_corpus), "--out", str(tmp_path / "s"),
                           "--modality", "audio", "--workers", "1"], env={**env, "PREFECT_HOME": str(home)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.startswith(f"note: the Prefect database {home / 'prefect.db'} was migrated by another Prefect"), \
        proc.stderr[:2000]
    assert "Can't locate revision" not in proc.stderr and "Traceback" not in proc.stderr
    assert "extract audio: 120 processed" in proc.stdout
    assert (home / "prefect.db").read_bytes() == before  # the other version's database is left as it was


def test_the_temporary_servers_own_output_goes_to_a_log_not_the_commands_terminal(tmp_path):
    """On a busy machine the temporary server's services printed SQLAlchemy tracebacks ("database is locked") into
    the command's output: its stdout and stderr are now a log file under PREFECT_HOME."""
    code = ("import os, sys\n"
            "from prefect.settings import PREFECT_API_URL, temporary_settings\n"
            "from flows.cli import commands\n"
            "with temporary_settings(restore_defaults={PREFECT_API_URL}):\n"
            "    commands._start_temporary_server()\n"
            "    from prefect.server.api.server import SubprocessASGIServer\n"
            "    pid = SubprocessASGIServer().server_process.pid\n"
            "    print(os.readlink(f'/proc/{pid}/fd/1'), os.readlink(f'/proc/{pid}/fd/2'), flush=True)\n"
            "    print('the command still writes here', file=sys.stderr, flush=True)\n")
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "home"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PREFECT_API_URL", None)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    log = str(tmp_path / "home" / "emotion-temporary-server.log")
    assert res.stdout.split() == [log, log]
    assert "the command still writes here" in res.stderr


def test_storage_that_fails_where_nothing_of_ours_named_it_is_one_line(monkeypatch, capsys):
    """A walkthrough: an S3 endpoint down, a missing bucket or refused credentials came out of extract, train and
    predict as botocore's or s3fs's traceback."""
    from flows.cli import main

    botocore = pytest.importorskip("botocore.exceptions")

    def down(args):
        raise botocore.EndpointConnectionError(endpoint_url="http://127.0.0.1:9/bucket/store/runs")

    monkeypatch.setattr(commands, "cmd_predict", down)
    assert main(["predict", "x.wav", "--store", "s3://bucket/store"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['emotion: predict failed: EndpointConnectionError: Could not connect to the endpoint URL: '
                   '"http://127.0.0.1:9/bucket/store/runs"']

    def refused(args):
        raise PermissionError("Forbidden")

    monkeypatch.setattr(commands, "cmd_predict", refused)
    assert main(["predict", "x.wav", "--store", "s3://bucket/store"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == ["emotion: predict failed: PermissionError: Forbidden"]

    def bug(args):
        raise KeyError("ours")

    monkeypatch.setattr(commands, "cmd_predict", bug)
    with pytest.raises(KeyError):  # anything else keeps its traceback
        main(["predict", "x.wav", "--store", "s3://bucket/store"])
