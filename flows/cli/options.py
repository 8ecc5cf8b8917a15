"""Command-line options -> the typed parameters the flows take, each checked with a one-line message."""

from __future__ import annotations

import argparse
import os
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emotion.core.errors import Advice, UsageError
from emotion.core.names import check_features
from emotion.core.splits import ActorSplit
from emotion.featuresets import feature_params as typed_feature_params
from emotion.models.search import SearchParams
from emotion.video.frames import FrameParams


def check_feature_models(audio_models: tuple[str, ...], features: str) -> None:
    """Refuse, before anything runs, an audio model that cannot read the feature set."""
    for m in audio_models:
        check_features(m, features)


def frame_params(args: argparse.Namespace) -> FrameParams:
    haar = getattr(args, "face_detector", "mesh") == "haar"
    return FrameParams(every=args.every, size=args.frame_size, face_crop=args.face_crop,
                       detector="haar" if haar else "mesh", margin=0.25 if haar else 0.0)


def video_params(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Per-model settings of the video models from the command line (``--epochs``: the total budget)."""
    if args.epochs is None:
        return {}
    if args.epochs < 1:
        raise UsageError("--epochs must be at least 1")
    head = max(1, args.epochs // 3)
    return {"cnn": {"epochs": args.epochs}, "fer": {"epochs": head, "tune_epochs": args.epochs - head}}


def utf8_path(path: str, what: str) -> None:
    """A one-line :class:`UsageError` for a folder whose name (or a parent's, once resolved) is not valid UTF-8:
    runs and their parameters are recorded as text (Prefect's API, ``run.json``), where such a name has no place."""
    if "://" in path:
        full = path
    else:
        try:
            full = str(Path(path).resolve())  # what is recorded: through links, from the current folder
        except (OSError, RuntimeError):  # the current folder deleted, a symlink loop: the folder checks say so
            return
    from emotion.extract.inventory import printable

    shown = printable(full)
    if shown != full:
        raise UsageError(f"{what} '{shown}' is not valid UTF-8 (runs record their folders as text): rename it")


def existing_dir(path: str, what: str) -> str:
    not_in_memory(path)
    utf8_path(path, what)
    not_a_half_url(path, what)
    if "://" in path:
        return path
    if what == "data root" and Path(path).is_file() and path.lower().endswith(".zip"):  # the Zenodo download itself
        raise UsageError(f"{what} {path!r} is a zip archive: give the folder that holds it "
                         f"({str(Path(path).resolve().parent)!r}); the archives under it are read in place")
    if not Path(path).is_dir():
        raise UsageError(f"{what} {path!r} does not exist or is not a folder")
    return str(Path(path).resolve())


# what a store holds at its top (emotion.store.store: STORE_FILE, the datasets, the runs, the rejects); a folder with
# none of them but clips under it is a data folder given for a store
STORE_ENTRIES = ("store.json", "manifest", "features", "frames", "runs", "rejects")
DATA_FOLDER_LOOK = 2000  # names looked at, at most, to tell a data folder (a RAVDESS download holds 2,880 clips)


def store_dir(path: str) -> str:
    """An existing store folder (:func:`existing_dir`), not a data folder given for one (:func:`not_a_data_folder`)."""
    root = existing_dir(path, "store")
    not_a_data_folder(path)
    return root


def not_a_data_folder(path: str) -> None:
    """A one-line :class:`UsageError` for a folder given as a store that is none (nothing of a store's layout at its
    top) but holds clips, found in a bounded look: it is the data, and the error says how to make a store of it
    (a store's commands took it for one, and said its features were missing, to be extracted into that folder)."""
    if "://" in path or not Path(path).is_dir() or any((Path(path) / e).exists() for e in STORE_ENTRIES):
        return
    looked = 0
    for dirpath, dirnames, filenames in os.walk(path, onerror=lambda _: None):
        dirnames.sort()
        clip = next((f for f in sorted(filenames) if _is_data_file(f)), None)
        if clip is not None:
            example = os.path.relpath(os.path.join(dirpath, clip), path)
            make = f"emotion extract {shlex.quote(path)} --out STORE"
            fix = Advice(f"make a store from it with `{make}` and give STORE",
                         f"run the extract flow with data={path}, out=STORE and give STORE")
            raise UsageError(f"store {path!r} is a data folder (it holds clips such as {example}), not a store: "
                             f"{fix}", advice=fix)
        looked += len(filenames) + len(dirnames)
        if looked > DATA_FOLDER_LOOK:
            return


def _is_data_file(name: str) -> bool:
    """A clip the data root reads (.wav, .flac, .mp4), or one of the Zenodo archives it reads in place (.zip)."""
    from emotion.store.sources import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, extension

    return extension(name) in AUDIO_EXTENSIONS | VIDEO_EXTENSIONS | {".zip"}


def data_root(path: str) -> str:
    """An existing data folder with at least one clip (or zip archive) under it: a wrong folder (the parent of the
    corpus is fine, an empty one or one of .mp3s is not) is said in one line before anything is created or run."""

    root = existing_dir(path, "data root")
    if "://" in root:
        return root  # object storage: listed by the inventory itself
    seen: set[str] = set()
    unreadable: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unreadable.append):  # as the inventory
        if os.path.realpath(dirpath) in seen:
            dirnames[:] = []
            continue
        seen.add(os.path.realpath(dirpath))
        if any(_is_data_file(f) for f in filenames):
            return root
    if unreadable:
        raise UsageError(f"data root {path!r}: cannot read {unreadable[0].filename}: {unreadable[0].strerror}")
    # an empty root is a mistake far more often than a corpus whose every clip was deleted (an unmounted drive, a
    # wrong path): it is refused rather than taken as "every clip deleted", which would drop every stored row (the
    # extract flow checks it too, for served runs and object storage: emotion.extract.inventory.check_not_empty)
    from emotion.extract.inventory import empty_data_root

    raise empty_data_root(path)


def not_in_memory(path: str) -> None:
    if path.lower().startswith("memory://"):
        raise UsageError(f"{path!r}: a memory:// store lives only as long as the command and would keep nothing; "
                         "use a folder or object storage")


# "s3:/bucket/store": a URL missing a slash, which a local path would take as a folder named "s3:" under this one
_HALF_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):/?(?!/)")


def _url_schemes() -> set[str]:
    import fsspec

    return {p.lower() for p in fsspec.available_protocols()} - {"file", "local"}


def not_a_half_url(path: str, what: str) -> None:
    """Refuse ``s3:/bucket/store``: the scheme of a storage fsspec knows (s3, gs, az, ...) with its ``//`` mistyped,
    which as a path names a new local folder ``s3:``; a folder that exists (``run:v2``) is a path."""
    m = _HALF_URL.match(path)
    if not m or "://" in path or m.group(1).lower() not in _url_schemes() or os.path.exists(path):
        return
    if len(m.group(1)) > 1:  # (not a Windows drive, C:/...)
        rest = path[m.end():].lstrip("/")
        raise UsageError(f"{what} {path!r} looks like a mistyped URL (as a path, it is a folder named "
                         f"'{m.group(1)}:' in this one): did you mean {m.group(1)}://{rest}?")


def out_dir(path: str) -> str:
    not_in_memory(path)
    utf8_path(path, "output")
    not_a_half_url(path, "output")
    if "://" in path:
        return path
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"output {path!r} exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output folder {path!r}: {exc.strerror or exc}") from None
    return str(p.resolve())


@contextmanager
def new_dir(path: str) -> Iterator[str]:
    """:func:`out_dir` for a command that may fail before it stores anything: the folders it created (``path`` and
    any parent that did not exist) are removed again where the command fails leaving them empty. A folder that
    existed before, or holds anything, stays."""
    created = []
    if "://" not in path:
        p = Path(path).absolute()
        while not p.exists() and p != p.parent:
            created.append(p)
            p = p.parent
    out = out_dir(path)
    try:
        yield out
    except BaseException:
        for p in created:  # the deepest first
            try:
                p.rmdir()  # only an empty folder
            except OSError:
                break
        raise


def split_text(text: str) -> str:
    """The split as the user gave it (checked here, so a bad one stops before anything runs), for run names."""
    ActorSplit.parse(text)
    return "".join(text.split())


def search_params(args: argparse.Namespace) -> SearchParams:
    if args.n_iter < 1 or args.cv_folds < 2:
        raise UsageError("--n-iter must be at least 1 and --cv-folds at least 2")
    return SearchParams(n_iter=args.n_iter, cv_folds=args.cv_folds, refine=not args.no_refine, seed=args.seed)


def feature_params(args: argparse.Namespace) -> Any:
    """The parameters of ``--features``, with ``--augment``'s speeds where given."""
    frames = frame_params(args) if getattr(args, "every", None) is not None else None  # landmarks: on these frames
    return typed_feature_params(args.features, getattr(args, "augment", None), frames)
