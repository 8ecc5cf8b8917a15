"""The flows as ``emotion deploy`` serves them: a run that fails on one of our errors says so in one line.

A served run is a process of its own (``python -m prefect.engine``, started by the runner of ``emotion deploy``),
which loads its flow from the deployment's entrypoint, a flow of this module. Its log reaches the deploy process's
terminal and the run's page in the Prefect UI through Prefect's own handlers: the command line's filters
(:mod:`flows.cli.commands`), which give our errors one line, are not there. So each served flow is the flow of
:mod:`flows.registry` (same name, run names, parameters, task runner) with its function wrapped:

- a run that raises one of our errors (:mod:`emotion.core.errors`: bad input, told in one line) logs
  ``extract failed: <the message>`` and ends Failed with the message as its state message; the lines Prefect logs
  about the error on its way (a task's failure, a subflow's) keep its message and lose its traceback;
- the advice an error gives is told in a deployment's terms (:meth:`EmotionError.served_message`: ``set
  search.cv_folds to 2``, ``run the extract flow with data=..., modality=audio first``), not the command line's
  (``give --cv-folds 2``), in that last line, the state message and Prefect's lines about the error; so is that of
  a note the flow logs (:class:`ServedNotes`: the pipeline's on skipped video models, ``set split to e.g. ...``);
- any other exception is Prefect's as before: the run fails with the traceback in its log;
- a run the runner cancels does not end its log with Prefect's "Finished in state Running()"
  (:class:`NoEndWhileRunning`): the runner's "Cancelled flow run 'NAME'", in the deploy terminal, says how it ended;
  its extraction chunks under way end Cancelled, logged at INFO (:class:`CancelledIsNoError`), not as errors.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from typing import Any

from prefect import Flow, get_run_logger
from prefect.states import Failed

from emotion.core.errors import Advice, Advised, EmotionError, served_text
from flows.registry import FLOWS

# Prefect's last word on a run whose flow raised ("Engine execution exited with unexpected exception", and the
# same from its engine's signal handler): for one of our errors, the outcome is told already, and is not unexpected
_ENGINE_EXIT = re.compile(r"^(Engine execution|Execution of flow run \S+) exited with unexpected exception")


class OneLineErrors(logging.Filter):
    """A log record about one of our errors keeps its message, not the traceback, and tells the error's advice as
    a served run's user follows it (:meth:`EmotionError.served_message`); Prefect's "exited with unexpected
    exception" about one is dropped. Records about any other exception pass as they are.

    The advice of the errors seen is remembered: Prefect's later lines that quote the error without carrying it
    (``Finished in state Failed('Task run encountered an exception UsageError: ...')``) tell it the same way."""

    def __init__(self) -> None:
        super().__init__()
        self._advice: dict[Advice, None] = {}  # of the errors seen, in order

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if isinstance(record.exc_info, tuple) else None
        if isinstance(exc, EmotionError):
            if _ENGINE_EXIT.match(record.getMessage()):
                return False
            record.exc_info = None
            record.exc_text = None
            self._advice.update(dict.fromkeys(exc.advice))
        if self._advice:
            text = record.getMessage()
            served = served_text(text, self._advice)
            if served != text:
                record.msg, record.args = served, None
        return True


class ServedNotes(logging.Filter):
    """A log line that is an :class:`Advised` message, as a flow logs a note that says what to do (the pipeline's
    on skipped video models: ``give e.g. --split ...``), tells its advice as a served run's user follows it
    (:meth:`Advised.served_message`: ``set split to e.g. ...``). Any other line passes as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, Advised) and record.msg.advice:
            record.msg, record.args = served_text(record.getMessage(), record.msg.advice), None
        return True


class NoEndWhileRunning(logging.Filter):
    """Drops the engine's "Finished in state Running()" about a flow run.

    A served run that the runner cancels (from the UI, or as ``emotion deploy`` stops) is ended by the runner:
    the run's process logs "Flow run was cancelled." and exits, its state left to the runner, which records it
    Cancelled and then says so in the deploy terminal ("Cancelled flow run 'NAME'"). On its way out, the run's
    process still logged its state as it saw it, Running, as the run's last line in the terminal and in the UI.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (hasattr(record, "flow_run_id") and record.getMessage().startswith("Finished in state Running("))


class CancelledIsNoError(logging.Filter):
    """Logs a task run's "Finished in state Cancelled(...)" at INFO, not ERROR.

    Prefect logs a task run's end at ERROR whenever it did not complete. A chunk of an extraction ends Cancelled
    when its flow run is stopped under it (:func:`tasks.extract.run_chunk`): part of the run's cancellation, which
    the run's own lines tell, not an error of its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (record.levelno == logging.ERROR and hasattr(record, "task_run_id")
                and record.getMessage().startswith("Finished in state Cancelled(")):
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


LOG_FILTERS: tuple[type[logging.Filter], ...] = (ServedNotes, OneLineErrors, NoEndWhileRunning, CancelledIsNoError)
"""The filters a served run puts on its log handlers, in order (a note's own advice first: the errors' filter makes
any line that quotes an error's advice plain text)."""


def served_log() -> None:
    """Put the filters of :data:`LOG_FILTERS` on every log handler of this process: the console's and the Prefect
    API's (which Prefect attaches to its flow and task run loggers, not to the root logger)."""
    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger))]
    for handler in {h for lg in loggers for h in lg.handlers}:
        for kind in LOG_FILTERS:
            if not any(isinstance(f, kind) for f in handler.filters):
                handler.addFilter(kind())


def served(flow: Flow[..., Any]) -> Flow[..., Any]:
    """``flow`` as served: a copy (:meth:`Flow.with_options`) whose function fails on our errors in one line.

    The copy's function is named as this module's attribute that holds it, so that a deployment's entrypoint,
    which Prefect derives from the function (``deployments/served.py:extract``), loads the served flow."""
    fn = flow.fn

    @functools.wraps(fn)  # the signature Prefect reads (parameters, validation) is the flow's own
    def run(*args: Any, **kwargs: Any) -> Any:
        served_log()  # this process runs this one flow run: its log, all of it
        try:
            return fn(*args, **kwargs)
        except EmotionError as exc:
            message = exc.served_message()  # its advice in the deployment's parameters, not the command line's
            get_run_logger().error(f"{flow.name} failed: {message}")
            return Failed(message=message, data=exc)

    run.__module__ = __name__
    run.__qualname__ = fn.__name__
    # the annotations as types: Prefect evaluates those left as strings (``from __future__ import annotations``) in
    # the globals of the function it holds, which are this module's and lack the flow module's types
    run.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    copy = flow.with_options()
    copy.fn = run
    copy.__module__ = __name__
    copy._entrypoint = f"{__name__}:{fn.__name__}"
    return copy


extract = served(FLOWS["extract"])
train_audio = served(FLOWS["train-audio"])
run_pipeline = served(FLOWS["emotion-pipeline"])
evaluate_loso = served(FLOWS["evaluate-loso"])

SERVED: dict[str, Flow[..., Any]] = {f.name: f for f in (extract, train_audio, run_pipeline, evaluate_loso)}
"""Every flow of :data:`flows.registry.FLOWS` by its Prefect name, as served."""
