"""Frame extraction throughput vs the raw decode rate of the same clips.

Raw: OpenCV decodes every frame of each clip (``VideoCapture.read``).
Ours: :func:`emotion.video.frames.sample_frames` decodes every frame and converts,
resizes (and with ``--face-crop`` face-crops) only every 20th. Both on one
process, alternating, best of ``--repeats``; prints frames decoded per
second and the ratio (target: >= 0.8).

With ``--face-crop`` it also times the first release's front end (Haar box,
square crop) side by side with the face front end (MediaPipe face detection
and mesh, aligned crop and landmarks) and prints their time ratio (target:
the mesh front end within 2x of Haar, i.e. ratio <= 2).

    python -m bench.frames_throughput [--repeats 3] [--face-crop]

Uses the five real clips in ../shared/ravdess/video_speech when present,
else synthetic 1280x720 clips.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REAL = Path(__file__).resolve().parents[2] / "shared" / "ravdess" / "video_speech"


def raw_decode(files: list[Path]) -> tuple[int, float]:
    import cv2

    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    n = 0
    for f in files:
        cap = cv2.VideoCapture(str(f))
        while True:
            ok, _ = cap.read()
            if not ok:
                break
            n += 1
        cap.release()
    return n, time.perf_counter() - t0


def ours(files: list[Path], face_crop: bool, detector: str = "mesh") -> float:
    """Seconds to extract the kept frames of ``files`` (every frame is decoded on the way)."""
    from emotion.video.frames import FrameParams, sample_frames

    params = FrameParams(face_crop=face_crop, detector=detector, margin=0.25 if detector == "haar" else 0.0)
    t0 = time.perf_counter()
    for f in files:
        assert list(sample_frames(f.read_bytes(), params))
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--face-crop", action="store_true")
    args = ap.parse_args()
    tmp = None
    if REAL.is_dir():
        files = sorted(REAL.rglob("*.mp4"))
    else:
        from emotion.core.ids import parse_id
        from emotion.video.synth import VideoSynthParams, write_clip

        tmp = Path(tempfile.mkdtemp(prefix="bench-video-"))
        print("real RAVDESS video not found; writing 5 synthetic 1280x720 clips", flush=True)
        files = []
        for name in ("01-01-03-01-01-01-01.mp4", "01-01-05-02-01-01-02.mp4", "02-01-04-01-02-01-03.mp4",
                     "01-01-08-01-01-02-04.mp4", "02-01-01-01-01-01-05.mp4"):
            p = tmp / name
            write_clip(p, parse_id(name), VideoSynthParams(width=1280, height=720, duration=3.5))
            files.append(p)
    ours(files[:1], args.face_crop)  # warm imports and caches
    if args.face_crop:
        ours(files[:1], True, "haar")
    raw_decode(files[:1])
    best_raw = best_ours = 0.0
    best_haar = 1e-9
    for i in range(args.repeats):
        n_frames, t_raw = raw_decode(files)  # both decode all n_frames frames of the clips
        t_ours = ours(files, args.face_crop)
        best_raw, best_ours = max(best_raw, n_frames / t_raw), max(best_ours, n_frames / t_ours)
        line = f"  repeat {i + 1}: raw {n_frames / t_raw:6.1f} frames/s, ours {n_frames / t_ours:6.1f} frames/s"
        if args.face_crop:
            t_haar = ours(files, True, "haar")
            best_haar = max(best_haar, n_frames / t_haar)
            line += f", haar front end {n_frames / t_haar:6.1f} frames/s"
        print(line, flush=True)
    print(f"{len(files)} clips; every 20th frame kept{' and face-cropped' if args.face_crop else ''}")
    print(f"raw OpenCV decode   {best_raw:7.1f} frames/s")
    print(f"frame extraction    {best_ours:7.1f} frames/s")
    print(f"ratio = {best_ours / best_raw:.2f}  (target >= 0.8)")
    ok = best_ours / best_raw >= 0.8
    if args.face_crop:
        slow = best_haar / best_ours
        print(f"haar front end      {best_haar:7.1f} frames/s")
        print(f"mesh / haar time ratio = {slow:.2f}  (target <= 2: the mesh front end within 2x of today's --face-crop)")
        ok = slow <= 2
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
