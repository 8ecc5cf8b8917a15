"""Train and evaluate a fused audio-visual model on one actor split, per clip.

The clips are the mp4 clips (modality 01 with speech, 02 video-only) that
have face-crop frames in the store; their audio features come from the audio
table (the speech track of modality-01 clips; for a 02 clip standing in for a
missing 01, its recording's audio-only 03 file), and are missing for the others.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from emotion.core.errors import StoreError
from emotion.core.ids import EMOTION_LABELS, Modality, try_parse_id
from emotion.core.params import stable_hash
from emotion.core.splits import ActorSplit
from emotion.featuresets import FeatureParams
from emotion.models.frame_nets import FaceEmbedder
from emotion.models.fusion import AudioVisualFusion, fusion_cv_accuracy
from emotion.models.persist import dump_model
from emotion.reporting.metrics import confusion_png, evaluate
from emotion.store import catalog
from emotion.store.store import READ_RETRIES, Store
from emotion.training.audio import RunOutput, actors_of, parquet_bytes, prediction_table, without_video_twins
from emotion.video.frames import FrameParams
from emotion.video.frameset import FrameSet, frame_index
from emotion.video.landmarks import LandmarkParams, read_landmark_features


def fusion_table(store: Store, audio: FeatureParams, frames: FrameParams, actors: tuple[int, ...],
                 embedder: FaceEmbedder) -> tuple[pd.DataFrame, list[str], list[str]]:
    """One row per mp4 clip of ``actors``: labels, audio features (NaN without audio), the face vector.

    The face vector is the FER2013 embedding pooled over the clip's frames with
    a face, then (mesh face crops) the clip's landmark features; NaN for a clip
    in whose kept frames no face was found.
    """
    for attempt in range(READ_RETRIES):  # one pass over the frames; again from a fresh index if a part vanishes
        idx = frame_index(store, frames.key)
        idx = without_video_twins(idx[idx["actor"].isin(list(actors))])[0]  # one clip per recording (01 over its 02)
        if idx.empty:
            raise StoreError(f"no frames of actors {list(actors)} in {frames.key}")
        fs = FrameSet.select(store, frames.key, actors, index=idx, faces_only=frames.face_crop)
        sums: dict[str, np.ndarray] = {}
        counts: dict[str, int] = {}
        try:
            for b in fs.batches():
                emb = embedder(b.images)
                for p, e in zip(b.paths, emb, strict=True):
                    sums[p] = sums.get(p, 0) + e
                    counts[p] = counts.get(p, 0) + 1
        except FileNotFoundError:
            time.sleep(0.05 * (attempt + 1))
            continue
        break
    else:
        raise StoreError(f"the frame parts of {frames.key} under {store.url} kept changing while being read "
                         f"({READ_RETRIES} tries); another process is rewriting the store, try again")
    paths = sorted(set(idx["path"]))
    width = len(next(iter(sums.values()))) if sums else 128
    V = np.stack([sums[p] / counts[p] if p in sums else np.full(width, np.nan) for p in paths])
    vcols = [f"face{i:03d}" for i in range(V.shape[1])]
    clips = idx.drop_duplicates("path").set_index("path").loc[paths, ["content_hash", "actor", "emotion"]]
    table = pd.concat([clips.reset_index(), pd.DataFrame(V, columns=vcols)], axis=1)
    if frames.landmarks:  # the face's geometry beside its appearance
        lp = LandmarkParams(every=frames.every, size=frames.size)
        lm = read_landmark_features(store, lp)[["path", *lp.feature_names()]]
        table = table.merge(lm, on="path", how="left")
        vcols = [*vcols, *lp.feature_names()]
    acols = audio.feature_names()
    try:
        feats = store.read_features("audio", audio.key)[["path", "content_hash", *acols]]
    except StoreError:
        feats = pd.DataFrame(columns=["path", "content_hash", *acols])
    table = table.merge(feats[feats["path"].isin(paths)].drop(columns="content_hash"), on="path", how="left")
    return with_audio_only_voice(table, feats, acols), acols, vcols


def with_audio_only_voice(table: pd.DataFrame, feats: pd.DataFrame, acols: Sequence[str]) -> pd.DataFrame:
    """``table`` with each clip lacking audio features given those of its recording's audio-only file (03), where
    ``feats`` (``path``, ``content_hash`` and ``acols``) has one; that file's path and content hash are recorded
    in the columns ``voice_path`` and ``voice_hash`` (for :func:`fusion_data_hash`), present only where one is used.

    A clip's own sound comes first (an 01 clip's speech track). A video-only clip (02) has none, but where it
    stands in for a missing 01 clip, the performance's voice is its 03 file: the same recording, as
    :attr:`~emotion.core.ids.RavdessId.recording` says.
    """
    cols = list(acols)
    silent = table[cols].isna().all(axis=1) if cols else pd.Series(False, index=table.index)
    if not silent.any() or feats.empty:
        return table
    voices: dict[tuple[int, ...], int] = {}
    for i, p in enumerate(feats["path"]):
        rid = try_parse_id(p)
        if rid is not None and rid.modality is Modality.AUDIO_ONLY:
            voices[rid.recording] = i
    found = {}
    for row, p in table.loc[silent, "path"].items():
        rid = try_parse_id(p)
        if rid is not None and rid.recording in voices:
            found[row] = voices[rid.recording]
    if not found:
        return table
    table = table.copy()
    rows, sources = list(found), list(found.values())
    table.loc[rows, cols] = feats[cols].to_numpy()[sources]
    table.loc[rows, "voice_path"] = feats["path"].to_numpy()[sources]
    table.loc[rows, "voice_hash"] = feats["content_hash"].to_numpy()[sources]
    return table


def fusion_data_hash(table: pd.DataFrame, acols: Sequence[str] = ()) -> str:
    """The hash of the clips (paths and contents) a fusion table is built from, and of which of them have no
    audio features (``acols`` all NaN), where any has none: a clip whose audio features were stored since (say
    its audio extraction ran only now) changes the table, and so the run's version; and of the audio-only files
    whose voice a clip was given (:func:`with_audio_only_voice`), where any was: their contents are in the table too."""
    clips = sorted(zip(table["path"], table["content_hash"], strict=True))
    silent = table[table[list(acols)].isna().all(axis=1)]["path"] if len(acols) else []
    voices = []
    if "voice_path" in table.columns:
        lent = table[table["voice_path"].notna()]
        voices = sorted(zip(lent["path"], lent["voice_path"], lent["voice_hash"], strict=True))
    if not len(silent) and not voices:
        return stable_hash(clips, 16)  # as before: the versions of runs whose every clip has its own audio stay
    hashed: dict[str, Any] = {"clips": clips}
    if len(silent):
        hashed["without_audio"] = sorted(silent)
    if voices:
        hashed["voices"] = voices
    return stable_hash(hashed, 16)


def fusion_version(method: str, params: dict[str, Any], split: ActorSplit, audio_key: str, frames_key: str,
                   data_hash: str, landmarks: bool = False) -> str:
    """The version of a fused run (:func:`emotion.store.catalog.run_version` of its inputs)."""
    # mesh face crops: the embedding over the frames with a face, and the landmark features; each revision one up
    # since the CV score (cv_accuracy) is the whole model's nested grouped CV: runs scored the old way are retrained,
    # not compared with the new ones (late's old score was optimistic, stack's and early's were missing)
    embedding, revision = ("fer2013-gap+landmarks", 3) if landmarks else ("fer2013-gap", 2)
    return catalog.run_version(f"fusion-{method}", split.id, revision, params=params, audio=audio_key,
                               frames=frames_key, data_hash=data_hash, embedding=embedding)


def train_and_evaluate_fusion(
    est: AudioVisualFusion, table: pd.DataFrame, acols: list[str], vcols: list[str], split: ActorSplit,
    audio: FeatureParams, frames: FrameParams,
) -> RunOutput:
    t0 = time.perf_counter()
    tr = table[table["actor"].isin(split.train)]
    te = table[table["actor"].isin(split.test)]
    if tr.empty or te.empty:
        raise StoreError(f"fusion needs mp4 clips of both train and test actors of {split}")
    cols = [*acols, *vcols]
    est.set_params(n_audio=len(acols))
    X_tr, y_tr, g_tr = tr[cols].to_numpy(np.float64), tr["emotion"].to_numpy(int) - 1, tr["actor"].to_numpy(int)
    est.fit(X_tr, y_tr, groups=g_tr)
    fit_seconds = time.perf_counter() - t0
    t_cv = time.perf_counter()
    cv = fusion_cv_accuracy(est, X_tr, y_tr, g_tr)  # the score the fused models are chosen by, alike for all three
    cv_seconds = time.perf_counter() - t_cv
    X_te, y_te = te[cols].to_numpy(np.float64), te["emotion"].to_numpy(int) - 1
    proba = est.predict_proba(X_te)
    pred = proba.argmax(1)
    p_audio, p_video, has = est.branch_proba(X_te)
    metrics = evaluate(y_te, pred, train_actors=actors_of(tr["actor"]), test_actors=actors_of(te["actor"]), n_train=len(tr))
    on_av = {  # the clips with both voice and face: fused against each branch alone, on the same clips
        "fused": float((pred[has] == y_te[has]).mean()) if has.any() else float("nan"),
        "audio_only": float((p_audio[has].argmax(1) == y_te[has]).mean()) if has.any() else float("nan"),
        "video_only": float((p_video[has].argmax(1) == y_te[has]).mean()) if has.any() else float("nan"),
    }
    data_hash = fusion_data_hash(table, acols)
    params = est.get_params()
    name = f"fusion-{est.method}"
    version = fusion_version(est.method, params, split, audio.key, frames.key, data_hash, frames.landmarks)
    lm = " + landmarks" if frames.landmarks else ""
    metrics.update({
        "model": name, "modality": "fusion", "features": f"{audio.key} + fer2013 face embedding{lm} ({frames.key})",
        "speaker_norm": False, "unit": "clip", "audio_weight": est.weight_,
        "cv_accuracy": cv.accuracy, "cv_std": cv.std, "cv": cv.how, "cv_fold_accuracy": list(cv.folds),
        # each branch alone, out of fold (late and stack read these probabilities; early has none)
        "oof_accuracy": getattr(est, "oof_accuracy_", {}),
        "audio_visual_clips": on_av, "n_test_audio_missing": int((~has).sum()),
        "accuracy_video_only_all": float((p_video.argmax(1) == y_te).mean()),
    })
    model_bytes, saved = dump_model(est)
    preds = prediction_table(te[["path", "actor", "emotion"]].assign(audio_missing=~has), y_te, pred, proba)
    title = f"{name}: {split.id}\naccuracy {metrics['accuracy']:.3f} (voice+face clips {on_av['fused']:.3f})"
    run = {
        "model": name, "modality": "fusion", "method": est.method, "version": version, "split": str(split),
        "split_id": split.id, "feature_params": audio.to_dict(), "feature_hash": audio.hash(),
        "frame_params": frames.to_dict(), "frames_key": frames.key, "data_hash": data_hash,
        "estimator_params": params, "model_file": saved.to_dict(), "fit_seconds": round(fit_seconds, 2),
        "cv_seconds": round(cv_seconds, 2),
        "classes": list(EMOTION_LABELS), "embedding": "FER2013 mini-Xception without its head, mean over frames"
        + (" with a face, then the landmarks feature set" if frames.landmarks else ""),
    }
    return RunOutput(version, metrics, {"model": name, "params": params}, run, model_bytes, saved,
                     confusion_png(metrics["confusion_matrix"], title), parquet_bytes(preds))
