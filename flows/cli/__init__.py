"""The ``emotion`` command line: synth, extract, train, evaluate, run, demo, predict, server, deploy.

Every command prints a readable summary (``--json`` for a machine-readable
one) and exits 0 on success, 1 when the pipeline fails, and 2 with a one-line
message on bad usage or a missing path.

The parts apart: :mod:`flows.cli.parser` (the options; imports nothing heavy,
so ``--help`` and usage errors answer at once), :mod:`flows.cli.options`
(options -> typed parameters), :mod:`flows.cli.commands` and
:mod:`flows.cli.server` (what each command does; imported only once the
command line is understood), :mod:`flows.cli.render` (what is printed).
"""

from __future__ import annotations

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

from emotion.core.errors import EmotionError, UsageError  # noqa: E402
from flows.cli.parser import build_parser, check_dask_address, check_numbers  # noqa: E402

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
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named under the command's own usage (argparse gave the top level's `emotion [-h] COMMAND ...`)
        parser.subcommand(args.command).error(f"unrecognized arguments: {' '.join(unknown)}")
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
        _held_errors(str(exc))
        print(f"emotion: error: {exc}", file=sys.stderr)
        return 2
    except EmotionError as exc:
        _held_errors(str(exc))
        print(f"emotion: {args.command} failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        _held_errors(None)
        print("emotion: interrupted", file=sys.stderr)
        return 130
    except BaseException:
        _held_errors(None)
        raise
    finally:
        commands = sys.modules.get("flows.cli.commands")
        if commands is not None:
            commands.end_run_settings()


def _held_errors(told: str | None) -> None:
    """Prints Prefect's error lines held back from the console, but those about ``told`` (the error our one-line
    message is about to give)."""
    commands = sys.modules.get("flows.cli.commands")
    for line in getattr(commands, "held_errors", lambda _: [])(told):
        print(line, file=sys.stderr)
