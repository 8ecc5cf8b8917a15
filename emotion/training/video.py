"""Train and evaluate a frame model on one actor split, per clip (no IO beyond reading frames).

The training actors are split once more by actor: a few are held out for
validation (early stopping and the curves), the rest are fitted on. Test
actors are only predicted. A clip's outcome is the mean of its frames'
probabilities; every frame's top two emotions are kept in
``frame_predictions.parquet``.

Training reads its frames once per epoch: :func:`pinned_frames` copies them
from the store once, so an extraction committing at the same time (which may
rewrite and delete parts) cannot pull a part from under a run.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from emotion.core import jsontext
from emotion.core.errors import StoreError, UsageError
from emotion.core.ids import EMOTION_LABELS
from emotion.core.params import stable_hash
from emotion.core.progress import ProgressFn
from emotion.core.splits import ActorSplit, lacking_actors
from emotion.models.frame_nets import NN_MODELS, KerasFrameClassifier, curves_png
from emotion.models.persist import dump_model
from emotion.reporting.metrics import NO_FACE, confusion_png, evaluate
from emotion.store import catalog
from emotion.store.store import READ_RETRIES, Store
from emotion.training.audio import RunOutput, actors_of, parquet_bytes, prediction_table, without_video_twins
from emotion.video.frames import FrameParams
from emotion.video.frameset import FrameSet, aggregate_clips, frame_index, top_two

VAL_SHARE = 0.15  # share of the training actors held out for validation (at least one)


@dataclass(frozen=True)
class VideoSplit:
    fit: FrameSet
    val: FrameSet | None
    test: FrameSet
    fit_actors: tuple[int, ...]
    val_actors: tuple[int, ...]
    clips: pd.DataFrame  # path, actor, emotion of every clip used
    data_hash: str


def validation_actors(train: tuple[int, ...], seed: int) -> tuple[int, ...]:
    """A fixed, seeded choice of training actors for validation (none if fewer than 3)."""
    if len(train) < 3:
        return ()
    n = max(1, int(round(len(train) * VAL_SHARE)))
    rng = np.random.default_rng(seed)
    return tuple(sorted(int(a) for a in rng.choice(sorted(train), size=n, replace=False)))


def split_frames(store: Store, params: FrameParams, split: ActorSplit, seed: int = 0) -> VideoSplit:
    """The fit / validation / test frame sets of ``split`` (faces only for fitting on face crops)."""
    idx = without_video_twins(frame_index(store, params.key))[0]  # one clip per recording (01 over its 02)
    train = tuple(a for a in split.train if a in set(idx["actor"]))
    lack = lacking_actors(split, (int(a) for a in idx["actor"].unique()), "frames", "in the store")
    if lack:
        raise StoreError(lack)
    val_actors = validation_actors(train, seed)
    fit_actors = tuple(a for a in train if a not in val_actors)
    faces = params.face_crop
    fit = FrameSet.select(store, params.key, fit_actors, faces_only=faces, index=idx)
    val = FrameSet.select(store, params.key, val_actors, faces_only=faces, index=idx) if val_actors else None
    test = FrameSet.select(store, params.key, split.test, faces_only=faces, index=idx)
    used = idx[idx["actor"].isin([*split.train, *split.test])]
    clips = used.drop_duplicates("path")[["path", "content_hash", "actor", "emotion"]].sort_values("path")
    data_hash = stable_hash({"frames": params.key, "clips": sorted(zip(clips["path"], clips["content_hash"], strict=True))}, 16)
    return VideoSplit(fit, val, test, fit_actors, val_actors,
                      clips[["path", "actor", "emotion"]].reset_index(drop=True), data_hash)


@contextlib.contextmanager
def pinned_frames(store: Store, params: FrameParams, split: ActorSplit, seed: int = 0) -> Iterator[VideoSplit]:
    """:func:`split_frames` with its fit, validation and test frames copied once into a private temporary folder
    (removed on exit), so every epoch reads the same frames whatever a concurrent writer does to the store.

    When a part vanishes during the copy (compacted by a writer), the frames are selected afresh and copied again,
    up to :data:`~emotion.store.READ_RETRIES` times; ``data_hash`` is that of the frames copied.
    """
    for attempt in range(READ_RETRIES):
        data = split_frames(store, params, split, seed)
        folder = tempfile.mkdtemp(prefix="emotion-frames-")
        try:
            pinned = replace(
                data, fit=data.fit.copy_to(f"{folder}/fit"), test=data.test.copy_to(f"{folder}/test"),
                val=data.val.copy_to(f"{folder}/val") if data.val is not None else None)
        except FileNotFoundError:
            shutil.rmtree(folder, ignore_errors=True)
            time.sleep(0.05 * (attempt + 1))
            continue
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        try:
            yield pinned
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    raise StoreError(f"the frame parts of {params.key} under {store.url} kept changing while being read "
                     f"({READ_RETRIES} tries); another process is rewriting the store, try again")


def video_run_version(model: str, est_params: dict[str, Any], split: ActorSplit, frames_key: str, data_hash: str) -> str:
    """The version of a frame model's run (:func:`emotion.store.catalog.run_version` of its inputs; the seed is one
    of ``est_params``)."""
    # revision 2: training is repeatable (one CPU thread with op determinism, the frames in an order of the clips and
    # the seed, whatever the store's layout); runs of revision 1 depended on the machine, the process and the layout,
    # and are retrained once rather than reused under a version that now names one model
    return catalog.run_version(model, split.id, 2, params=est_params, frames=frames_key, data_hash=data_hash,
                               val_share=VAL_SHARE)


def without_validation(est: KerasFrameClassifier, data: VideoSplit) -> str | None:
    """What fitting ``est`` on ``data`` does when it has no validation frame, in one line (None when it has some):
    nothing judges the epochs, so no early stopping, the last weights kept, and no validation score."""
    if data.val is not None and data.val.n_frames:
        return None
    n = len(data.fit_actors)
    why = (f"validation actors {list(data.val_actors)} have no frame with a face" if data.val_actors else
           f"{n} training actor{'s' if n != 1 else ''} with frames; one is held out for validation from 3 up")
    tune = int(getattr(est, "tune_epochs", 0))
    runs = (f"both phases run in full ({est.epochs} + {tune} epochs) and the fine-tuned weights are kept, never "
            "compared with the head's" if tune > 0 else
            f"all {est.epochs} epochs run (no early stopping) and the last epoch's weights are kept")
    return (f"{est.name}: no validation actors ({why}): {runs}; the run has no validation score, so any video model "
            "with one is selected before it")


def build_model(name: str, **params: Any) -> KerasFrameClassifier:
    try:
        cls = NN_MODELS[name]
    except KeyError:
        raise UsageError(f"unknown video model {name!r}; choose from {', '.join(NN_MODELS)}") from None
    return cls(**params)


def predict_frameset(est: KerasFrameClassifier, fs: FrameSet) -> tuple[pd.DataFrame, np.ndarray]:
    """Frame probabilities of every frame in ``fs``, with each frame's path, index, time and label."""
    metas, probas = [], []
    for b in fs.batches():
        probas.append(est.predict_proba(b.images))
        metas.append(pd.DataFrame({"path": b.paths, "frame_index": b.frame_index, "time": b.time, "label": b.labels}))
    if not probas:
        raise StoreError("no frames to predict")
    return pd.concat(metas, ignore_index=True), np.concatenate(probas)


def frame_timeline(meta: pd.DataFrame, proba: np.ndarray) -> pd.DataFrame:
    """Each frame's top two emotions with their probabilities."""
    i1, p1, i2, p2 = top_two(proba)
    labels = np.array(EMOTION_LABELS)
    return meta.assign(top1=labels[i1], p1=p1.astype(np.float32), top2=labels[i2], p2=p2.astype(np.float32))


def validation_accuracy(est: KerasFrameClassifier, data: VideoSplit) -> tuple[float, int]:
    """The fitted model's accuracy per clip (mean of its frames' probabilities, as the test clips are scored) on the
    validation actors' clips with a face, and their number (NaN and 0 without validation frames).

    Clips without a face are left out, as the grouped CV of the landmark models leaves them out (they have no
    feature row), so that both validation scores rank face models on the same clips.
    """
    if data.val is None or data.val.n_frames == 0:
        return float("nan"), 0
    meta, proba = predict_frameset(est, data.val)
    paths, clip_proba = aggregate_clips(meta["path"].to_numpy(), proba)
    y_true = data.clips.set_index("path").loc[paths, "emotion"].to_numpy(int) - 1
    return float(np.mean(clip_proba.argmax(axis=1) == y_true)), len(paths)


def train_and_evaluate_video(
    est: KerasFrameClassifier, data: VideoSplit, split: ActorSplit, frames: FrameParams,
    progress: ProgressFn | None = None,
) -> RunOutput:
    """Fit ``est`` on the fit actors' frames (``progress`` hears of every epoch), score the test clips."""
    t0 = time.perf_counter()
    if data.fit.n_frames == 0:
        raise StoreError(f"no usable training frames for {split} (no faces found?)")
    est.fit(data.fit, validation=(data.val, None) if data.val is not None and data.val.n_frames else None,
            progress=progress)
    fit_seconds = time.perf_counter() - t0
    meta, proba = predict_frameset(est, data.test)
    clip_paths, clip_proba = aggregate_clips(meta["path"].to_numpy(), proba)
    y_pred = clip_proba.argmax(axis=1)
    # a test clip in none of whose kept frames a face was found cannot be read by a face model: it has no
    # prediction (NO_FACE), counts as wrong and is counted apart ("no face"), never read from the whole frame
    tested = data.clips[data.clips["actor"].isin(split.test)]
    faceless = sorted(set(tested["path"]) - set(clip_paths))
    if faceless:
        clip_paths = [*clip_paths, *faceless]
        clip_proba = np.vstack([clip_proba, np.full((len(faceless), clip_proba.shape[1]), np.nan)])
        y_pred = np.concatenate([y_pred, np.full(len(faceless), NO_FACE)])
    truth = data.clips.set_index("path").loc[clip_paths]
    y_true = truth["emotion"].to_numpy(int) - 1
    n_train_clips = int(data.clips["actor"].isin(split.train).sum())
    trained = data.clips[data.clips["actor"].isin(split.train)]["actor"]  # the actors the data holds
    metrics = evaluate(y_true, y_pred, train_actors=actors_of(trained), test_actors=actors_of(truth["actor"]),
                       n_train=n_train_clips, faces=True)
    frame_acc = float((proba.argmax(axis=1) == meta["label"].to_numpy()).mean())
    hist = est.history_
    params = est.get_params()
    version = video_run_version(est.name, params, split, frames.key, data.data_hash)
    val_acc, n_val = validation_accuracy(est, data)
    metrics.update({
        "model": est.name, "modality": "video", "features": frames.key, "speaker_norm": False,
        "unit": "clip (mean of frame probabilities)", "frame_accuracy": frame_acc,
        "n_test_frames": int(len(meta)), "n_fit_frames": data.fit.n_frames,
        "cv_accuracy": val_acc, "cv_std": 0.0, "n_val_clips": n_val,
        "cv": (f"not measured: {unvalidated}" if (unvalidated := without_validation(est, data)) else
               f"held-out training actors {list(data.val_actors)} (per-clip accuracy of the model kept, on their "
               "clips with a face; their loss also chose the epoch kept, by early stopping: mildly optimistic)"),
        "epochs_run": len(hist["loss"]),
    })
    model_bytes, saved = dump_model(est)
    preds = prediction_table(truth.reset_index(), y_true, y_pred, clip_proba)
    timeline = frame_timeline(meta, proba).assign(true=lambda d: np.array(EMOTION_LABELS)[d["label"]]).drop(columns="label")
    title = f"{est.name} (frames {frames.key}): {split.id}\nper-clip accuracy {metrics['accuracy']:.3f}, UAR {metrics['uar']:.3f}"
    run = {
        "model": est.name, "modality": "video", "version": version, "split": str(split), "split_id": split.id,
        "frame_params": frames.to_dict(), "frames_key": frames.key, "feature_hash": frames.hash(),
        "data_hash": data.data_hash, "estimator_params": params, "model_file": saved.to_dict(),
        "fit_actors": list(data.fit_actors), "val_actors": list(data.val_actors),
        "fit_seconds": round(fit_seconds, 2), "classes": list(EMOTION_LABELS),
    }
    extra = {"curves.png": curves_png(hist, title), "frame_predictions.parquet": parquet_bytes(timeline),
             "history.json": (jsontext.dumps(hist, indent=2) + "\n").encode()}
    return RunOutput(version, metrics, {"model": est.name, "params": params, "history": hist}, run, model_bytes, saved,
                     confusion_png(metrics["confusion_matrix"], title, metrics["confusion_no_face"]),
                     parquet_bytes(preds), extra)
