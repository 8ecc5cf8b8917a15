"""Which runs to predict with, and loading them (each model file checked against the SHA-256 in its run.json).

A run folder (or the model file inside it) is loaded as given; in a store,
the split is the one asked for, else the default split when it has runs,
else the split trained last (the one with the newest run of any model);
within it, the run the catalog selects per modality
(:func:`emotion.store.catalog.best_per_modality`: grouped-CV accuracy on the
train actors).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emotion.audio.normalize import Stats
from emotion.core.errors import ModelIntegrityError, StoreError, UsageError
from emotion.core.ids import try_parse_id
from emotion.core.splits import DEFAULT_SPLIT, ActorSplit, lacking_actors, suggest_split
from emotion.models.persist import load_model
from emotion.predict.audio import AudioModel
from emotion.predict.face import FusionRunModel, LandmarkRunModel, VideoModel, VideoRunModel, ZeroShotFaceModel
from emotion.store import catalog
from emotion.store.catalog import RunRecord, best_per_modality, collect_runs
from emotion.store.runs import MAX_MODEL_BYTES, model_file_path
from emotion.store.store import Store

DEFAULT_SPLIT_ID = ActorSplit.parse(DEFAULT_SPLIT).id


@dataclass
class Predictors:
    audio: AudioModel | None = None
    video: VideoModel | None = None
    fusion: FusionRunModel | None = None
    # a modality the chosen split lacks but another split of the store has: where (said beside "no audio model")
    elsewhere: dict[str, str] = field(default_factory=dict)


def _read_run(folder: Store) -> tuple[Any, dict[str, Any]]:
    run_json = folder.path("run.json")
    if not folder.exists(run_json):
        raise UsageError(f"{folder.url}: no run.json (not a trained run folder)")
    info = folder.read_json(run_json)
    if not isinstance(info, dict):
        raise ModelIntegrityError(f"{folder.url}: run.json is not a JSON object")
    record = info.get("model_file") or {}
    path = model_file_path(folder.root, record, folder.url)
    if not folder.exists(path):
        raise ModelIntegrityError(f"{folder.url}: the model file recorded in run.json ({record.get('file')}) is missing")
    data = folder.read_limited(path, MAX_MODEL_BYTES)
    return load_model(data, record, source=path), info


def _fallback(folder: Store, info: dict[str, Any]) -> Stats | None:
    """The pooled training statistics of a speaker-normalised run (``normalization.json``), else None."""
    norm_json = folder.path("normalization.json")
    if info.get("speaker_norm") in (None, False, "", "none") or not folder.exists(norm_json):
        return None
    try:
        return Stats.from_dict(folder.read_json(norm_json)["fallback"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelIntegrityError(f"{folder.url}: normalization.json is not readable ({type(exc).__name__})") from None


def load_audio_run(run_dir: str) -> AudioModel:
    folder = Store(run_dir)
    est, info = _read_run(folder)
    return AudioModel(est, info, folder.url_of(folder.root), _fallback(folder, info))


def load_video_run(run_dir: str) -> Any:
    """A face run: a frame model (cnn, fer), or a feature model on the ``landmarks`` set."""
    folder = Store(run_dir)
    est, info = _read_run(folder)
    if (info.get("feature_params") or {}).get("name") == "landmarks":
        return LandmarkRunModel(est, info, folder.url_of(folder.root), _fallback(folder, info))
    return VideoRunModel(est, info, folder.url_of(folder.root))


def _run_loader(cls: Callable[[Any, dict[str, Any], str], Any]) -> Callable[[str], Any]:
    """A loader of run folders of one modality: the verified model wrapped in ``cls``."""

    def load(run_dir: str) -> Any:
        folder = Store(run_dir)
        est, info = _read_run(folder)
        return cls(est, info, folder.url_of(folder.root))

    return load


# modality in run.json -> loader of that run folder
LOADERS: dict[str, Callable[[str], Any]] = {
    "audio": load_audio_run, "video": load_video_run, "fusion": _run_loader(FusionRunModel),
}


def run_modality(run_dir: str) -> str:
    folder = Store(run_dir)
    if not folder.exists(folder.path("run.json")):
        raise UsageError(f"{run_dir}: no run.json (not a trained run folder){_runs_under(run_dir)}")
    return str(folder.read_json(folder.path("run.json")).get("modality") or "audio")


def _runs_under(folder: str) -> str:
    """Where ``folder`` holds run folders (a model's folder, OUT/runs/SPLIT/MODEL): ``; the runs in it, newest
    first: ...`` (three, and how many more), any of which ``--model`` takes; else nothing."""
    p = Path(folder)
    try:
        runs = sorted((d for d in p.iterdir() if (d / "run.json").is_file()), key=lambda d: d.stat().st_mtime,
                      reverse=True)
    except OSError:
        return ""
    if not runs:
        return ""
    more = f" and {len(runs) - 3} more" if len(runs) > 3 else ""
    return f"; the runs in it, newest first: {', '.join(str(d) for d in runs[:3])}{more}"


def load_model_path(path: str) -> Predictors:
    """``--model PATH``: a run folder, or the model file inside it (beside its run.json)."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"--model takes a run folder or the model file inside it (OUT/runs/SPLIT/MODEL/VERSION); "
                         f"{path!r} is neither: no such file or folder (--store OUT picks the store's best model)")
    run_dir = p if p.is_dir() else p.parent
    if p.is_file() and p.name != "run.json":
        folder = Store(str(run_dir))
        if not folder.exists(folder.path("run.json")):
            raise UsageError(f"{path}: no run.json beside the model file (not a trained run folder)")
        recorded = (folder.read_json(folder.path("run.json")).get("model_file") or {}).get("file")
        if p.name != recorded:
            raise ModelIntegrityError(f"{path}: not the model file recorded in run.json ({recorded}); refusing it")
    return _predictors_of({run_modality(str(run_dir)): str(run_dir)})


def _predictors_of(runs: dict[str, str]) -> Predictors:
    out = Predictors()
    for modality, run_dir in runs.items():
        loader = LOADERS.get(modality)
        if loader is None:
            raise UsageError(f"{run_dir}: predicting with {modality} models is not supported yet")
        model = loader(run_dir)
        if modality == "audio":
            out.audio = model
        elif modality == "video":
            out.video = model
        else:
            out.fusion = model
    return out


def _splits(store: Store) -> list[str]:
    base = store.path(catalog.RUNS)
    store.fs.invalidate_cache(base)
    if not store.fs.isdir(base):
        return []
    return sorted(posixpath.basename(d) for d in store.fs.ls(base, detail=False) if store.fs.isdir(d))


def choose_runs(store: Store, split: str | None = None, modalities: tuple[str, ...] = ("audio",),
                required: bool = True) -> dict[str, RunRecord]:
    """The run to use per modality: see the module docstring for the rule. With none, a :class:`StoreError`, or
    an empty dict when not ``required``."""
    candidates = [ActorSplit.parse_given(split).id] if split is not None else _splits(store)
    found: dict[str, dict[str, RunRecord]] = {}
    newest: dict[str, float] = {}  # split -> when its newest run (of any model) was written
    for sid in candidates:
        runs = [r for r in collect_runs(store, sid) if r.modality in modalities]
        if runs:
            found[sid] = best_per_modality(runs)
            newest[sid] = max(r.written for r in runs)
    if not found and not required:
        return {}
    if not found:
        if split is None:
            raise StoreError(f"no trained {'/'.join(modalities)} model in {store.url} for any split (run "
                             "`emotion train` first)")
        trained = [sid for sid in _splits(store) if any(r.modality in modalities for r in collect_runs(store, sid))]
        where = f"trained splits: {', '.join(trained)}" if trained else "run `emotion train` first"
        raise StoreError(f"no trained {'/'.join(modalities)} model in {store.url} for split {candidates[0]} ({where})")
    if DEFAULT_SPLIT_ID in found and split is None:
        return found[DEFAULT_SPLIT_ID]
    # the split trained last: the one with the newest run of any model, not the one whose selected run is newest (a
    # split trained today whose best model is an older run was passed over for one trained yesterday)
    return found[max(found, key=lambda sid: (newest[sid], sid))]


def train_command(store: Store) -> str:
    """``emotion train STORE``, with a ``--split`` the stored clips allow where the default split does not fit them
    (the bare command failed on a store of other actors than 01-24)."""
    actors: set[int] = set()
    for modality in ("audio", "video"):
        try:
            known = store.read_manifest(modality)
        except StoreError:
            continue
        if known is not None and "path" in known.columns:
            actors |= {i.actor for i in map(try_parse_id, known["path"]) if i is not None}
    command = f"emotion train {store.url}"
    split = ActorSplit.parse(DEFAULT_SPLIT)
    if actors and lacking_actors(split, actors, "clips", "in the store") is not None:
        other = suggest_split(actors)
        command += f" --split {other}" if other is not None else ""
    return command


def load_predictors(store_url: str | None = None, model_path: str | None = None, split: str | None = None) -> Predictors:
    """The models to predict with: ``model_path`` if given, else the chosen runs of the store."""
    if model_path:
        return load_model_path(model_path)
    if not store_url:  # no trained model at all: the face is still read, by the pretrained FER2013 model
        return Predictors(video=ZeroShotFaceModel())
    store = Store(store_url)
    if store.is_local and not Path(store.root).is_dir():
        raise UsageError(f"store {store_url!r} does not exist or is not a folder")
    modalities = tuple(m for m in ("audio", "video", "fusion") if m in LOADERS)
    runs = choose_runs(store, split, modalities, required=split is not None)
    if not runs:  # nothing trained in the store yet (only extracted): the face is still read, as without a store
        return Predictors(video=ZeroShotFaceModel(),
                          elsewhere={"audio": f"no trained model in {store.url}: run `{train_command(store)}` first"})
    out = _predictors_of({m: store.url_of(catalog.folder_of(store, r)) for m, r in runs.items()})
    if split is None and "audio" not in runs and "fusion" not in runs:
        # the split trained last has no voice model (e.g. a face-only run): say which split has one, not just "none"
        chosen = next(iter(runs.values())).split_id
        try:
            other = next(iter(choose_runs(store, None, ("audio",)).values()))
            out.elsewhere["audio"] = (f"none in split {chosen}, the split trained last; split {other.split_id} has "
                                      f"one: --split {other.split or other.split_id}")
        except StoreError:
            pass
    if out.video is None:  # a store without a trained face model: the pretrained one reads the face
        out.video = ZeroShotFaceModel()
    return out
