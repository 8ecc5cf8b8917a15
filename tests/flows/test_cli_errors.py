"""The console's error lines: Prefect's lines about one of our errors give way to the command's one line."""

from __future__ import annotations

import logging
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


def _prefect_db(path, revision: str) -> str:
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        db.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
    db.close()
    return f"sqlite+aiosqlite:///{path}"


def test_a_prefect_database_migrated_by_another_prefect_fails_at_once_naming_the_file(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    import prefect

    from emotion.core.errors import EmotionError

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    newer = _prefect_db(tmp_path / "newer.db", "27d8f4e1a6c9")  # a revision this Prefect does not have
    with pytest.raises(EmotionError, match=rf"the Prefect database {re.escape(str(tmp_path))}/newer.db was migrated "
                                           r"by another Prefect version \(revision 27d8f4e1a6c9 .*PREFECT_HOME"):
        commands.check_prefect_database(newer)
    versions = Path(prefect.__file__).parent / "server" / "database" / "_migrations" / "versions" / "sqlite"
    current = re.search(r'^revision = "(\w+)"', next(versions.glob("*.py")).read_text(), re.M).group(1)
    commands.check_prefect_database(_prefect_db(tmp_path / "ours.db", current))  # a revision of ours: no error
    commands.check_prefect_database(f"sqlite+aiosqlite:///{tmp_path}/absent.db")  # a first start: no error
    commands.check_prefect_database("postgresql+asyncpg://u@host/db")  # not a file: Prefect's to check
