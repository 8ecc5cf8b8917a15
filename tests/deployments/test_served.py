"""The flows as served: a run failing on one of our errors says so in one line and ends Failed with its message;
other exceptions keep their traceback; a run the runner cancels does not end its log "Finished in state Running()".
(End to end, through `emotion deploy`: tests/flows/test_deploy.py.)"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deployments import build, load_specs
from deployments.served import LOG_FILTERS, SERVED
from emotion.core.errors import StoreError, UsageError
from flows.registry import FLOWS

ROOT = Path(__file__).resolve().parents[2]


def _record(msg: str, exc: BaseException | None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, msg, None, exc_info)


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001 - a real traceback to strip or keep
        return caught


def _formatted(record: logging.LogRecord) -> str | None:
    """What a handler with a served run's filters writes for ``record``, or None where they drop it."""
    handler = logging.StreamHandler()
    for kind in LOG_FILTERS:
        handler.addFilter(kind())
    return handler.format(record) if handler.filter(record) else None


def test_our_errors_are_logged_without_their_traceback_and_others_keep_it():
    ours = _raised(UsageError("data root '/gone' is not a folder"))
    line = _formatted(_record(f"Task run failed with exception: {ours!r}", ours))
    assert line == "Task run failed with exception: UsageError(\"data root '/gone' is not a folder\")"
    other = _raised(RuntimeError("a bug"))
    line = _formatted(_record("Encountered exception during execution: RuntimeError('a bug')", other))
    assert line is not None and "Traceback (most recent call last)" in line and "RuntimeError: a bug" in line
    assert _formatted(_record("Finished in state Failed('x')", None)) == "Finished in state Failed('x')"


def test_prefects_lines_about_our_error_tell_its_advice_as_a_served_run_follows_it():
    from emotion.models.search import too_few_cv_actors

    ours = _raised(UsageError(too_few_cv_actors([1, 2], 3)))
    handler = logging.StreamHandler()
    for kind in LOG_FILTERS:
        handler.addFilter(kind())
    failed = _record("Task run failed with exception: %r - Retries are exhausted", ours)
    failed.args = (ours,)
    assert handler.filter(failed) and handler.format(failed) == (
        "Task run failed with exception: UsageError('grouped CV needs at least 3 training actors, got 2 (01-02): "
        "set search.cv_folds to 2, or split to one with more train actors') - Retries are exhausted")
    # the task's end, which quotes the error without carrying it: told the same way, once the error was seen
    end = _record(f"Finished in state Failed('Task run encountered an exception UsageError: {ours}')", None)
    assert handler.filter(end) and "--cv-folds" not in handler.format(end)
    assert "set search.cv_folds to 2" in handler.format(end)


def test_a_note_that_gives_advice_is_logged_as_a_served_run_follows_it():
    """The pipeline's note on skipped video models (an Advised message, logged at INFO as it is) tells the split to
    set as the deployment's parameter; any other line is left as it is."""
    from flows.run import skip_video_note

    note = skip_video_note((1, 5), "train=1-16,test=17-20")
    record = logging.LogRecord("prefect.flow_runs", logging.INFO, __file__, 1, note, None, None)
    assert _formatted(record) == ("video and fused models skipped: no video clips of the test actors of "
                                  "train=01-16,test=17-20 in the store (actors present: 01,05); set split to e.g. "
                                  "train=01,test=05")
    plain = "no video clips under the data root: video models skipped"
    assert _formatted(logging.LogRecord("prefect.flow_runs", logging.INFO, __file__, 1, plain, None, None)) == plain


def test_a_note_quoting_an_error_seen_before_still_tells_all_its_advice_served():
    """A note logged after one of our errors whose advice the note also gives: each of the note's advice is told as a
    served run follows it (the error's filter rewrote the note into plain text first, and its other advice was left
    in the command line's words)."""
    from emotion.core.errors import Advice, Advised

    seen, other = Advice("give --cv-folds 2", "set search.cv_folds to 2"), Advice("give --split X", "set split to X")
    handler = logging.StreamHandler()
    for kind in LOG_FILTERS:
        handler.addFilter(kind())
    ours = _raised(UsageError("too few actors: give --cv-folds 2", advice=seen))
    assert handler.filter(_record("Task run failed with exception: UsageError", ours))
    note = logging.LogRecord("prefect.flow_runs", logging.INFO, __file__, 1,
                             Advised("skipped: give --cv-folds 2, or give --split X", seen, other), None, None)
    assert handler.filter(note) and handler.format(note) == "skipped: set search.cv_folds to 2, or set split to X"


def test_prefects_last_word_on_a_run_that_failed_on_our_error_is_dropped():
    # "Engine execution exited with unexpected exception": the failure is told already (and is not unexpected);
    # it carried the run's random name, as Prefect's engine logs it with the run's logger from before the renaming
    ours = _raised(StoreError("no clips of the test actors"))
    assert _formatted(_record("Engine execution exited with unexpected exception", ours)) is None
    assert _formatted(_record("Execution of flow run 'a-b-c' exited with unexpected exception", ours)) is None
    other = _raised(RuntimeError("a bug"))
    assert "RuntimeError: a bug" in (_formatted(_record("Engine execution exited with unexpected exception", other))
                                     or "")


def test_a_task_run_cancelled_with_its_flow_run_is_logged_at_info_not_error():
    # an extraction chunk under way when the run is cancelled ends Cancelled (tasks.extract.run_chunk); Prefect logs
    # any end but Completed at ERROR
    cancelled = _record("Finished in state Cancelled('audio clips 1-40 not done: the flow run stopped')", None)
    cancelled.task_run_id = "t"
    assert _formatted(cancelled) is not None and cancelled.levelno == logging.INFO and cancelled.levelname == "INFO"
    failed = _record("Finished in state Failed('Task run encountered an exception OSError: gone')", None)
    failed.task_run_id = "t"
    assert _formatted(failed) is not None and failed.levelno == logging.ERROR


def test_every_flow_is_served_with_its_name_run_names_and_parameters():
    assert set(SERVED) == set(FLOWS)
    for name, served in SERVED.items():
        flow = FLOWS[name]
        assert served is not flow and served.fn.__wrapped__ is flow.fn
        assert (served.name, served.flow_run_name, served.parameters, served.version) == \
               (flow.name, flow.flow_run_name, flow.parameters, flow.version)
        assert type(served.task_runner) is type(flow.task_runner)


def test_the_deployments_entrypoints_load_the_served_flows(tmp_path):
    """A served run is a process that loads its flow from the deployment's entrypoint, as Prefect's runner starts it
    (a file path relative to the deploy command's folder): that must be the served flow, not the flow itself."""
    body = "deployments:\n" + "".join(
        f"  - {{name: d{i}, flow: {name}, cron: '0 1 * * *', parameters: {{out: /o"
        + (f", data: {tmp_path}" if "data" in FLOWS[name].parameters.properties else "") + "}}\n"
        for i, name in enumerate(FLOWS))
    (tmp_path / "d.yaml").write_text(body)
    entrypoints = {d.name: d.entrypoint for d in build(load_specs(tmp_path / "d.yaml"))}
    code = ("import json, sys\nfrom prefect.flows import load_flow_from_entrypoint\n"
            "out = {}\nfor ep in json.loads(sys.argv[1]):\n"
            "    f = load_flow_from_entrypoint(ep, use_placeholder_flow=False)\n"
            "    w = getattr(f.fn, '__wrapped__', None)\n"
            "    out[ep] = [f.name, f'{w.__module__}.{w.__name__}' if w else None]\n"
            "print(json.dumps(out))")
    res = subprocess.run([sys.executable, "-c", code, json.dumps(list(entrypoints.values()))], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr[-3000:]
    loaded = json.loads(res.stdout.strip().splitlines()[-1])
    for i, name in enumerate(FLOWS):
        fn = FLOWS[name].fn
        assert loaded[entrypoints[f"d{i}"]] == [name, f"{fn.__module__}.{fn.__name__}"], entrypoints[f"d{i}"]


@pytest.fixture(scope="module")
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def log_handlers():
    """The test process's log handlers, freed afterwards of the filters a served run puts on them."""
    yield
    for lg in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for h in getattr(lg, "handlers", []):
            for f in [f for f in h.filters if isinstance(f, LOG_FILTERS)]:
                h.removeFilter(f)


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [caplog.handler.format(r) for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.slow
def test_a_served_run_failing_on_our_error_ends_failed_with_its_message_in_one_line(prefect_api, log_handlers,
                                                                                  tmp_path, caplog):
    gone = tmp_path / "gone"
    state = SERVED["extract"](data=str(gone), out=str(tmp_path / "o"), return_state=True)
    message = f"data root '{gone}' does not exist"
    assert state.is_failed() and state.message == message
    errors = _errors(caplog)
    # among the errors, not necessarily the last: Prefect may log one about a server of an earlier test that is gone
    assert any(f"extract failed: {message}" in e for e in errors), errors
    assert errors and not any("Traceback" in e for e in errors), errors


@pytest.mark.slow
def test_a_served_run_failing_on_too_few_train_actors_for_its_folds_tells_the_parameters_to_set(
        prefect_api, log_handlers, tmp_path, caplog):
    """The pipeline checks its split against the clips' names before extracting (none is read): two train actors
    cannot give the three actor-grouped folds of the default search."""
    data = tmp_path / "data"
    data.mkdir()
    for actor in (1, 2, 21):
        (data / f"03-01-01-01-01-01-{actor:02d}.wav").write_bytes(b"")
    state = SERVED["emotion-pipeline"](data=str(data), out=str(tmp_path / "o"), split="train=1-2,test=21",
                                       models=["lr"], modality="audio", return_state=True)
    message = (f"grouped CV needs at least 3 training actors, got 2 (01-02): set search.cv_folds to 2, or split to "
               f"one with more train actors (the clips under {data} have 2 of the train actors of "
               "train=01-02,test=21)")
    assert state.is_failed() and state.message == message
    assert any(f"emotion-pipeline failed: {message}" in e for e in _errors(caplog))
    logged = [caplog.handler.format(r) for r in caplog.records]
    assert not any("--" in line for line in logged), logged  # no command-line flag anywhere in the run's log


@pytest.mark.slow
def test_a_served_run_failing_on_anything_else_keeps_the_traceback(prefect_api, log_handlers, tmp_path, caplog,
                                                                   monkeypatch):
    import flows.extract

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(flows.extract, "_extract_locked", broken)
    (tmp_path / "data").mkdir()
    state = SERVED["extract"](data=str(tmp_path / "data"), out=str(tmp_path / "o"), return_state=True)
    assert state.is_failed() and "RuntimeError: a bug" in str(state.message)
    assert any("Traceback" in e and "RuntimeError: a bug" in e for e in _errors(caplog))


def _run_record(msg: str) -> logging.LogRecord:
    """A record of the flow run's own logger, as Prefect's engine logs a run's end with it."""
    record = logging.LogRecord("prefect.flow_runs", logging.INFO, __file__, 1, msg, None, None)
    record.flow_run_name, record.flow_run_id = "extract-audio-seed-1a2b3c", "f00"
    return record


def test_the_engines_end_line_for_a_run_the_runner_cancels_is_dropped():
    """A served run cancelled (from the UI, or by stopping `emotion deploy`) is ended by the runner, which records it
    Cancelled; the run's process logged "Finished in state Running()" on its way out, in the terminal and the UI."""
    assert _formatted(_run_record("Finished in state Running()")) is None
    for end in ["Finished in state Completed()", "Finished in state Failed('x')", "Finished in state Cancelled()",
                "Flow run was cancelled."]:
        assert _formatted(_run_record(end)) == end


@pytest.mark.slow
def test_a_served_pipeline_that_skips_its_video_models_logs_the_split_to_set(prefect_api, log_handlers, tmp_path,
                                                                            caplog, monkeypatch):
    """The video clips stored lack the split's test actors: the pipeline skips its video models with a note, which a
    served run logs with the deployment's parameter (split), not the command line's --split. (The extraction and the
    training are not what is checked: stand-ins here.)"""
    import flows.run as run

    class Summary:
        def to_dict(self):
            return {"processed": 2, "skipped": 0}

    monkeypatch.setattr(run, "extract", lambda *a, **k: {"video": Summary()})
    monkeypatch.setattr(run, "stored_extraction", lambda out, dataset, key: ("v1", (1, 5)))
    monkeypatch.setattr(run, "train_models", lambda *a, **k: {"models": []})
    data = tmp_path / "data"
    data.mkdir()
    for actor in (1, 21):
        (data / f"01-01-01-01-01-01-{actor:02d}.mp4").write_bytes(b"")
    caplog.set_level(logging.INFO)
    state = SERVED["emotion-pipeline"](data=str(data), out=str(tmp_path / "o"), split="train=1,test=21",
                                       models=["cnn"], return_state=True)
    assert state.is_completed(), state.message
    logged = [caplog.handler.format(r) for r in caplog.records]
    assert any(line.endswith("video and fused models skipped: no video clips of the test actors of train=01,test=21 "
                             "in the store (actors present: 01,05); set split to e.g. train=01,test=05")
               for line in logged), logged
    assert not any("--split" in line for line in logged), logged
