"""What each pipeline command does: synth, extract, train, run, demo, evaluate, predict.

Commands turn options into typed parameters (:mod:`flows.cli.options`), call
the flows, and print through :mod:`flows.cli.render`.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from emotion.audio.synth import SynthParams, write_corpus
from emotion.core import jsontext
from emotion.core.errors import EmotionError, UsageError, done_before, note_done
from emotion.core.ids import MAX_ACTOR
from emotion.core.names import FUSION_MODELS, VIDEO_MODELS, default_models, parse_models, split_models
from emotion.core.splits import ActorSplit, parse_actors
from flows.cli.options import (
    check_feature_models,
    data_root,
    feature_params,
    frame_params,
    new_dir,
    not_a_data_folder,
    out_dir,
    search_params,
    split_text,
    store_dir,
    video_params,
)
from flows.cli.parser import run_recipe
from flows.cli.render import (
    emit,
    extract_payload,
    print_extract,
    print_loso,
    print_predictions,
    print_run,
    print_run_recipe,
    print_train,
)


class _DomainErrorsWithoutTraceback(logging.Filter):
    """Console logs keep the message of our own errors (bad input) but not their traceback.

    The Prefect API still records the full traceback with the failed run.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], EmotionError):
            record.emotion_error = str(record.exc_info[1])  # for _ConsoleLines: the command's own line will say it
            record.exc_info = None
            record.exc_text = None
        return True


class _ConsoleLines(logging.Filter):
    """What of Prefect's log reaches the console: warnings and errors, and, for each flow run, one line of ours
    with its name (and, against a lasting server, its page in the Prefect UI), so the run is found there; and the
    lines of the runner of ``emotion deploy`` (a run it cancelled, or reported crashed; its stopping), which are
    that terminal's word on how a served run ended. ``--verbose``: every line. The Prefect API gets every line
    either way."""

    def filter(self, record: logging.LogRecord) -> bool:
        if VERBOSE[0]:
            return True
        if INTERRUPTED[0]:  # Ctrl-C: the command ends with "emotion: interrupted", not Prefect's lines on its way out
            return False
        if record.levelno >= logging.ERROR:
            return not _hold(record)
        if record.levelno >= logging.WARNING:
            return True
        if record.name == "prefect.runner" or record.name.startswith("prefect.runner."):
            return record.levelno >= logging.INFO
        name = getattr(record, "flow_run_name", None)
        if name and str(record.msg).startswith(("Beginning flow run", "Beginning subflow run")):
            print(flow_run_line(str(name), _run_id(record)), file=sys.stderr, flush=True)
        return False


def _run_id(record: logging.LogRecord) -> str:
    """The id of the flow run a ``Beginning ... run`` record announces.

    A subflow called inside a task run (each step of the pipeline) is announced with the name of its own run but
    the id of its parent's (Prefect logs it through the task run's logger); the record is logged inside the
    subflow's own run context, which has its id.
    """
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    run = ctx.flow_run if ctx is not None else None
    if run is not None and run.name == getattr(record, "flow_run_name", None):
        return str(run.id)
    return str(getattr(record, "flow_run_id", ""))


# Prefect's error lines about one of our errors (bad input): the task's failure, its final state, the flow's.
# They are held back from the console, as the command ends with that error's one-line message; should the
# command succeed after all, they are printed then (held_errors), never lost.
_HELD: list[logging.LogRecord] = []


_FAILED_STATE = re.compile(r"run encountered an exception (\w+): ")


def _our_failed_state(msg: str) -> bool:
    """``msg`` is Prefect's failed state of a task run that raised one of our errors. A task whose retry condition
    declines logs only that, with no traceback to recognise our error by first (a chunk that failed on a Dask
    worker: the data root it cannot open)."""
    found = _FAILED_STATE.search(msg)
    return found is not None and found[1] in _error_names(EmotionError)


def _error_names(cls: type[Exception]) -> set[str]:
    names = {cls.__name__}
    for sub in cls.__subclasses__():
        names |= _error_names(sub)
    return names


def _hold(record: logging.LogRecord) -> bool:
    """Hold ``record`` if it is about one of our errors: it carries one, or repeats the message of one held."""
    ours = {str(m) for r in _HELD if (m := getattr(r, "emotion_error", None))}
    msg = record.getMessage()
    if not getattr(record, "emotion_error", None) and not any(m in msg for m in ours) and not _our_failed_state(msg):
        return False
    _HELD.append(record)
    return True


def held_errors(told: str | None) -> list[str]:
    """The error lines held back since the last call, as the console would have shown them, but those about
    ``told`` (the error the command's one-line message gave); the hold is then emptied."""
    held = list(_HELD)
    _HELD.clear()
    console = next((h for h in logging.getLogger().handlers if _CONSOLE_LINES in h.filters), None)
    return [_console_text(console, r) for r in held if not told or told not in r.getMessage()]


def _console_text(console: logging.Handler | None, record: logging.LogRecord) -> str:
    """``record`` as the console shows it, or plainly where the console's format does not fit it."""
    if console is not None:
        try:
            return console.format(record)
        except Exception:  # noqa: BLE001 - a record the console cannot format is still given
            pass
    return f"{record.levelname} | {record.getMessage()}"


_CONSOLE_LINES = _ConsoleLines()


def flow_run_line(name: str, run_id: str) -> str:
    """``flow run NAME`` and, against a server that outlives the command (PREFECT_API_URL), the run's UI page."""
    url = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    if url and run_id:
        return f"flow run {name}: {url.removesuffix('/api')}/runs/flow-run/{run_id}"
    return f"flow run {name}"


def check_prefect_api(temporary: bool = True) -> None:
    """Fail with a clear message when ``PREFECT_API_URL`` names a server that does not answer (``temporary``: the
    command can run on a temporary server instead, and the message says so; ``emotion deploy`` cannot)."""
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        return  # Prefect starts a temporary server for this command
    import httpx

    try:
        httpx.get(url.rstrip("/") + "/health", timeout=5).raise_for_status()
    except httpx.HTTPStatusError as exc:  # something answers there, but not a Prefect API
        hint = " (a Prefect server's API is under /api)" if not url.rstrip("/").endswith("/api") else ""
        raise EmotionError(
            f"PREFECT_API_URL={url} answers but is not a Prefect API: GET /health gave HTTP "
            f"{exc.response.status_code}{hint}; `emotion server` prints the URL to export"
        ) from None
    except (httpx.HTTPError, OSError) as exc:
        raise EmotionError(
            f"the Prefect server at PREFECT_API_URL={url} is not reachable ({type(exc).__name__}); "
            "start it with `emotion server`" + (", or unset PREFECT_API_URL to run with a temporary one" if temporary
                                                 else "")
        ) from None


def foreign_prefect_database(url: str | None = None) -> tuple[Path, str] | None:
    """The SQLite file and revision of a Prefect database migrated by another Prefect version, which this Prefect
    cannot start a server on ("Can't locate revision ..."); ``None`` for one it can (ours, a first start, or not
    SQLite: Prefect checks that itself). ``url``: the database's URL, by default the one the settings give."""
    import sqlite3
    from contextlib import closing

    import prefect
    from prefect.settings import get_current_settings

    if url is None:
        secret = get_current_settings().server.database.connection_url
        url = secret.get_secret_value() if secret is not None else ""
    if not url.startswith("sqlite") or ":///" not in url:
        return None
    path = Path(url.split(":///", 1)[1].split("?", 1)[0])
    if not path.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            found = [row[0] for row in db.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.Error:
        return None  # no migrations yet, or not readable: Prefect says what it finds
    versions = Path(prefect.__file__).parent / "server" / "database" / "_migrations" / "versions" / "sqlite"
    known = set(re.findall(r'^revision = "(\w+)"', "\n".join(f.read_text() for f in versions.glob("*.py")), re.M))
    unknown = [r for r in found if r not in known]
    return (path, unknown[0]) if known and unknown else None


def foreign_database_reason(path: Path, revision: str) -> str:
    import prefect

    return (f"the Prefect database {path} was migrated by another Prefect version (revision {revision} is unknown "
            f"to Prefect {prefect.__version__} here)")


_THROWAWAY_DB: list[str] = []  # the database the temporary server falls back to, once per process


def check_prefect_database(url: str | None = None) -> None:
    """Give the temporary server (no PREFECT_API_URL) a throwaway database, with a note, where the one the
    settings name was migrated by another Prefect version (e.g. a newer Prefect in another project shares
    ``~/.prefect``): Prefect cannot start on it, and retried for the 2 minutes of its start-up timeout, printing a
    traceback each time, before the command died with a bare RuntimeError naming no file. The command's outputs
    do not depend on where Prefect records its runs; only that record is not kept."""
    if _THROWAWAY_DB:
        return  # the fallback is taken already
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return  # a running server (set in the environment or a Prefect profile): not ours to start
    found = foreign_prefect_database(url)
    if found is None:
        return
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="emotion-prefect-")
    atexit.register(shutil.rmtree, folder, True)  # registered before the server's stop: runs after it
    db = f"sqlite+aiosqlite:///{folder}/prefect.db"
    os.environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = db  # the server's process reads it as it starts
    _THROWAWAY_DB.append(db)
    print(f"note: {foreign_database_reason(*found)}; this command's runs are recorded in a throwaway database "
          "instead (set PREFECT_HOME to another folder, or PREFECT_API_URL to a running server, to keep them)",
          file=sys.stderr, flush=True)


VERBOSE = [False]  # --verbose (set by main): Prefect's INFO lines of flow and task runs on the console too
INTERRUPTED = [False]  # set by Ctrl-C once the flows run (_on_interrupt)


def _on_interrupt(signum: int, frame: Any) -> None:
    INTERRUPTED[0] = True
    signal.default_int_handler(signum, frame)  # KeyboardInterrupt, as always


def _start_temporary_server() -> None:
    """Without a Prefect API, start Prefect's temporary server now, spawned with SIGINT blocked: it inherits the
    block, so Ctrl-C (which the terminal sends to the whole process group) stops the command and not the server
    under it; a dead server had the command retry it for minutes, then exit 1 with pages of tracebacks. SIGINT is
    blocked only while the process is spawned: a Ctrl-C while the server comes up stops the command at once."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return  # a running server: Prefect's server code (FastAPI, SQLAlchemy: a second of start-up) is never loaded
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    if server.running:
        return
    spawn = server._run_uvicorn_command

    def spawn_deaf_to_ctrl_c() -> Any:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            with _output_to(temporary_server_log()):
                process = spawn()
            atexit.register(_end_process, process)  # before a Ctrl-C held meanwhile can interrupt: never orphaned
            return process
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    server._run_uvicorn_command = spawn_deaf_to_ctrl_c  # type: ignore[method-assign]  # this one server only
    try:
        server.start()
    except RuntimeError as exc:  # "Timed out while attempting to connect to ephemeral Prefect API server"
        raise EmotionError(f"the temporary Prefect server did not start: {exc} (its output is in "
                           f"{temporary_server_log()}; or start one with `emotion server` and set PREFECT_API_URL)"
                           ) from None


def temporary_server_log() -> Path:
    """Where the temporary server's own output goes: ``$PREFECT_HOME/emotion-temporary-server.log``."""
    from prefect.settings import PREFECT_HOME

    home = Path(PREFECT_HOME.value()).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home / "emotion-temporary-server.log"


@contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """A process spawned inside writes its stdout and stderr to ``path`` (appended), not to the command's terminal.

    Prefect's temporary server inherited them: on a busy machine its background services printed SQLAlchemy
    tracebacks ("database is locked") into the command's output, about nothing the command did. The descriptors are
    swapped only while the process is spawned (nothing else prints then: the command has not started its work).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _end_process(process: Any) -> None:
    """Stop a temporary server's process at exit if Prefect's own stop did not (it ran before Prefect held it)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


# Settings of the flow runs this process runs itself, undone by end_run_settings() as main() returns
RUN_SETTINGS = ExitStack()


def end_run_settings() -> None:
    RUN_SETTINGS.close()


def without_unasked_heartbeats() -> None:
    """Flow runs of this process send no heartbeats unless the user asked for them
    (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` in the environment or the Prefect profile).

    Prefect 3.9 sends them every 180 s by default, from a thread it joins as every flow run (and subflow) ends;
    the thread sleeps in steps of 1 s, so each end waited up to a second, a whole second for a short flow: a third
    of a rerun with nothing to do. Heartbeats serve only an automation that marks silent runs as crashed, which a
    user creates (Prefect's "detect zombie flows" guide), setting the frequency as it says. Served deployments
    (``emotion deploy``) keep Prefect's default: their runs are processes of their own.
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings, temporary_settings

    if "heartbeat_frequency" not in get_current_settings().flows.model_fields_set:
        RUN_SETTINGS.enter_context(temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))


def flows_module(only: str | None = None, served: bool = False) -> Any:
    """The flows (and so Prefect), imported on first use: synth needs neither. ``only``: just that flow module
    (``extract`` spares the start-up of a small rerun the model and training imports). ``served``: the flows are
    served as deployments (their runs keep Prefect's heartbeats), not run by this process."""
    check_prefect_api(temporary=not served)  # served runs need the server that schedules them
    check_prefect_database()
    if not served:
        without_unasked_heartbeats()
    import importlib

    from prefect.logging.handlers import PrefectConsoleHandler

    for name in [only] if only else ["evaluate", "extract", "run", "train"]:
        importlib.import_module(f"flows.{name}")

    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _DomainErrorsWithoutTraceback) for f in handler.filters):
            handler.addFilter(_DomainErrorsWithoutTraceback())
        if isinstance(handler, PrefectConsoleHandler):
            # main() may run many times in one process (tests, notebooks): log to the stderr of this call
            # (the real one, when a progress display has put a proxy of it in its place)
            handler.console.file = getattr(sys.stderr, "rich_proxied_file", sys.stderr)
            # the console shows warnings, errors and the name of each flow run, unless --verbose: the Prefect API
            # still gets every line
            handler.setLevel(logging.NOTSET)
            if _CONSOLE_LINES not in handler.filters:
                handler.addFilter(_CONSOLE_LINES)
    # Dask's own notices (e.g. a worker killed at shutdown after its work was done) likewise
    logging.getLogger("distributed").setLevel(logging.INFO if VERBOSE[0] else logging.ERROR)
    INTERRUPTED[0] = False
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) in (
            signal.default_int_handler, _on_interrupt):
        signal.signal(signal.SIGINT, _on_interrupt)
    _start_temporary_server()
    return importlib.import_module("flows")


def cmd_synth(args: argparse.Namespace) -> int:
    actors = parse_actors(args.actors)
    if max(actors) > MAX_ACTOR:
        raise UsageError(f"--actors {args.actors}: RAVDESS actors are 01-{MAX_ACTOR}, so extraction would reject "
                         f"actor {max(actors)}")
    params = SynthParams(actors=parse_actors(args.actors), repetitions=args.repetitions,
                         duration=args.duration, seed=args.seed, signal=args.signal)
    t0 = time.perf_counter()
    paths = write_corpus(out_dir(args.dir), params)
    videos = []
    if args.video:
        from emotion.video.synth import VideoSynthParams, write_video_corpus

        videos = write_video_corpus(args.dir, VideoSynthParams(actors=params.actors, repetitions=args.repetitions,
                                                               seed=args.seed, signal=args.signal),
                                    workers=args.workers)
    payload = {"dir": str(Path(args.dir).resolve()), "clips": len(paths), "videos": len(videos),
               "actors": list(params.actors), "seconds": round(time.perf_counter() - t0, 2)}
    emit(args, payload, lambda p: print(f"synth: wrote {p['clips']} audio clips and {p['videos']} mp4 clips of actors "
                                         f"{args.actors} to {p['dir']} in {p['seconds']:.1f} s"))
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from emotion.store.store import Store

    data = data_root(args.data)
    features = feature_params(args)  # checked before OUT is created; the flow takes its plain name and speeds
    out = out_dir(args.out)
    with Store(out).writer_lock(f"emotion extract {data}"):  # a second writer is refused before Prefect starts
        return _extract_locked(args, data, out, features)


def _extract_locked(args: argparse.Namespace, data: str, out: str, features: Any) -> int:
    extract = flows_module("extract").extract.extract
    s = extract(data, out, args.modality, features.name, frame_params(args), full=args.full, augment=features.augment_speeds(),
                chunk_size=args.chunk_size, dask_address=args.dask_address, workers=args.workers,
                replace_data=args.replace_data, verify=args.verify)
    payload = extract_payload({m: v.to_dict() for m, v in s.items()})
    return _emit_strict(args, payload, payload, print_extract)


def _emit_strict(args: argparse.Namespace, payload: dict[str, Any], extracted: dict[str, Any], printer: Any) -> int:
    """Prints the summary; with ``--strict``, any reject fails the command (after everything else was written):
    exit 1, a line on stderr, and with ``--json`` the summary says so as a failure does (``ok``, ``error``)."""
    failed = getattr(args, "strict", False) and extracted["rejected"]
    message = f"{extracted['rejected']} file(s) rejected and --strict is set"
    if failed:
        payload = {"ok": False, "command": args.command, "error": message, "exit_code": 1, **payload}
    emit(args, payload, printer)
    if failed:
        print(f"emotion: {message}", file=sys.stderr)
        return 1
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    out = store_dir(args.out)
    split = split_text(args.split)
    audio, video, fusion = split_models(parse_models(args.model, ",".join(default_models(args.features))))
    check_feature_models(audio, args.features)
    features = feature_params(args)
    fl = flows_module()  # Prefect (and its temporary server) once the command line is known to be good
    t = fl.run.train_models(out, split, audio, video, fusion, features, search_params(args),
                            frame_params(args), video_params(args), n_jobs=args.jobs, force=args.force,
                            speaker_norm=args.speaker_norm)
    if t.get("features"):  # audio or fused models ran: the recipe, and what a speaker-normalised accuracy assumes
        t = {**t, "recipe": fl.run.recipe(features, t["speaker_norm"])}
    emit(args, t, print_train)
    return 0


def _run(args: argparse.Namespace, data: str, out: str) -> dict[str, Any]:
    split = split_text(args.split)
    audio, video = ",".join(default_models(args.features)), ",".join(VIDEO_MODELS)
    default = {"audio": audio, "video": video}.get(args.modality, ",".join((audio, video, *FUSION_MODELS)))
    models = parse_models(args.model, default)
    check_feature_models(split_models(models)[0], args.features)
    features = feature_params(args)  # checked before the flow starts; the flow takes its plain name and speeds
    if "://" not in data:  # the split against the data's actors: a listing (no clip read), before Prefect starts
        from emotion.extract.inventory import check_pipeline_split

        check_pipeline_split(data, split, args.modality, features, split_models(models)[0], search_params(args))
    fl = flows_module()  # Prefect (and its temporary server) once the command line is known to be good
    with new_dir(out) as out:  # created only then too, and removed again if the run fails leaving it empty
        return _run_pipeline(fl, args, data, out, split, models, features)


def _run_pipeline(fl: Any, args: argparse.Namespace, data: str, out: str, split: str, models: tuple[str, ...],
                  features: Any) -> dict[str, Any]:
    try:
        r = fl.run.run_pipeline(data, out, split, models, features.name, augment=features.augment_speeds(),
                                search=search_params(args), modality=args.modality, frames=frame_params(args),
                                video_params=video_params(args), full=args.full, dask_address=args.dask_address,
                                workers=args.workers, n_jobs=args.jobs, speaker_norm=args.speaker_norm,
                                replace_data=args.replace_data)
    except (Exception, KeyboardInterrupt) as exc:  # a step after an extraction failed: main() prints its summary first
        if done_before(exc).get("extract"):
            note_done(exc, extract=extract_payload(done_before(exc)["extract"]))
        raise
    return {**r, "extract": extract_payload(r["extract"])}


def cmd_run(args: argparse.Namespace) -> int:
    data = data_root(args.data)
    r = _run(run_recipe(args), data, args.out)
    return _emit_strict(args, r, r["extract"], print_run_recipe)


# The demo's corpus (its budgets: flows.cli.parser.DEMO_DEFAULTS): one take of each line, 1 s clips; mp4s of
# 15 frames (1 s at 15 fps)
DEMO_AUDIO: dict[str, Any] = {"repetitions": 1, "duration": 1.0}
DEMO_VIDEO: dict[str, Any] = {"duration": 1.0, "fps": 15, "modalities": (1,)}  # face and voice: what fusion reads


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(out_dir(args.out))
    data = out / "data"
    from tasks import progress

    params = SynthParams(actors=parse_actors(args.actors), **DEMO_AUDIO)
    t0 = time.perf_counter()
    if not args.json:
        what = {"audio": "audio", "video": "video", "all": "audio and video"}[args.modality]
        print(f"demo: writing a synthetic {what} corpus ({len(params.actors)} actors) to {data}", flush=True)
    if args.modality in ("audio", "all"):
        write_corpus(data, params, progress=progress.sink())
    if args.modality in ("video", "all"):
        from emotion.video.synth import VideoSynthParams, write_video_corpus

        write_video_corpus(data, VideoSynthParams(actors=params.actors, **DEMO_VIDEO), workers=args.workers,
                           progress=progress.sink())
    r = _run(args, str(data), str(out / "store"))
    if args.modality in ("video", "all") and frame_params(args).detector == "mesh":
        # the face's geometry: logistic regression on the landmarks feature set of the face crops just extracted
        from emotion.video.landmarks import LandmarkParams

        lm = LandmarkParams(every=args.every, size=args.frame_size)
        t = flows_module().run.train_models(str(out / "store"), r["train"]["split"], ("lr",), (), (), lm, search_params(args),
                                      frame_params(args), None, n_jobs=args.jobs, force=args.full)
        from emotion.store.catalog import rank_rows

        # ranked as every table is, by validation accuracy (the header says so), never by the test actors
        r["train"]["models"] = rank_rows([*r["train"]["models"], *({**m, "modality": "video"} for m in t["models"])])
        r["train"]["report"] = t.get("report") or r["train"].get("report")
        r["train"] = flows_module().run.with_selection(str(out / "store"), r["train"])  # the landmarks may win video
    r["seconds"] = round(time.perf_counter() - t0, 1)
    emit(args, r, print_run)
    if not args.json:
        print(f"demo finished in {r['seconds']:.0f} s; outputs under {out / 'store'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.params_from and not args.fixed_params:
        raise UsageError("--params-from needs --fixed-params")
    out = store_dir(args.out)
    split = split_text(args.split)
    features = feature_params(args)
    models = parse_models(args.model, "lr")
    check_feature_models(models, args.features)
    evaluate_loso = flows_module().evaluate.evaluate_loso  # Prefect once the command line is known to be good
    t = evaluate_loso(out, split, models, features.name, search_params(args), augment=features.augment_speeds(),
                      speaker_norm=args.speaker_norm, mode="fixed" if args.fixed_params else "nested", n_jobs=args.jobs,
                      params_from=str(ActorSplit.parse(args.params_from)) if args.params_from else None)
    emit(args, t, print_loso)
    return 0


NO_MODEL = ("give --store OUT (picks the best trained model) or --model PATH; without them only the face of an .mp4 "
            "is read, by the pretrained FER2013 model")


def cmd_predict(args: argparse.Namespace) -> int:
    from emotion.predict import Prediction, load_predictors, predict_files

    if args.split is not None:  # malformed: exit 2 before anything loads, as train and evaluate do
        ActorSplit.parse_given(args.split)
    from emotion.store.sources import AUDIO_EXTENSIONS, extension

    def needs_model(f: str) -> bool:  # a voice, and no model of voices (a folder is named as such by the prediction)
        return extension(f) in AUDIO_EXTENSIONS and not os.path.isdir(f)

    zero_shot = not args.store and not args.model  # only the face of an .mp4 can be read
    if zero_shot and args.files and all(needs_model(f) for f in args.files):
        raise UsageError(NO_MODEL)
    if args.store and not args.model:  # (--model overrides --store)
        not_a_data_folder(args.store)
    predictors = load_predictors(args.store, args.model, args.split)
    from tasks import progress

    results = predict_files(args.files, predictors, same_speaker=args.same_speaker,
                            progress=progress.sink() if len(args.files) > 1 else None)
    files = [r.to_dict() if isinstance(r, Prediction) else {"file": r[0], "error": r[1]} for r in results]
    if zero_shot:  # an audio file among mp4 clips: the others are read, it is told what it needs (not the whole run)
        files = [{"file": f["file"], "error": f"needs a trained audio model: {NO_MODEL}"}
                 if f.get("emotion") is None and not f.get("error") and needs_model(f["file"]) else f for f in files]
    failed = [{"file": f["file"], "error": _why_no_prediction(f)} for f in files
              if f.get("error") or f.get("emotion") is None]  # "no prediction" is no success
    message = f"{len(failed)} of {len(files)} file(s) could not be predicted"
    if args.json:  # on success the list of files; else the failure object every command gives, the list inside
        print(jsontext.dumps({"ok": False, "command": args.command, "error": message, "exit_code": 1,
                              "predictions": files, "failed": failed} if failed else files, indent=2))
    else:
        print_predictions({"files": files})
    if failed:
        print(f"emotion: {message}", file=sys.stderr)
    return 1 if failed else 0


def _why_no_prediction(f: dict[str, Any]) -> str:
    """Why a file of ``predict`` has no prediction, in one line: its error, or "no prediction" and its notes (e.g. a
    clip whose audio is absent and no face model)."""
    if f.get("error"):
        return str(f["error"])
    return "; ".join(["no prediction", *(str(n) for n in f.get("notes") or ())])
