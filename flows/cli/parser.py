"""The options of every ``emotion`` command, and the ranges of its numbers.

Imports only the catalog of names and the split syntax: ``emotion --help``,
``emotion CMD --help`` and usage errors answer before any heavy library loads.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any, NoReturn

from emotion.core.addresses import check_scheduler_address
from emotion.core.errors import UsageError
from emotion.core.names import AUDIO_MODELS, DEFAULT_MODELS, FEATURE_SET_NAMES, FUSION_MODELS, VIDEO_MODELS
from emotion.core.splits import DEFAULT_SPLIT

# option -> (smallest, largest) value it may take; checked for every command before it runs
NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "chunk_size": (1, 100_000), "jobs": (1, 1024), "workers": (1, 1024), "every": (1, 10_000),
    "frame_size": (16, 4096), "epochs": (1, 10_000), "n_iter": (1, 100_000), "cv_folds": (2, 100),
    "port": (1, 65535), "duration": (0.25, 600), "repetitions": (1, 2),
}


# `emotion run`'s default recipe: the strongest the pipeline has (on the withheld actors 21-24, LR reached 0.783 with
# it, measured before its grouped CV fitted the augmented copies; the seed recipe about 0.50). Augmentation and
# speaker normalisation come with the extended set unless switched off; any other --features (seed: the baseline)
# runs without them unless asked for.
RUN_FEATURES = "extended"
RUN_SPEEDS = (0.9, 1.1)


def run_recipe(args: argparse.Namespace) -> argparse.Namespace:
    """Resolve ``run``'s recipe: ``--augment`` and ``--speaker-norm`` default to on with ``--features extended`` (the
    default) and to off with any other set; ``--no-augment`` and ``--no-speaker-norm`` switch them off."""
    recipe = args.features == RUN_FEATURES
    if args.no_augment:
        if args.augment:
            raise UsageError("--augment and --no-augment contradict each other")
        args.augment = None
    elif args.augment is None and recipe:
        args.augment = RUN_SPEEDS
    if args.no_speaker_norm:
        if args.speaker_norm:
            raise UsageError("--speaker-norm and --no-speaker-norm contradict each other")
        args.speaker_norm = False
    elif args.speaker_norm is None:
        args.speaker_norm = recipe
    return args


def check_numbers(args: argparse.Namespace) -> None:
    """A one-line :class:`UsageError` (exit 2) for any number on the command line outside its range."""
    for name, (lo, hi) in NUMBER_RANGES.items():
        v = getattr(args, name, None)
        if v is None or isinstance(v, bool):
            continue
        if not lo <= v <= hi or v != v:
            raise UsageError(f"--{name.replace('_', '-')} must be between {lo:g} and {hi:g}, got {v:g}")


def check_dask_address(args: argparse.Namespace) -> None:
    """``--dask-address``, else ``EMOTION_DASK_ADDRESS``, checked for its form (a one-line :class:`UsageError`,
    exit 2, naming where it came from), before anything runs: not only once there is work for the cluster."""
    if not hasattr(args, "dask_address"):
        return
    if args.dask_address is not None:
        args.dask_address = check_scheduler_address(args.dask_address, "--dask-address")
    else:
        args.dask_address = check_scheduler_address(os.environ.get("EMOTION_DASK_ADDRESS"), "EMOTION_DASK_ADDRESS")


def speeds(text: str) -> tuple[float, ...]:
    """``--augment 0.9,1.1`` -> (0.9, 1.1)."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"speeds must be comma-separated numbers such as 0.9,1.1, got {text!r}") from None



# The demo's budgets, chosen so that it runs every stage and model family in a few minutes on 2 cores (`run`
# keeps the full settings; the demo's corpus: flows.cli.commands.DEMO_AUDIO, DEMO_VIDEO): mp4s of 15 frames of
# which every 5th is kept (3 frames a clip, as every 20th of 42 before); 96-pixel face crops; a search of 6
# candidates on 3 folds without the grid refinement; 6 epochs per network.
DEMO_DEFAULTS: dict[str, Any] = {"n_iter": 6, "cv_folds": 3, "no_refine": True, "epochs": 6, "every": 5,
                                 "frame_size": 96}


_DATA_HELP = "folder of clips (.wav, .flac, .mp4, or the RAVDESS zip archives), searched in its subfolders too"
_NEW_STORE_HELP = "the store to write to (created if absent; a rerun updates it)"
_STORE_HELP = "a store written by `emotion extract` or `emotion run` (its --out)"


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a machine-readable JSON summary (progress goes to stderr)")
    p.add_argument("--verbose", action="store_true",
                   help="also show Prefect's log lines of every flow and task run on the console (the Prefect UI "
                        "records them in any case)")


def _add_extract_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", default="seed",
                   help=f"feature set: {', '.join(FEATURE_SET_NAMES)} (default: seed, the baseline recipe; "
                        "egemaps and compare need the opensmile extra)")
    _add_augment(p)
    p.add_argument("--dask-address", metavar="ADDR",
                   help="use the Dask scheduler at tcp://HOST:PORT (or tls://, ws://, wss://, ucx://; default: "
                        "EMOTION_DASK_ADDRESS if set, else a local cluster)")
    p.add_argument("--workers", type=int, help="worker processes of the local cluster (default: one per core)")
    p.add_argument("--full", action="store_true", help="recompute everything, not only new or changed clips")
    p.add_argument("--strict", action="store_true", help="exit non-zero if any file was rejected (after writing the rest)")
    p.add_argument("--replace-data", action="store_true",
                   help="the store was built from another data root: rebuild it from this one (the old root's rows "
                        "are dropped and counted as removed); without it, another root is refused")


def _add_augment(p: argparse.ArgumentParser) -> None:
    p.add_argument("--augment", nargs="?", const=(0.9, 1.1), type=speeds, metavar="SPEEDS",
                   help="extended features only: also compute each clip played at these speeds (default 0.9,1.1), "
                        "train on those copies too and average predictions over them")


def _add_frame_opts(p: argparse.ArgumentParser, defaults: Mapping[str, Any] | None = None) -> None:
    """The options of the frame sets; ``defaults``: the command's own where they differ (the demo's)."""
    every, size = (defaults or {}).get("every", 20), (defaults or {}).get("frame_size", 256)
    p.add_argument("--every", type=int, default=every, help=f"keep every Nth video frame (default {every})")
    p.add_argument("--frame-size", type=int, default=size, help=f"side of the stored square gray frames (default {size})")
    p.add_argument("--face-crop", action="store_true",
                   help="crop frames to the face, aligned (eyes level) and tight, with its 468 landmarks (MediaPipe "
                        "face detection and mesh); the fer, fused and landmarks models always use face crops")
    p.add_argument("--face-detector", choices=("mesh", "haar"), default="mesh",
                   help="face front end: mesh (default; aligned crops and landmarks) or haar (the first release's "
                        "square crops around OpenCV's Haar box, 0.25 margin, no landmarks)")


# the feature-set models each command trains when none is named (emotion.core.names.default_models)
_AUDIO_DEFAULTS = (f"{','.join(DEFAULT_MODELS)}; lr with --features extended or compare, melcnn with --features "
                   "logmel")
_RUN_AUDIO_DEFAULTS = f"lr with --features extended (the default) or compare, melcnn with logmel, else {','.join(DEFAULT_MODELS)}"


def _add_train_opts(p: argparse.ArgumentParser, command: str) -> None:
    """The options of the search and of the models, as ``command`` (train, evaluate, run, demo) takes them: each
    help gives that command's models and defaults (the demo's: :data:`DEMO_DEFAULTS`); evaluate, on the audio
    models only, takes no --epochs."""
    demo = command == "demo"
    n_iter, epochs = (DEMO_DEFAULTS["n_iter"], DEMO_DEFAULTS["epochs"]) if demo else (50, None)
    p.add_argument("--split", default=DEFAULT_SPLIT, help=f"actor split (default: {DEFAULT_SPLIT})")
    if command == "evaluate":
        models = (f"audio model(s) to evaluate: {', '.join(AUDIO_MODELS)} (repeat or comma-separate; default lr; "
                  "melcnn reads --features logmel)")
    else:
        every = ("" if command == "train" else
                 f"; with --modality all (the default) also every video and fused model, with --modality video only "
                 f"the video ones{'; and in the demo LR on the face landmarks' if demo else ''}")
        models = (f"model(s) to train: audio {', '.join(AUDIO_MODELS)}, video {', '.join(VIDEO_MODELS)}, "
                  f"audio-visual {', '.join(FUSION_MODELS)} (repeat or comma-separate; default: "
                  f"{_RUN_AUDIO_DEFAULTS if command == 'run' else _AUDIO_DEFAULTS}{every})")
    p.add_argument("--model", action="append", metavar="NAME", help=models)
    if command != "evaluate":
        head = max(1, epochs // 3) if epochs else 0  # as flows.cli.options.video_params divides them
        p.add_argument("--epochs", type=int, default=epochs,
                       help="video models: training epochs in all (default " + (
                           f"{epochs} in the demo: cnn {epochs}, fer {head} for its head and {epochs - head} "
                           "fine-tuning)" if epochs else "20 for both: cnn 20, fer 8 for its head and 12 fine-tuning)"))
    nested = " inside every held-out actor's fold; unused with --fixed-params" if command == "evaluate" else ""
    p.add_argument("--n-iter", type=int, default=n_iter,
                   help=f"randomized-search candidates{nested} (default {n_iter})")
    fused = "" if command == "evaluate" else " and of the fused models"
    p.add_argument("--cv-folds", type=int, default=DEMO_DEFAULTS["cv_folds"] if demo else 3,
                   help=f"actor-grouped CV folds of the search{fused} (default {DEMO_DEFAULTS['cv_folds'] if demo else 3})")
    p.add_argument("--no-refine", action="store_true",
                   help="skip the grid search around the best candidate" + (" (always, in the demo)" if demo else ""))
    seeded = ("the search and of every model" if command == "evaluate" else
              "the search and of every model: audio, video (validation actors, weights, augmentation) and fused")
    p.add_argument("--seed", type=int, default=0, help=f"random seed of {seeded} (default 0)")
    p.add_argument("--jobs", type=int, help="parallel search processes (default: one per core); never changes results")
    p.add_argument("--speaker-norm", action="store_true",
                   help="standardise each actor's features over that actor's own clips (train and test; no labels)")


DISTRIBUTION = "emotion-pipeline"  # pyproject.toml's project name: its installed metadata gives --version


def package_version() -> str:
    """The version of the installed distribution (``importlib.metadata``), looked up only when asked for."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return f"(version unknown: the {DISTRIBUTION} distribution is not installed; pip install -e .)"


class _Version(argparse.Action):
    """``--version``: argparse's, with the version looked up as it is asked for, not as every command starts."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help=kwargs.get("help", "print the version of the installed package and exit"))

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog} {package_version()}")
        parser.exit()


class EmotionParser(argparse.ArgumentParser):
    """The top-level parser, with each command's own parser (``commands``), whose usage a mistake is named under."""

    commands: Mapping[str, argparse.ArgumentParser]

    def subcommand(self, name: str | None) -> argparse.ArgumentParser:
        return self.commands.get(name or "", self)

    def error(self, message: str) -> NoReturn:
        """argparse's usage error (usage and message on stderr, exit 2), its message kept on the SystemExit as
        ``usage_error``: ``main`` gives it as JSON too where ``--json`` was asked for (:func:`json_asked`)."""
        try:
            super().error(message)
        except SystemExit as exc:
            exc.usage_error = message  # type: ignore[attr-defined]
            raise


def json_asked(parser: EmotionParser, argv: list[str]) -> str | None:
    """The command of ``argv`` if it takes ``--json`` and ``argv`` gives it (as argparse reads it: the option, or a
    prefix of it no other option of the command has, before any ``--``); else None. Also for a command line that
    argparse refused, whose parsed options are then unknown."""
    command = next((a for a in argv if not a.startswith("-")), None)
    sub = parser.commands.get(command or "")
    if sub is None:
        return None
    options = [o for a in sub._actions for o in a.option_strings]
    if "--json" not in options:
        return None
    rest = argv[argv.index(str(command)) + 1:]
    rest = rest[:rest.index("--")] if "--" in rest else rest
    asked = any(t.startswith("--") and [o for o in options if o.startswith(t)] == ["--json"] for t in rest)
    return command if asked else None


def build_parser() -> EmotionParser:
    ap = EmotionParser(prog="emotion", description="Emotion recognition pipeline for RAVDESS-style corpora.")
    ap.add_argument("--version", action=_Version)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ap.commands = sub.choices

    p = sub.add_parser("synth", help="write a synthetic RAVDESS-named corpus")
    p.add_argument("dir", metavar="DIR", help="folder to write the corpus to (created if absent)")
    p.add_argument("--actors", default="1-8,21-24", help="actors to generate (default 1-8,21-24)")
    p.add_argument("--repetitions", type=int, choices=(1, 2), default=2, help="repetitions per statement (default 2)")
    p.add_argument("--duration", type=float, default=1.5, help="seconds per clip (default 1.5)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed of the synthetic voices and faces (default 0)")
    p.add_argument("--video", action="store_true",
                   help="also write mp4 clips (modality 01 with speech, 02 video-only) with a drawn face")
    p.add_argument("--workers", type=int, help="processes writing the mp4 clips (default: one per core)")
    p.add_argument("--signal", choices=("full", "split"), default="full",
                   help="full: voice and face each carry the emotion; split: each carries only half of it, so that "
                        "only fusion can tell every emotion (default full)")
    _add_common(p)

    p = sub.add_parser("extract", help="extract features of every clip under DATA into the store OUT")
    p.add_argument("data", metavar="DATA", help=_DATA_HELP)
    p.add_argument("--out", required=True, metavar="OUT", help=_NEW_STORE_HELP)
    p.add_argument("--modality", choices=("audio", "video", "all"), default="all",
                   help="audio (.wav/.flac and the speech track of .mp4 -> features), video (.mp4 -> frames) "
                        "or all (default)")
    _add_frame_opts(p)
    p.add_argument("--chunk-size", type=int, help="clips per Dask task (default 40 audio, 6 video)")
    p.add_argument("--verify", action="store_true",
                   help="read and hash every clip, not only those whose size or modification time (or ETag) changed, "
                        "and read every stored part whole (damaged parts are dropped and their clips recomputed)")
    _add_extract_opts(p)
    _add_common(p)

    p = sub.add_parser("train", help="tune, train and evaluate models on the features in OUT")
    p.add_argument("out", metavar="OUT", help=_STORE_HELP)
    p.add_argument("--features", default="seed", help=f"feature set: {', '.join(FEATURE_SET_NAMES)} (default seed)")
    _add_augment(p)
    p.add_argument("--force", action="store_true", help="retrain even if an identical run is stored")
    _add_frame_opts(p)
    _add_train_opts(p, "train")
    _add_common(p)

    p = sub.add_parser("evaluate", help="leave-one-actor-out evaluation over the training actors of a split")
    p.add_argument("out", metavar="OUT", help=_STORE_HELP)
    p.add_argument("--loso", action="store_true",
                   help="leave one training actor out at a time, the test actors unused: the default, and so far the "
                        "only evaluation (accepted, never needed)")
    p.add_argument("--features", default="seed", help=f"feature set: {', '.join(FEATURE_SET_NAMES)} (default seed)")
    _add_augment(p)
    p.add_argument("--fixed-params", action="store_true",
                   help="reuse the hyper-parameters of the stored run (one fit per actor; mildly optimistic) "
                        "instead of tuning inside every fold")
    p.add_argument("--params-from", metavar="SPLIT",
                   help="with --fixed-params: the split whose stored runs give them (default: --split)")
    _add_train_opts(p, "evaluate")
    _add_common(p)

    p = sub.add_parser("run", help="extract, train and evaluate (default recipe: extended features, augmentation, "
                                   "speaker normalisation; --features seed for the baseline)")
    p.add_argument("data", metavar="DATA", help=_DATA_HELP)
    p.add_argument("--out", required=True, metavar="OUT", help=_NEW_STORE_HELP)
    p.add_argument("--modality", choices=("audio", "video", "all"), default="all",
                   help="audio models, video models, or both (default all: each modality found under DATA)")
    _add_frame_opts(p)
    _add_extract_opts(p)
    _add_train_opts(p, "run")
    p.add_argument("--no-augment", action="store_true", help="without the speed copies of the default recipe")
    p.add_argument("--no-speaker-norm", action="store_true",
                   help="without the speaker normalisation of the default recipe (its accuracy assumes each test "
                        "speaker's clips are normalised together)")
    _add_common(p)
    # the strongest recipe by default; --augment and --speaker-norm are resolved by run_recipe (on with extended)
    p.set_defaults(features=RUN_FEATURES, speaker_norm=None)
    for a in p._actions:
        if a.dest == "features":
            a.help = (f"feature set: {', '.join(FEATURE_SET_NAMES)} (default: extended, with augmentation and speaker "
                      "normalisation; seed: the 2018 baseline, without them)")

    p = sub.add_parser("demo", help="synthesize a corpus, then run the whole pipeline on it")
    p.add_argument("--out", default="emotion-demo", help="folder for the corpus and the store (default ./emotion-demo)")
    p.add_argument("--actors", default="1-6,21-22", help="synthetic actors (default 1-6,21-22: six to train, two held out)")
    p.add_argument("--modality", choices=("audio", "video", "all"), default="all",
                   help="audio, video or both (default all)")
    _add_frame_opts(p, DEMO_DEFAULTS)
    _add_extract_opts(p)
    _add_train_opts(p, "demo")
    _add_common(p)
    # a smaller corpus and search, fewer epochs and smaller frames than `run`, so that the demo takes minutes
    p.set_defaults(**DEMO_DEFAULTS)

    p = sub.add_parser("predict", help="the emotion of .wav, .flac or .mp4 files, from a trained model")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio or video files (any name; RAVDESS names not needed)")
    p.add_argument("--store", metavar="OUT", help="a store with trained runs: its best model for the file's modality")
    p.add_argument("--model", metavar="PATH", help="a run folder, or the model file inside it (overrides --store)")
    p.add_argument("--split", help="the split whose models to use, as train=1-16,test=17-20 or by its id "
                                   "train01-16_test17-20 (default: train01-20_test21-24 if trained, else the split "
                                   "trained last: the one with the newest run)")
    p.add_argument("--same-speaker", action="store_true",
                   help="the files are clips of one speaker: a speaker-normalised model standardises them by their own "
                        "statistics (8 clips or more), not the pooled training statistics; only right when the clips "
                        "span the speaker's range of emotions, as an actor's in training do")
    _add_common(p)

    p = sub.add_parser("server", help="run a local Prefect server and UI (SQLite; PostgreSQL via settings)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=4200, help="port to serve the API and UI on (default 4200)")
    p.set_defaults(json=False)

    p = sub.add_parser(
        "deploy", help="register the scheduled deployments and serve them",
        description="Register the deployments of a file with the Prefect server at PREFECT_API_URL (start one with "
                    "`emotion server`) and serve them: their runs start on their cron schedules, and from the UI, "
                    "until Ctrl-C or SIGTERM stops the command and pauses the schedules. Each deployment of the file "
                    "names a flow, a cron schedule, a timezone and parameters; ${VAR} and ${VAR:-default} are taken "
                    "from the environment. The default file schedules a nightly extraction (02:00 UTC), a weekly "
                    "training (Sundays, 04:00) and a monthly pipeline (the 1st, 05:00), and reads EMOTION_DATA (the "
                    "data root), EMOTION_OUT (the store) and EMOTION_DASK_ADDRESS (a Dask scheduler, optional). "
                    "Copy it and pass --file to change schedules or parameters.")
    p.add_argument("--file", help="deployments file (default: deployments/deployments.yaml)")
    p.add_argument("--register-only", action="store_true", help="register the deployments and exit, without serving")
    p.set_defaults(json=False)
    return ap
