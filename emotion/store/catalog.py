"""The run catalog: one typed record per run folder, one path convention, one version, one selection rule.

A run lives in ``runs/<split-id>/<model>/<version>/`` (:func:`run_dir`): its
``run.json`` (written last: it marks the folder complete), ``metrics.json``,
the model file named in ``run.json`` and what else the run keeps. Its
version (:func:`run_version`) is a hash of everything that changes its
result, so the same inputs find the same folder and reuse it
(:func:`reuse_or_train`) instead of training again.

:class:`RunRecord` is a run folder as everyone reads it (the summary, the
report, leave-one-actor-out, predict): :meth:`RunRecord.from_dict` reads
``run.json`` (and ``metrics.json``) of every earlier version, a field the
folder does not record being None.

Selection (:func:`selection_key`, :func:`best_per_modality`): see
:data:`SELECTION_RULE`; it never reads the test actors' scores.
"""

from __future__ import annotations

import logging
import math
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from emotion.audio.augment import speeds_text
from emotion.core.errors import StoreError
from emotion.core.params import stable_hash
from emotion.core.provenance import origin_of
from emotion.store.store import MAX_JSON_BYTES, Store

log = logging.getLogger(__name__)

RUNS = "runs"
SUMMARY = "summary.json"
MODEL_CARD = "model_card.md"
MODALITY_ORDER = ("audio", "video", "fusion")

SELECTION_RULE = ("chosen per modality by grouped-CV accuracy on the train actors (never by the test actors' "
                  "scores); a run without a CV score (none recorded, or not a number) never wins over one with a "
                  "score; ties and runs without a score are ordered by model name, feature set, normalisation and "
                  "version")

# what a speaker-normalised run's accuracy assumes, said beside its accuracy_single_clip (the reports, the CLI)
SPEAKER_NORM_ASSUMES = ("accuracy assumes each test speaker's clips are normalised together; a single clip of an unknown "
                        "speaker is normalised with pooled training statistics instead (`emotion predict --same-speaker` "
                        "with 8 or more clips of one speaker normalises them together)")


# -- where runs live ---------------------------------------------------------------------------------------------

def split_dir(store: Store, split_id: str) -> str:
    """``runs/<split-id>``: every run of one split, its summary and report."""
    return store.path(RUNS, split_id)


def run_dir(store: Store, split_id: str, model: str, version: str) -> str:
    """``runs/<split-id>/<model>/<version>``: one run folder."""
    return posixpath.join(split_dir(store, split_id), model, version)


def folder_of(store: Store, record: RunRecord) -> str:
    """The run folder a record was read from (``runs/<split-id>/<rel_dir>``)."""
    return posixpath.join(split_dir(store, record.split_id), record.rel_dir)


def summary_path(store: Store, split_id: str) -> str:
    return posixpath.join(split_dir(store, split_id), SUMMARY)


def loso_dir(store: Store, split_id: str) -> str:
    return posixpath.join(split_dir(store, split_id), "loso")


# -- leave-one-actor-out results ---------------------------------------------------------------------------------

def loso_settings(mode: str, search: Mapping[str, Any] | None = None, params_split: str | None = None,
                  params_run: str | None = None, revision: int = 1, copies: int = 1) -> dict[str, Any]:
    """What changes a LOSO result beyond the data, feature set, normalisation and model: for ``nested`` the
    search settings (n_iter, cv_folds, refine, seed), the model's training revision where it is not the first
    (:attr:`emotion.models.tuning.ModelSpec.revision`: results of an earlier one are not this code's) and, for rows
    of augmented copies, that the nested searches fit them (:func:`feature_run_version`); for ``fixed`` the split
    id and version of the stored run whose hyper-parameters are copied (``--params-from``)."""
    if mode == "fixed":
        return {"mode": "fixed", "params_split": params_split, "params_run": params_run}
    return {"mode": mode, **dict(search or {}), **({"revision": revision} if revision != 1 else {}),
            **({"copies_in_cv": True} if copies > 1 else {})}


def loso_row_settings(r: Mapping[str, Any]) -> dict[str, Any] | None:
    """The settings of a LOSO result row; for rows written before they were recorded, those its ``search``
    (nested) or the run folder its ``params_from`` names (fixed, ``.../runs/<split-id>/<model>/<version>``) show."""
    if isinstance(r.get("settings"), dict):
        return dict(r["settings"])
    if r.get("mode") == "nested" and isinstance(r.get("search"), dict):
        return loso_settings("nested", r["search"])
    parts = str(r.get("params_from") or "").rstrip("/").split("/")
    if r.get("mode") == "fixed" and len(parts) >= 3:
        return loso_settings("fixed", params_split=parts[-3], params_run=parts[-1])
    return None


def loso_settings_hash(settings: Mapping[str, Any] | None) -> str:
    """8 hex digits of the settings; empty when they are not known."""
    return stable_hash(dict(settings), 8) if settings is not None else ""


def loso_settings_text(settings: Mapping[str, Any] | None) -> str:
    """``n_iter 10, 3 folds, refine, seed 0`` or ``run 1a2b3c4d5e6f on train01-16_test17-20``."""
    if not settings:
        return "not recorded"
    if settings.get("mode") == "fixed":
        return f"run {settings.get('params_run')} on {settings.get('params_split')}"
    return (f"n_iter {settings.get('n_iter')}, {settings.get('cv_folds')} folds, "
            f"{'refine' if settings.get('refine') else 'no refine'}, seed {settings.get('seed')}")


def loso_file(store: Store, split_id: str, feature_key: str, speaker_norm: bool, model: str, settings: Mapping[str, Any]
              ) -> str:
    """``runs/<split-id>/loso/<set>-<hash>[-speakernorm]/<model>-<mode>-<settings hash>.json``: one LOSO result;
    results with other search settings or another source run sit beside it."""
    folder = posixpath.join(loso_dir(store, split_id), f"{feature_key}{'-speakernorm' if speaker_norm else ''}")
    return posixpath.join(folder, f"{model}-{settings['mode']}-{loso_settings_hash(settings)}.json")


def run_version(model: str, split_id: str, revision: int = 1, **inputs: Any) -> str:
    """The version of a run: a hash of the model's name, the split and every input that changes its result.

    Audio, video and fused runs each name their own inputs (``emotion.training``); keys are hashed in sorted
    order, so the versions of earlier releases are unchanged.
    """
    return stable_hash({"model": model, "split": split_id, "revision": revision, **inputs})


def feature_run_version(model: str, split_id: str, revision: int, search: Mapping[str, Any], feature_hash: str,
                        data_hash: str, speaker_norm: bool = False, copies: int = 1) -> str:
    """The version of a feature model's run (:func:`emotion.training.audio.run_version`): :func:`run_version` of the
    search settings, the feature and data hashes and, only when on, speaker normalisation and augmented copies in
    the grouped CV (absent when off, so versions of runs without them are unchanged; augmented runs tuned before
    their CV fitted on the copies are trained again)."""
    norm = {"speaker_norm": True} if speaker_norm else {}
    if copies > 1:
        norm["copies_in_cv"] = True
    return run_version(model, split_id, revision, search=dict(search), feature_hash=feature_hash, data_hash=data_hash,
                       **norm)


_REVISIONS = range(1, 10)  # the training revisions a stored feature model's run is checked against


def tuned_as_trained(r: RunRecord) -> bool:
    """Whether a feature model's run chose its hyper-parameters by the grouped CV this code runs: true unless it
    is augmented and was tuned on the clips alone (before each fold was fitted on the copies: no ``copies_in_cv``
    in run.json)."""
    return not r.speeds or r.info.get("copies_in_cv") is True


def feature_run_revision(r: RunRecord) -> int:
    """The training revision (:attr:`emotion.models.tuning.ModelSpec.revision`) a feature model's run was trained by.

    ``run.json`` records it; runs written before it did are read off their version: the revision whose
    :func:`feature_run_version` of the run's recorded inputs is the run's version, 1 when none is (runs written before
    versions were computed this way)."""
    info = r.info
    if type(info.get("revision")) is int:  # not a bool (an int to isinstance)
        return int(info["revision"])
    if not isinstance(info.get("search"), dict) or not info.get("feature_hash") or not info.get("data_hash"):
        return 1
    for revision in _REVISIONS:
        if feature_run_version(r.model, r.split_id, revision, info["search"], str(info["feature_hash"]),
                               str(info["data_hash"]), info.get("speaker_norm") is True) == r.version:
            return revision
    return 1


# -- the record --------------------------------------------------------------------------------------------------

def _score(v: Any) -> float | None:
    """A metric as a float, None when absent or not a number (NaN: no score)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return None if math.isnan(float(v)) else float(v)


def _count(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _norm_text(v: Any) -> str | None:
    """Speaker normalisation as recorded (a bool, a name or, in early runs, a dict) as text; None when off."""
    if v is None or v is False or v == "" or (isinstance(v, str) and v.lower() == "none"):
        return None
    if isinstance(v, dict):
        return str(v.get("name") or v.get("kind") or ", ".join(f"{k}={v[k]}" for k in sorted(v)))
    return "yes" if v is True else str(v)


def with_augment(feature_set: str, speeds: Sequence[float] | None) -> str:
    """A feature set's name in a table, with its speed copies where the row was augmented (``--augment``)."""
    return f"{feature_set} + copies at {speeds_text(speeds)}" if speeds else feature_set


def short_features(text: str) -> str:
    """A feature description without hashes and parenthesised details: ``seed-4bd90a733487 + fer2013 face embedding
    (face256-every20-b6d1fda3f2a5)`` -> ``seed + face``."""
    out = []
    for part in str(text).split(" + "):
        part = re.sub(r"\s*\([^)]*\)", "", part).strip()
        part = re.sub(r"-[0-9a-f]{6,}$", "", part)
        part = re.sub(r"^(fer2013 )?face embedding$|^fer2013.*", "face", part)
        if part:
            out.append(part)
    return " + ".join(out)


@dataclass(frozen=True)
class RunRecord:
    """One complete run folder: what it trained on, how, its scores and its model file.

    ``metrics`` and ``info`` keep the whole ``metrics.json`` and ``run.json``
    (per-class scores, figures' inputs, fields this type does not name).
    """

    model: str
    version: str
    modality: str = "audio"  # runs of the first release record none: audio
    split: str | None = None
    split_id: str = ""
    features: str | None = None  # the feature set's name (audio), frames key (video), what was fused (fusion)
    feature_set: str | None = None  # the set's key ``<name>-<hash>`` (feature models), else ``features``
    feature_hash: str | None = None
    feature_params: dict[str, Any] | None = None
    frame_params: dict[str, Any] | None = None
    speaker_norm: str | None = None  # "yes" (or the recorded kind) when on; None when off or not recorded
    augment: tuple[float, ...] = ()  # speeds of the augmented copies trained on (``--augment``)
    data_hash: str | None = None
    model_file: str | None = None
    model_sha256: str | None = None
    params: dict[str, Any] | None = None  # the search (feature models) or the estimator's parameters
    accuracy: float | None = None  # on the test actors
    macro_f1: float | None = None
    uar: float | None = None
    cv_accuracy: float | None = None  # grouped CV on the train actors (None: no score, e.g. NaN)
    cv_std: float | None = None
    n_train: int | None = None
    n_test: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict, repr=False)  # metrics.json
    info: dict[str, Any] = field(default_factory=dict, repr=False)  # run.json
    # where the folder is, as the report and predict see it
    rel_dir: str = ""  # relative to runs/<split-id>/, e.g. "svc/1a2b3c4d5e6f"
    written: float = 0.0  # when run.json was written (seconds since the epoch; 0 if unknown)
    has_card: bool = False  # the run folder holds a model_card.md
    show_key: bool = False  # another revision of the same set is shown too: name the set by its key

    @classmethod
    def from_dict(cls, info: Mapping[str, Any], metrics: Mapping[str, Any] | None = None, **where: Any) -> RunRecord:
        """The record of a ``run.json`` (and its ``metrics.json``) of any version; absent fields are None.

        Also reads :meth:`to_dict`'s output back. ``where``: rel_dir, split_id, written, has_card.
        """
        info, metrics = dict(info), dict(metrics or {})

        def get(name: str) -> Any:
            v = info.get(name)
            return metrics.get(name) if v is None else v

        fp = info.get("feature_params") if isinstance(info.get("feature_params"), dict) else None
        features = get("features")
        if features is None:
            features = (fp or {}).get("name")
        modality = str(get("modality") or "audio")
        name = _norm_text(features)
        fhash = info.get("feature_hash")
        feature_set = info.get("feature_set") or name
        if modality != "fusion" and fp is not None and name and fhash and not str(feature_set).endswith(f"-{fhash}"):
            feature_set = f"{name}-{fhash}"
        mf = info.get("model_file")
        model_file = mf.get("file") if isinstance(mf, dict) else info.get("model_file_name")
        sha = mf.get("sha256") if isinstance(mf, dict) else info.get("model_sha256")
        speeds = info.get("augment")
        if speeds is None:
            speeds = (fp or {}).get("speeds") or ()
        params = info.get("params")
        if params is None:
            params = info.get("search") if info.get("search") is not None else info.get("estimator_params")
        rel = where.get("rel_dir", "")
        model, version = (rel.split("/", 1) + [""])[:2] if rel else ("", "")
        return cls(
            model=str(info.get("model") or metrics.get("model") or model), version=str(info.get("version") or version),
            modality=modality, split=info.get("split"), split_id=str(where.get("split_id") or info.get("split_id") or ""),
            features=name, feature_set=str(feature_set) if feature_set else None, feature_hash=fhash,
            feature_params=fp, frame_params=info.get("frame_params") if isinstance(info.get("frame_params"), dict) else None,
            speaker_norm=_norm_text(get("speaker_norm")), augment=tuple(float(s) for s in speeds),
            data_hash=info.get("data_hash"), model_file=model_file, model_sha256=sha,
            params=params if isinstance(params, dict) else None,
            accuracy=_score(get("accuracy")), macro_f1=_score(get("macro_f1")), uar=_score(get("uar")),
            cv_accuracy=_score(get("cv_accuracy")), cv_std=_score(get("cv_std")),
            n_train=_count(get("n_train")), n_test=_count(get("n_test")), metrics=metrics, info=info,
            rel_dir=rel, written=float(where.get("written", 0.0)), has_card=bool(where.get("has_card", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The record's typed fields as a JSON-able dict (:meth:`from_dict` reads it back)."""
        return {
            "model": self.model, "version": self.version, "modality": self.modality, "split": self.split,
            "split_id": self.split_id, "features": self.features, "feature_set": self.feature_set,
            "feature_hash": self.feature_hash, "feature_params": self.feature_params,
            "frame_params": self.frame_params, "speaker_norm": self.speaker_norm, "augment": list(self.augment),
            "data_hash": self.data_hash, "model_file_name": self.model_file, "model_sha256": self.model_sha256,
            "params": self.params, "accuracy": self.accuracy, "macro_f1": self.macro_f1, "uar": self.uar,
            "cv_accuracy": self.cv_accuracy, "cv_std": self.cv_std, "n_train": self.n_train, "n_test": self.n_test,
        }

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What makes two runs the same row of a report: modality, feature set, normalisation, model."""
        return (self.modality, self.feature_set or self.features or "", self.speaker_norm or "", self.model)

    @property
    def speeds(self) -> list[float]:
        """The speeds of the augmented copies the run trained on (``--augment``; empty: none)."""
        return list(self.augment)

    @property
    def features_shown(self) -> str | None:
        shown = self.feature_set if self.show_key else self.features
        return with_augment(shown, self.speeds) if shown else shown

    @property
    def label(self) -> str:
        norm = "speaker norm" if self.speaker_norm == "yes" else self.speaker_norm
        extra = [x for x in (self.features_shown, norm) if x]
        return f"{self.modality}/{self.model}" + (f" ({', '.join(extra)})" if extra else "")

    @property
    def short_label(self) -> str:
        """A label to read at a glance, e.g. ``audio · svc · extended`` or ``fusion · early · seed + face``
        (:func:`short_labels` makes them unique within a report)."""
        model = self.model.removeprefix("fusion-") if self.modality == "fusion" else self.model
        parts = [self.modality, model]
        feats = short_features(self.features) if self.features else ""
        if feats and self.show_key and self.feature_set and self.feature_set.startswith(f"{self.features}-"):
            feats += f" #{self.feature_set.removeprefix(f'{self.features}-')[:6]}"  # two revisions of the set
        if feats and feats != model:
            parts.append(feats + (" + aug" if self.speeds else ""))
        if self.speaker_norm:
            parts.append("speaker-norm")
        return " · ".join(parts)

    @property
    def data_origin(self) -> str:
        """Where the run's training data came from: synthetic, recorded or unknown (:mod:`emotion.core.provenance`)."""
        return origin_of(self.info)


# -- reading the catalog -----------------------------------------------------------------------------------------

def _mtime(store: Store, path: str) -> float:
    try:
        info = store.fs.info(path)
    except OSError:
        return 0.0
    for k in ("mtime", "LastModified", "last_modified", "created"):
        v = info.get(k)
        if v is None:
            continue
        if hasattr(v, "timestamp"):
            return float(v.timestamp())
        try:
            return float(v)
        except (TypeError, ValueError):
            continue
    return 0.0


# Scores a run may lack (a video model without validation actors, a fused model without clips of both kinds): null in
# metrics.json (strict JSON), NaN in memory, as the training code computes them and every reader expects
_SCORES = frozenset({"accuracy", "macro_f1", "uar", "cv_accuracy", "cv_std", "frame_accuracy", "accuracy_single_clip",
                     "fused", "audio_only", "video_only"})


def scores_as_nan(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` as read from ``metrics.json``, with the scores written as null (no score) back to NaN, also one
    level down (``audio_visual_clips``)."""
    def fix(d: dict[str, Any]) -> dict[str, Any]:
        return {k: math.nan if v is None and k in _SCORES else fix(v) if isinstance(v, dict) else v for k, v in d.items()}

    return fix(metrics)


def read_run(store: Store, split_id: str, rel_dir: str) -> RunRecord | None:
    """The record of ``runs/<split_id>/<rel_dir>``, or None when the folder is not a complete run."""
    folder = posixpath.join(split_dir(store, split_id), rel_dir)
    if not store.run_complete(folder) or not store.exists(posixpath.join(folder, "metrics.json")):
        return None
    try:
        info = store.read_json(posixpath.join(folder, "run.json"))
        metrics = store.read_json(posixpath.join(folder, "metrics.json"))
        if not isinstance(info, dict) or not isinstance(metrics, dict):
            raise StoreError(f"{store.url_of(folder)}: run.json or metrics.json is not a JSON object")
    except StoreError as exc:  # one damaged run folder never hides the others
        log.warning("skipping the run %s: %s", store.url_of(folder), exc)
        return None
    return RunRecord.from_dict(info, scores_as_nan(metrics), rel_dir=rel_dir, split_id=split_id,
                               written=_mtime(store, posixpath.join(folder, "run.json")),
                               has_card=store.exists(posixpath.join(folder, MODEL_CARD)))


def collect_runs(store: Store, split_id: str, *, newest_only: bool = True) -> list[RunRecord]:
    """Complete runs of a split; with ``newest_only``, the newest per (modality, features, speaker_norm, model).

    Best first by :func:`selection_key` (:func:`ranked`: validation, as selected, never the test actors' scores),
    across modalities, as the training summary and ``emotion train``'s table rank them."""
    base = split_dir(store, split_id)
    store.fs.invalidate_cache(base)
    if not store.fs.isdir(base):
        return []
    records = []
    for model_dir in sorted(store.fs.ls(base, detail=False)):
        if not store.fs.isdir(model_dir):
            continue
        for folder in sorted(store.fs.ls(model_dir, detail=False)):
            if not store.fs.isdir(folder):
                continue
            rec = read_run(store, split_id, f"{posixpath.basename(model_dir)}/{posixpath.basename(folder)}")
            if rec is not None:
                records.append(rec)
    if not newest_only:
        return records
    newest: dict[tuple[str, str, str, str], RunRecord] = {}
    for r in records:
        if r.key not in newest or (r.written, r.version) > (newest[r.key].written, newest[r.key].version):
            newest[r.key] = r
    kept = list(newest.values())
    revisions: dict[tuple[str, str | None], set[str | None]] = {}
    for r in kept:
        revisions.setdefault((r.modality, r.features), set()).add(r.feature_set)
    kept = [replace(r, show_key=True) if len(revisions[(r.modality, r.features)]) > 1 else r for r in kept]
    return ranked(kept)  # the order of every table: as selected (by validation), never by the test actors


def _modality_rank(m: str) -> int:
    return MODALITY_ORDER.index(m) if m in MODALITY_ORDER else len(MODALITY_ORDER)


def find_runs(store: Store, split_id: str, model: str, feature_key: str, speaker_norm: bool) -> list[RunRecord]:
    """The complete audio-side runs of ``model`` on the feature set ``feature_key`` (``<name>-<hash>``: the hash
    covers every parameter, augmentation included) with this speaker normalisation, of any training revision,
    newest first."""
    found = [r for r in collect_runs(store, split_id, newest_only=False)
             if r.model == model and r.feature_set == feature_key and bool(r.speaker_norm) == speaker_norm]
    return sorted(found, key=lambda r: (r.written, r.version), reverse=True)


# -- selection ---------------------------------------------------------------------------------------------------

def selection_key(r: RunRecord) -> tuple[int, float, str, str, str, str]:
    """Smaller is better: see :data:`SELECTION_RULE` (the test actors' scores are never read)."""
    cv = r.cv_accuracy
    return (0 if cv is not None else 1, -cv if cv is not None else 0.0, r.model, r.feature_set or r.features or "",
            r.speaker_norm or "", r.version)


def ranked(records: Iterable[RunRecord]) -> list[RunRecord]:
    """``records`` best first by :func:`selection_key`."""
    return sorted(records, key=selection_key)


def rank_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Result rows (as the training tasks and ``summary.json`` list runs) best first by :func:`selection_key`."""
    return sorted(rows, key=lambda r: selection_key(RunRecord.from_dict(r)))


def best_per_modality(records: Iterable[RunRecord]) -> dict[str, RunRecord]:
    """The selected run of each modality (:data:`SELECTION_RULE`), in the order of :data:`MODALITY_ORDER`."""
    best: dict[str, RunRecord] = {}
    for r in ranked(records):
        best.setdefault(r.modality, r)
    return dict(sorted(best.items(), key=lambda kv: (_modality_rank(kv[0]), kv[0])))


# -- reuse or train ----------------------------------------------------------------------------------------------

class RunFiles(Protocol):
    version: str  # the version of what was trained (e.g. of the frames actually read)

    def files(self) -> dict[str, bytes]: ...


@dataclass(frozen=True)
class Trained:
    """A run folder after :func:`reuse_or_train`: its record, URL and whether it was reused."""

    record: RunRecord
    run_dir: str
    reused: bool


def reuse_or_train(store: Store, split_id: str, model: str, version: str, train: Callable[[], RunFiles], *,
                   force: bool = False) -> Trained:
    """The run ``runs/<split_id>/<model>/<version>``: reused when complete (and its model file is there) unless
    ``force``, else ``train()``'s files are written, ``run.json`` last (it marks the folder complete).

    A reused run's ``run.json`` is written again, unchanged: the run asked for last is the newest of its kind, the
    one ``emotion predict`` and ``summary.json`` take (a run trained in between on other data or settings was taken
    instead, and a note told to train again what was just reused)."""
    folder = run_dir(store, split_id, model, version)
    reused = store.run_reusable(folder) and not force
    if reused:  # the newest of its kind again (collect_runs: by run.json's time), as predict and summary.json take it
        run_json = posixpath.join(folder, "run.json")
        store.write_bytes(run_json, store.read_limited(run_json, MAX_JSON_BYTES))
    else:
        output = train()
        version = output.version or version  # the inputs read may differ from those looked up (a concurrent extract)
        folder = run_dir(store, split_id, model, version)
        files = output.files()
        for name, blob in files.items():
            if name != "run.json":
                store.write_bytes(posixpath.join(folder, name), blob)
        store.write_bytes(posixpath.join(folder, "run.json"), files["run.json"])
    record = read_run(store, split_id, f"{model}/{version}")
    if record is None:
        raise StoreError(f"{store.url_of(folder)}: the run folder is not readable after training")
    return Trained(record, store.url_of(folder), reused)
