"""Synthetic RAVDESS-named mp4 clips: a drawn face whose expression carries the emotion.

Each clip shows a face (skin tone, size, position and hair differ by actor)
whose eyebrows, eyes and mouth follow the emotion, with a little motion and
noise per frame. Clips are H.264 in mp4 like RAVDESS; modality 01 clips
carry the matching synthetic speech (:mod:`emotion.audio.synth`) as an AAC track,
modality 02 clips a silent one.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from emotion.audio.synth import DEFAULT_ACTORS, FACE_PAIRS, SynthParams, synth_clip
from emotion.core.ids import Emotion, Modality, RavdessId, VocalChannel
from emotion.core.progress import ProgressFn, report

# per emotion: brow tilt (+ inner ends raised), brow height, eye openness, mouth curve (+ smile), mouth opening
_BROW_TILT = np.array([0.0, 0.0, 0.1, 0.5, -0.7, 0.6, -0.4, 0.2])
_BROW_UP = np.array([0.0, -0.05, 0.15, 0.05, -0.2, 0.3, -0.1, 0.5])
_EYE_OPEN = np.array([0.5, 0.3, 0.55, 0.35, 0.6, 0.95, 0.3, 1.0])
_MOUTH_CURVE = np.array([0.0, 0.25, 0.9, -0.7, -0.5, -0.3, -0.8, 0.1])
_MOUTH_OPEN = np.array([0.05, 0.0, 0.35, 0.05, 0.3, 0.45, 0.15, 0.9])


@dataclass(frozen=True)
class VideoSynthParams:
    actors: tuple[int, ...] = DEFAULT_ACTORS
    modalities: tuple[int, ...] = (1, 2)
    repetitions: int = 1
    width: int = 320
    height: int = 240
    fps: int = 30
    duration: float = 1.4
    seed: int = 0
    signal: str = "full"  # or "split": the face and the voice each carry half of the signal (emotion.audio.synth)


def video_ids(params: VideoSynthParams) -> list[RavdessId]:
    out = []
    for actor in params.actors:
        for modality in params.modalities:
            for emo in Emotion:
                for intensity in (1,) if emo is Emotion.NEUTRAL else (1, 2):
                    for statement in (1, 2):
                        for rep in range(1, params.repetitions + 1):
                            out.append(RavdessId(Modality(modality), VocalChannel.SPEECH, emo, intensity, statement, rep, actor))
    return out


def draw_face(rid: RavdessId, t: float, params: VideoSynthParams, rng: np.random.Generator) -> np.ndarray:
    """One RGB frame (uint8 [height, width, 3]) of the face of ``rid`` at time ``t``."""
    import cv2

    w, h = params.width, params.height
    arng = np.random.default_rng([params.seed, rid.actor, 11])
    skin = int(arng.uniform(150, 215))
    bg = int(arng.uniform(200, 250))
    scale = arng.uniform(0.8, 1.0) * h / 240
    cx = w / 2 + arng.uniform(-0.08, 0.08) * w + 3 * math.sin(2 * math.pi * 0.7 * t)
    cy = h / 2 + arng.uniform(-0.05, 0.05) * h + 2 * math.sin(2 * math.pi * 0.5 * t)
    e = int(rid.emotion) - 1
    if params.signal == "split":
        e = int(FACE_PAIRS[e])
    k = 1.3 if rid.intensity == 2 else 1.0
    img = np.full((h, w), bg, np.uint8)
    fw, fh = int(62 * scale), int(80 * scale)
    cv2.ellipse(img, (int(cx), int(cy + 10 * scale)), (fw + 8, fh + 10), 0, 0, 360, int(arng.uniform(30, 90)), -1)  # hair
    cv2.ellipse(img, (int(cx), int(cy + 18 * scale)), (fw, fh), 0, 0, 360, skin, -1)  # face
    ey = cy - 5 * scale
    for side in (-1, 1):
        ex = cx + side * 24 * scale
        open_ = max(2, int((3 + 9 * _EYE_OPEN[e] * k) * scale))
        cv2.ellipse(img, (int(ex), int(ey)), (int(11 * scale), open_), 0, 0, 360, 40, -1)
        tilt = _BROW_TILT[e] * k * 8 * scale
        by = ey - (16 + 10 * _BROW_UP[e] * k) * scale
        p_in = (int(ex - side * 12 * scale), int(by - tilt))
        p_out = (int(ex + side * 12 * scale), int(by + tilt))
        cv2.line(img, p_in, p_out, 30, max(2, int(4 * scale)))
    nose = np.array([[cx, ey + 6 * scale], [cx - 7 * scale, ey + 30 * scale], [cx + 7 * scale, ey + 30 * scale]], np.int32)
    cv2.fillPoly(img, [nose], skin - 25)
    my = cy + 45 * scale
    curve = _MOUTH_CURVE[e] * k * 10 * scale
    talk = 0.5 + 0.5 * math.sin(2 * math.pi * 4 * t) if rid.modality == Modality.AUDIO_VIDEO else 0.5
    opening = max(1.0, (_MOUTH_OPEN[e] * k * 16 + 3 * talk) * scale)
    xs = np.linspace(-22, 22, 23) * scale
    upper = my + curve * (1 - (xs / (22 * scale)) ** 2) - curve / 2  # image y grows downward
    lower = upper + opening * (1 - (xs / (22 * scale)) ** 2)
    poly = np.concatenate([np.stack([cx + xs, upper], 1), np.stack([cx + xs[::-1], lower[::-1]], 1)]).astype(np.int32)
    cv2.fillPoly(img, [poly], 50)
    cv2.polylines(img, [np.stack([cx + xs, upper], 1).astype(np.int32)], False, 35, max(1, int(2 * scale)))
    noisy = img.astype(np.int16) + rng.normal(0, 6, img.shape).astype(np.int16)
    gray = np.clip(noisy, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def write_clip(path: Path, rid: RavdessId, params: VideoSynthParams) -> None:
    """Write one mp4: H.264 video (yuv420p) and, for modality 01, AAC speech."""
    import av

    rng = np.random.default_rng([params.seed, *rid.fields(), 3])
    n = int(params.duration * params.fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as out:  # index first, as RAVDESS
        vs = out.add_stream("libx264", rate=params.fps)
        vs.width, vs.height, vs.pix_fmt = params.width, params.height, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "23"}
        audio = None
        if rid.modality == Modality.AUDIO_VIDEO:
            speech = RavdessId(Modality.AUDIO_ONLY, rid.vocal_channel, rid.emotion, rid.intensity, rid.statement,
                               rid.repetition, rid.actor)
            y, sr = synth_clip(speech, SynthParams(duration=params.duration, seed=params.seed, signal=params.signal))
            audio = (y.mean(axis=1) if y.ndim == 2 else y).astype(np.float32)
            astream = out.add_stream("aac", rate=sr)
            astream.layout = "mono"
        else:
            sr = 48000
            audio = np.zeros(int(params.duration * sr), np.float32)  # video-only: a silent track, as RAVDESS has
            astream = out.add_stream("aac", rate=sr)
            astream.layout = "mono"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(draw_face(rid, i / params.fps, params, rng), format="rgb24")
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        step = 1024
        for start in range(0, len(audio), step):
            chunk = audio[start : start + step]
            af = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            af.sample_rate = sr
            af.pts = start
            af.time_base = Fraction(1, sr)
            for packet in astream.encode(af):
                out.mux(packet)
        for packet in astream.encode():
            out.mux(packet)


def _write_one(job: tuple[Path, RavdessId, VideoSynthParams]) -> Path:
    write_clip(*job)
    return job[0]


def write_video_corpus(root: str | Path, params: VideoSynthParams = VideoSynthParams(),
                       workers: int | None = None, progress: ProgressFn | None = None) -> list[Path]:
    """Write every clip of ``params`` under ``root/Actor_NN/``, in ``workers`` processes (default: one per core),
    and the synthetic-corpus marker (:func:`emotion.core.provenance.mark_synthetic`) at its top; ``progress`` hears
    of every clip written."""
    from dataclasses import asdict

    from emotion.core.provenance import mark_synthetic

    root = Path(root)
    mark_synthetic(root, "emotion.synth_video.write_video_corpus", asdict(params))
    jobs = [(root / f"Actor_{rid.actor:02d}" / f"{rid.stem}.mp4", rid, params) for rid in video_ids(params)]
    n = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    out: list[Path] = []
    report(progress, "synth video", 0, len(jobs), "clips")
    if n == 1:
        for j in jobs:
            out.append(_write_one(j))
            report(progress, "synth video", len(out), len(jobs), "clips")
        return out
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # an executor, not multiprocessing's Pool: a worker that dies (out of memory, a crash in the encoder) fails the
    # corpus with BrokenProcessPool, where Pool's imap waited for its clips for ever
    with ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as pool:
        for p in pool.map(_write_one, jobs, chunksize=4):
            out.append(p)
            report(progress, "synth video", len(out), len(jobs), "clips")
    return out
