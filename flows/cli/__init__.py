"""The ``emotion`` command line: synth, extract, train, evaluate, run, demo, predict, server, deploy.

Every command prints a readable summary (``--json`` for a machine-readable
one) and exits 0 on success, 1 when the pipeline fails, and 2 with a one-line
message on bad usage or a missing path. With ``--json`` a failure is a JSON
object on stdout too (``{"ok": false, "command", "error", "exit_code"}``; ``predict`` with a file it could not
predict adds its per-file list as ``predictions`` and ``failed``).

The parts apart: :mod:`flows.cli.parser` (the options; imports nothing heavy,
so ``--help`` and usage errors answer at once), :mod:`flows.cli.options`
(options -> typed parameters), :mod:`flows.cli.commands` and
:mod:`flows.cli.server` (what each command does; imported only once the
command line is understood), :mod:`flows.cli.render` (what is printed).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import importlib
import os
import sys
from collections.abc import Iterator

# The last exit handler (the first registered): the objects left as the interpreter ends are spared its last
# garbage collections, which only free memory the process gives back anyway: 0.3 s of a 1.9 s rerun with nothing
# to do. Every other exit handler (Prefect's, Dask's, logging's) has run before; each module is still torn down.
atexit.register(gc.freeze)

# Quiet defaults, set before Prefect, Dask or TensorFlow are imported.
for _k, _v in {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DASK_LOGGING__DISTRIBUTED": "warning",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    # the temporary Prefect server (no PREFECT_API_URL) gets 2 minutes to start, not 20 s: on 2 busy cores
    # (a training run beside it) it took longer, and the command died with "Timed out ... ephemeral Prefect API"
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # BLAS on one thread, as in Dask's worker processes (its nanny sets the same before starting them): OpenBLAS
    # splits a product differently on 2 threads, and float32 features then differ in their last bits (up to 1e-4 on
    # MFCC statistics of real clips). Clips recomputed in this process (the in-process cluster of a small rerun,
    # `emotion predict`) thus get the bits the full extraction's workers gave them under the same feature version.
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}.items():
    os.environ.setdefault(_k, _v)

from emotion.core.errors import EmotionError, UsageError, done_before  # noqa: E402
from flows.cli.parser import build_parser, check_dask_address, check_numbers, json_asked  # noqa: E402

# the module holding each command's ``cmd_<name>``
COMMAND_MODULES = {"server": "flows.cli.server", "deploy": "flows.cli.server"}


@contextlib.contextmanager
def _progress_display(args: object) -> Iterator[None]:
    """Progress of the long stages on stderr: redrawn in place on a terminal, a few plain lines otherwise."""
    from flows.cli import render
    from flows.console import display
    from tasks import progress

    shown = display(getattr(args, "command", "") not in ("server", "deploy"))
    if shown is None:
        yield
        return
    with shown, progress.use(shown):
        render.before_output(shown.close)  # the summary is printed after the display's last redraw, not into it
        try:
            yield
        finally:
            render.forget(shown.close)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # named under the command's own usage (argparse gave the top level's `emotion [-h] COMMAND ...`)
            parser.subcommand(args.command).error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # argparse's usage error (its lines on stderr): as JSON too where --json was asked for
        message = getattr(exc, "usage_error", None)
        command = json_asked(parser, sys.argv[1:] if argv is None else argv)
        if message is not None and command is not None:
            _print_json_failure(command, message, 2, {})
        raise
    try:
        check_numbers(args)
        check_dask_address(args)
        module = importlib.import_module(COMMAND_MODULES.get(args.command, "flows.cli.commands"))
        if hasattr(module, "VERBOSE"):
            module.VERBOSE[0] = bool(getattr(args, "verbose", False))
        with _progress_display(args):
            code = int(getattr(module, f"cmd_{args.command}")(args))
        _held_errors(None)
        return code
    except UsageError as exc:
        return _failed(args, exc, 2, f"emotion: error: {exc}")
    except EmotionError as exc:
        return _failed(args, exc, 1, f"emotion: {args.command} failed: {exc}")
    except KeyboardInterrupt as exc:
        return _failed(args, exc, 130, "emotion: interrupted", message="interrupted")
    except Exception as exc:  # not ours: its traceback follows (and Python's exit status 1)
        from emotion.core.errors import storage_errors

        if isinstance(exc, storage_errors()) and not getattr(args, "verbose", False):
            # storage (a file, object storage) failed where nothing of ours named it: one line, the traceback with
            # --verbose (an endpoint down, a missing bucket, refused credentials)
            why = " ".join(str(exc).split()) or type(exc).__name__
            return _failed(args, exc, 1, f"emotion: {args.command} failed: {type(exc).__name__}: {why}")
        _held_errors(None)
        _report_failure(args, exc, 1, next(iter(f"{type(exc).__name__}: {exc}".splitlines()), ""))
        raise
    except BaseException:
        _held_errors(None)
        raise
    finally:
        commands = sys.modules.get("flows.cli.commands")
        if commands is not None:
            commands.end_run_settings()


def _failed(args: argparse.Namespace, exc: BaseException, code: int, line: str, message: str | None = None) -> int:
    """The end of a command that failed with ``exc``: what it had done, or with ``--json`` the failure as JSON, on
    stdout (:func:`_report_failure`), then its one ``line`` on stderr; ``code``, the exit status. ``message``: the
    error in the JSON (default: ``exc``'s own, whose lines from Prefect are not repeated)."""
    _held_errors(None if message is not None else str(exc))
    _report_failure(args, exc, code, str(exc) if message is None else message)
    print(line, file=sys.stderr)
    return code


def _report_failure(args: argparse.Namespace, exc: BaseException, code: int, message: str) -> None:
    """On stdout: with ``--json``, the failure as one JSON object (:func:`_print_json_failure`); else the summary of
    what was done before ``exc`` (a run's extraction, whose training then failed), as on success."""
    done = done_before(exc)
    if getattr(args, "json", False):
        _print_json_failure(args.command, message, code, done)
    elif done:
        from flows.cli import render

        render.print_run_start(done)
    sys.stdout.flush()  # before the error line on stderr


def _print_json_failure(command: str, message: str, code: int, done: dict[str, object]) -> None:
    """``{"ok": false, "command": ..., "error": <the one-line message>, "exit_code": N}`` and what was done before
    the error (``extract``, ``notes``: as a successful summary gives them). No successful summary has ``ok``."""
    from emotion.core import jsontext

    print(jsontext.dumps({"ok": False, "command": command, "error": message, "exit_code": code, **done},
                         indent=2, default=str), flush=True)


def _held_errors(told: str | None) -> None:
    """Prints Prefect's error lines held back from the console, but those about ``told`` (the error our one-line
    message is about to give)."""
    commands = sys.modules.get("flows.cli.commands")
    for line in getattr(commands, "held_errors", lambda _: [])(told):
        print(line, file=sys.stderr)
