"""Train, evaluate and package one model on one actor split (no IO here).

:func:`train_and_evaluate` takes the feature table and returns everything a
run folder holds, as bytes and JSON-able dicts; the caller writes them.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emotion.audio.augment import copies_of, speeds_text
from emotion.audio.normalize import Stats, speaker_standardize
from emotion.core import jsontext
from emotion.core.errors import StoreError
from emotion.core.ids import EMOTION_LABELS, video_only_twins
from emotion.core.params import stable_hash
from emotion.core.progress import ProgressFn
from emotion.core.splits import ActorSplit, lacking_actors
from emotion.models.catalog import MODELS
from emotion.models.persist import SavedModel, dump_model
from emotion.models.search import SearchParams
from emotion.models.tuning import ModelSpec, labels_of, predict_copies, predict_scores, tune
from emotion.reporting.metrics import NO_FACE, NO_FACE_LABEL, confusion_png, evaluate
from emotion.store import catalog
from emotion.store.store import LABEL_COLUMNS


@dataclass(frozen=True)
class SplitData:
    X_train: np.ndarray
    y_train: np.ndarray
    groups: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    test_rows: pd.DataFrame  # path, actor, emotion of each test clip
    data_hash: str  # hash of the (path, content hash) of every clip used
    speaker_norm: bool = False  # each actor's features standardised over that actor's own clips
    fallback: Stats | None = None  # pooled statistics of the raw training features (prediction without a speaker group)
    # augmentation (emotion.audio.augment): a row of X_train and X_test holds `copies` vectors, the clip itself and
    # its copies; every copy is a training row of its clip's label (stack_copies), and a clip is scored by the
    # probabilities averaged over it and its copies (in grouped CV too: emotion.models.tuning.tune)
    copies: int = 1
    # with speaker_norm: the test clips standardised by the pooled fallback instead, as a single clip of an unknown
    # speaker is at prediction time (the accuracy without a group of the speaker's clips)
    X_test_pooled: np.ndarray | None = None
    # a face feature set (landmarks): the test clips without a row (no face found; path, actor, emotion), scored as
    # clips with no prediction (wrong, "no face"), so that n_test counts every test clip as the frame models do
    test_faceless: pd.DataFrame | None = None


RECORDING = ("vocal_channel", "emotion", "intensity", "statement", "repetition", "actor")


def one_row_per_recording(df: pd.DataFrame) -> pd.DataFrame:
    """Drop the speech track of audio-video clips (modality 01) whose audio-only clip (03) is there too, and the
    video-only clips (02) whose audio-video clip (01) is (:func:`~emotion.core.ids.video_only_twins`).

    RAVDESS recorded each performance once: the track of ``01-...-12.mp4`` is
    the recording of ``03-...-12.wav``, and ``02-...-12.mp4`` is ``01-...-12.mp4``
    without its sound. Keeping both would count one recording twice in
    training and in the test metrics.
    """
    df, _ = without_video_twins(df)
    if "modality" not in df.columns or not (df["modality"] == 1).any():
        return df
    audio_only = set(map(tuple, df.loc[df["modality"] == 3, list(RECORDING)].to_numpy().tolist()))
    twin = (df["modality"] == 1) & pd.Series([tuple(r) in audio_only for r in df[list(RECORDING)].to_numpy().tolist()],
                                             index=df.index)
    return df[~twin]


def without_video_twins(df: pd.DataFrame, faceless: pd.DataFrame | None = None
                        ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``df`` and ``faceless`` (a face set's clips without a row) without the video-only clips (02) whose
    audio-video clip (01) is in either (:func:`~emotion.core.ids.video_only_twins`); each as it was where none is."""
    twins = video_only_twins([*df["path"], *(faceless["path"] if faceless is not None else [])])
    if not twins:
        return df, faceless
    return df[~df["path"].isin(twins)], None if faceless is None else faceless[~faceless["path"].isin(twins)]


def split_data(
    df: pd.DataFrame, feature_names: list[str], split: ActorSplit, feature_hash: str, *, speaker_norm: bool = False,
    copies: int = 1, faceless: pd.DataFrame | None = None,
) -> SplitData:
    """Select the split's actors (one row per recording); labels become 0-7 (emotion code - 1).

    With ``speaker_norm``, every actor's features (train and test alike) are
    standardised with the mean and std of that actor's own clips (after the
    twin rows are dropped, so no recording weighs twice); no label is used.
    ``feature_names`` are all stored columns; with ``copies`` > 1 they hold
    that many vectors per clip (:mod:`emotion.audio.augment`), each normalised
    with statistics of its own kind. ``faceless`` (a face feature set: the
    clips without a row, :func:`emotion.featuresets.read_faceless_clips`) adds
    the test actors' ones as test clips without a prediction.
    """
    df, faceless = without_video_twins(df, faceless)
    df = one_row_per_recording(df)
    missing = [c for c in feature_names if c not in df.columns]
    if missing:
        raise StoreError(f"feature table lacks {len(missing)} expected columns (e.g. {missing[0]})")
    tr = df[df["actor"].isin(split.train)]
    te = df[df["actor"].isin(split.test)]
    if tr.empty or te.empty:
        raise StoreError(lacking_actors(split, (int(a) for a in df["actor"].unique()), "clips", "in the store")
                         or f"no clips of {split} in the store")
    keys = sorted(zip(pd.concat([tr, te])["path"], pd.concat([tr, te])["content_hash"], strict=True))
    none = faceless[faceless["actor"].isin(split.test)] if faceless is not None else None
    hashed: dict[str, Any] = {"feature_hash": feature_hash, "clips": keys}
    if none is not None and len(none):  # they change the test scores (absent otherwise: versions stay as they were)
        hashed["test_clips_without_face"] = sorted(zip(none["path"], none["content_hash"], strict=True))
    X_train, X_test = tr[feature_names].to_numpy(np.float32), te[feature_names].to_numpy(np.float32)
    groups = tr["actor"].to_numpy(int)
    fallback = X_test_pooled = None
    if speaker_norm:
        fallback = Stats.of(X_train)
        X_test_pooled = fallback.apply(X_test)
        X_train = speaker_standardize(X_train, groups)
        X_test = speaker_standardize(X_test, te["actor"].to_numpy(int))
    y_train = tr["emotion"].to_numpy(int) - 1
    copies_of(X_train, copies)  # checks the width
    return SplitData(
        X_train=X_train,
        y_train=y_train,
        groups=groups,
        X_test=X_test,
        y_test=te["emotion"].to_numpy(int) - 1,
        test_rows=te[["path", "actor", "emotion"]].reset_index(drop=True),
        data_hash=stable_hash(hashed, 16),
        speaker_norm=speaker_norm,
        fallback=fallback,
        copies=copies,
        X_test_pooled=X_test_pooled,
        test_faceless=none[["path", "actor", "emotion"]].reset_index(drop=True) if none is not None else None,
    )


def run_version(
    model: str, split: ActorSplit, search: SearchParams, feature_hash: str, data_hash: str, speaker_norm: bool = False,
    copies: int = 1,
) -> str:
    """The version of a feature model's run (:func:`emotion.store.catalog.run_version` of its inputs and the model's
    revision, :attr:`ModelSpec.revision`)."""
    revision = MODELS[model].revision if model in MODELS else 1
    return catalog.feature_run_version(model, split.id, revision, search.to_dict(), feature_hash, data_hash,
                                       speaker_norm, copies)


def actors_of(actors: Any) -> list[int]:
    """The distinct actors among the clips' ``actors``, sorted (what was really trained or tested on)."""
    return sorted({int(a) for a in np.asarray(actors).tolist()})


def scores_and_labels(est: Any, X: np.ndarray, copies: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Class scores and predicted labels of rows of ``copies`` vectors each (averaged over the copies)."""
    if copies == 1:
        return predict_scores(est, X), np.asarray(est.predict(X)).astype(int)
    proba = predict_copies(est, X, copies)
    return proba, labels_of(est, proba)


def all_emotions(proba: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
    """Scores over a model's ``classes`` (labels 0-7; all 8 when None) as 8 columns, one per emotion (0 where unknown).

    A model trained on a corpus without some emotions (RAVDESS song: no disgust, no surprise) has fewer columns.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if classes is None:
        if proba.shape[1] == len(EMOTION_LABELS):
            return proba
        classes = np.arange(proba.shape[1])
    out = np.zeros((proba.shape[0], len(EMOTION_LABELS)), dtype=np.float64)
    out[:, np.asarray(classes, dtype=int)] = proba
    return out


def known_emotions(classes: np.ndarray) -> list[str]:
    """The emotion labels a model can answer (its classes, 0-7)."""
    return [EMOTION_LABELS[int(k)] for k in classes]


def prediction_table(rows: pd.DataFrame, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray,
                     classes: np.ndarray | None = None) -> pd.DataFrame:
    """``predictions.parquet`` of every run: the test clips' ``rows`` with true and predicted emotion and ``p_<emotion>``
    (0 for an emotion the model does not know); a face model's clip without a face is predicted "no face" (its
    scores NaN)."""
    proba = all_emotions(proba, classes)
    return rows.reset_index(drop=True).assign(
        true=[EMOTION_LABELS[k] for k in y_true],
        predicted=[NO_FACE_LABEL if k == NO_FACE else EMOTION_LABELS[k] for k in y_pred],
        **{f"p_{lab}": proba[:, k].astype(np.float32) for k, lab in enumerate(EMOTION_LABELS)},
    )


def parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf, write_page_checksum=True)
    return buf.getvalue()


@dataclass
class RunOutput:
    """What one run folder holds."""

    version: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    run: dict[str, Any]
    model_bytes: bytes
    saved: SavedModel
    confusion: bytes
    predictions: bytes  # Parquet
    extra: dict[str, bytes] = field(default_factory=dict)  # model card, normalisation fallback, curves, frame predictions

    def files(self) -> dict[str, bytes]:
        def js(o: Any) -> bytes:
            return (jsontext.dumps(o, indent=2, sort_keys=True) + "\n").encode()

        return {
            "metrics.json": js(self.metrics),
            "params.json": js(self.params),
            "confusion_matrix.png": self.confusion,
            "predictions.parquet": self.predictions,
            self.saved.file: self.model_bytes,
            **self.extra,
            "run.json": js(self.run),  # last: marks the folder complete
        }


def train_and_evaluate(
    spec: ModelSpec,
    data: SplitData,
    split: ActorSplit,
    search: SearchParams,
    feature_params: dict[str, Any],
    feature_hash: str,
    n_jobs: int = 1,
    on_stage: Callable[[str], None] | None = None,
    progress: ProgressFn | None = None,
) -> RunOutput:
    """Tune ``spec`` by grouped CV on the training actors, fit it and evaluate it on the test actors.

    ``on_stage`` is told when the search is done ("tuned"), ``progress`` of every fit of the search, so a
    caller can show progress.
    """
    result = tune(spec, data.X_train, data.y_train, data.groups, search, n_jobs=n_jobs, progress=progress,
                  copies=data.copies)  # (with copies: each fold fitted on its clips and their copies, as below)
    if on_stage is not None:
        on_stage("tuned")
    est = result.estimator  # fitted on every training clip and copy
    proba, pred = scores_and_labels(est, data.X_test, data.copies)
    features = str(feature_params.get("name", "?"))
    modality = "video" if features == "landmarks" else "audio"  # feature models also read the face's landmarks
    rows, y_test = data.test_rows, data.y_test
    none = data.test_faceless
    if none is not None and len(none):  # test clips without a face: no prediction, counted as wrong ("no face")
        rows = pd.concat([rows, none], ignore_index=True)
        y_test = np.concatenate([y_test, none["emotion"].to_numpy(int) - 1])
        pred = np.concatenate([pred, np.full(len(none), NO_FACE)])
        proba = np.vstack([np.asarray(proba, dtype=np.float64), np.full((len(none), np.shape(proba)[1]), np.nan)])
    # the actors of the clips used, not the split's (the data may lack some of them); the split is in run.json
    metrics = evaluate(y_test, pred, train_actors=actors_of(data.groups), test_actors=actors_of(rows["actor"]),
                       n_train=len(data.y_train), faces=modality == "video")
    version = run_version(spec.name, split, search, feature_hash, data.data_hash, data.speaker_norm, data.copies)
    if data.X_test_pooled is not None:  # what the accuracy is without grouping each test speaker's clips
        single = scores_and_labels(est, data.X_test_pooled, data.copies)[1] == data.y_test
        metrics["accuracy_single_clip"] = float(np.sum(single) / len(y_test))  # clips without a face: wrong
    metrics.update({"model": spec.name, "modality": modality, "emotions": known_emotions(np.unique(data.y_train)),
                    "cv_accuracy": result.cv_accuracy, "cv_std": result.cv_std,
                    "cv": f"GroupKFold({search.cv_folds}) by actor on train actors",
                    "features": features, "speaker_norm": data.speaker_norm})
    model_bytes, saved = dump_model(est)
    classes = np.asarray(getattr(est, "classes_", np.arange(np.asarray(proba).shape[1])), dtype=int)
    preds = prediction_table(rows, y_test, pred, proba, classes)
    named = f"{spec.title} · {modality} · {features}"  # lr on the voice and lr on the face's landmarks are two runs
    title = f"{named}: {split.id}\naccuracy {metrics['accuracy']:.3f}, UAR {metrics['uar']:.3f}"
    params = {"model": spec.name, "best_params": result.best_params, "search": search.to_dict(),
              "stages": result.stages, "features": features, "speaker_norm": data.speaker_norm}
    if data.copies > 1:
        params["augmentation"] = {
            "speeds": list(feature_params.get("speeds", [])),
            "how": "hyper-parameters chosen by grouped CV in which each fold's model is fitted on its clips and "
                   "their copies at these speeds and scored as at test time; the final model is fitted on the clips "
                   "and their copies; test predictions average the probabilities of each clip and its copies"}
    run = {
        "model": spec.name, "modality": modality, "version": version, "split": str(split), "split_id": split.id,
        "feature_params": feature_params, "feature_hash": feature_hash, "data_hash": data.data_hash,
        "search": search.to_dict(), "model_file": saved.to_dict(), "fit_seconds": round(result.seconds, 2),
        "label_columns": list(LABEL_COLUMNS), "classes": list(EMOTION_LABELS),
        "emotions": known_emotions(classes),  # what the model can answer (a corpus may lack some emotions)
        "features": features, "speaker_norm": data.speaker_norm,
        "revision": spec.revision,  # the model's training revision (in the version too)
        # augmented: its grouped CV fitted each fold on the copies (runs tuned on the clips alone lack it)
        **({"copies_in_cv": True} if data.copies > 1 else {}),
    }
    extra = {"model_card.md": model_card(named, metrics, run, result.best_params).encode()}
    if data.fallback is not None:
        extra["normalization.json"] = (jsontext.dumps({
            "speaker_norm": True,
            "how": "each speaker standardised by the mean and std of their own clips; without a group of clips "
                   "of one speaker, fall back to these pooled statistics of the raw training features",
            "fallback": data.fallback.to_dict()}) + "\n").encode()
    return RunOutput(version, metrics, params, run, model_bytes, saved,
                     confusion_png(metrics["confusion_matrix"], title, metrics.get("confusion_no_face")),
                     parquet_bytes(preds), extra)


KNOWN_LIMITS = {  # by modality: what the model heard or saw
    "audio": "Trained and tested on RAVDESS-style acted speech: North-American English, two fixed statements, "
             "studio conditions (quiet, close microphone). Expect lower accuracy on spontaneous speech, other "
             "languages or accents, noisy or far-field audio, and telephone bandwidth.",
    "video": "Trained and tested on RAVDESS-style acted faces: frontal, evenly lit studio video of a few dozen "
             "actors, read as the geometry of face landmarks. Expect lower accuracy on faces turned away or partly "
             "hidden, other lighting or cameras, people unlike the actors, and spontaneous expressions.",
}
CATEGORIES_LIMIT = "Eight acted categories; real emotions are rarely this prototypical or this balanced."
SPEAKER_NORM_LIMIT = ("Speaker normalisation (when on) assumes several clips of the same speaker covering a mix of "
                      "emotions; a speaker who is angry in every clip is normalised towards neutral.")


def model_card(title: str, metrics: dict[str, Any], run: dict[str, Any], best_params: dict[str, Any]) -> str:
    """A short markdown model card: data, split, features, normalisation, metrics, known limits."""
    norm = ("on: each speaker's features standardised by that speaker's own clips (training and test alike; "
            "labels unused). Predicting for a new speaker needs a group of their clips, else pooled training "
            "statistics are used and accuracy drops." if run["speaker_norm"] else "off")
    lines = [
        f"# Model card: {title}", "",
        "## Data",
        f"- {metrics['n_train']} training clips of actors {metrics['train_actors']}; "
        f"{metrics['n_test']} test clips of actors {metrics['test_actors']} (the actors of split {run['split']} "
        "that the data holds)",
        *([f"- {metrics['n_test_clips_without_face']} of the test clips had no face in any kept frame: no prediction, "
           "counted as wrong (the confusion matrix's \"no face\" column)"]
          if metrics.get("n_test_clips_without_face") else []),
        # not "data version": that is the extraction's hash in the run names (data-1a2b3c4d), another number
        f"- training-data hash {run['data_hash']} (of the feature set and of every train and test clip's path and "
        "content; part of the run version)", "",
        "## Split and selection",
        f"- speaker-independent split {run['split']}: no test actor was used for any choice",
        f"- hyper-parameters chosen by {metrics['cv']}: accuracy {metrics['cv_accuracy']:.3f} ± {metrics['cv_std']:.3f}",
        f"- chosen: `{json_line(best_params)}`", "",
        "## Features",
        f"- set `{run['features']}` (parameters hash {run['feature_hash']})",
        f"- speaker normalisation: {norm}",
        f"- augmentation: {augmentation(run)}", "",
        "## Metrics on the test actors",
        f"- accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}, UAR {metrics['uar']:.3f}",
        *([f"- the accuracy assumes each test speaker's clips are normalised together; one clip at a time (pooled "
           f"training statistics): {metrics['accuracy_single_clip']:.3f}"] if "accuracy_single_clip" in metrics else []),
        "", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|",
    ]
    lines += [f"| {c} | {v['precision']:.2f} | {v['recall']:.2f} | {v['f1']:.2f} | {v['support']} |"
              for c, v in metrics["per_class"].items()]
    limits = [KNOWN_LIMITS.get(str(run.get("modality", "audio")), KNOWN_LIMITS["audio"]), CATEGORIES_LIMIT]
    limits += [SPEAKER_NORM_LIMIT] if run["speaker_norm"] or run.get("modality", "audio") == "audio" else []
    lines += ["", "## Known limits", *[f"- {x}" for x in limits], ""]
    return "\n".join(lines)


def augmentation(run: dict[str, Any]) -> str:
    speeds = (run.get("feature_params") or {}).get("speeds") or []
    if not speeds:
        return "none"
    where = ("in every fold of the grouped CV and in the final fit" if run.get("copies_in_cv")
             else "in the final fit (the grouped CV ran on the clips alone)")
    return (f"copies of every clip played at {speeds_text(speeds)} speed, added to the training "
            f"clips {where}; predictions average the probabilities of a clip and its copies")


def json_line(obj: Any) -> str:
    import json

    return json.dumps(obj, sort_keys=True, default=str)
