"""How the face side does on real faces: face-found rate, zero-shot FER2013, and the trained face models.

For a folder of real RAVDESS-named mp4 clips (default: ../shared/ravdess/video_speech):

* the share of kept frames (every 20th) in which the face front end finds a face;
* the per-clip accuracy of the pretrained FER2013 model, zero-shot (its 7
  classes mapped onto our 8; calm is never predicted, so calm clips count
  wrong), on the front end's aligned tight crops, and for reference on tight
  Haar boxes (the first release's detector, no margin);
* with ``--store OUT``: the per-clip accuracy of every trained face model of
  the store (frame CNN, FER transfer, landmark feature models), as
  ``emotion predict`` would read each clip;

each per actor and overall; ``--sheet PNG`` writes the aligned crops with
their landmarks and each frame's own zero-shot reading (green: the clip's true
emotion, red: another), one row per clip, to look at.

    python -m bench.real_faces [DIR] [--store OUT] [--sheet crops.png] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

REAL = Path(__file__).resolve().parents[2] / "shared" / "ravdess" / "video_speech"
TILE = 144  # pixels of a tile in the contact sheet (crops are upscaled for viewing only)


def _haar_crops(data: bytes, every: int = 20) -> list[np.ndarray]:
    """Tight Haar face boxes (no margin) of the kept frames, 64x64 gray: the reference front end."""
    import cv2

    from emotion.core.media import open_container
    from emotion.video.frames import FrameParams, detect_face, upright

    out = []
    with open_container(data) as c:
        for i, fr in enumerate(c.decode(video=0)):
            if i % every:
                continue
            gray = upright(fr, "gray")  # as the frames are stored
            box = detect_face(gray, FrameParams().detect_width)
            if box:
                x, y, w, h = box
                out.append(cv2.resize(gray[y : y + h, x : x + w], (64, 64), interpolation=cv2.INTER_AREA))
    return out


def _store_models(store: str) -> dict[str, Any]:
    """Every newest face run of the store (video modality), loaded and verified."""
    from emotion.predict import load_video_run
    from emotion.reporting.report import collect_runs
    from emotion.store.store import Store

    s = Store(store)
    models: dict[str, Any] = {}
    base = s.path("runs")
    for split_dir in sorted(s.fs.ls(base, detail=False)) if s.fs.isdir(base) else []:
        sid = split_dir.rstrip("/").rsplit("/", 1)[-1]
        for r in collect_runs(s, sid):
            if r.modality == "video":
                models[f"{sid}/{r.label}"] = load_video_run(s.url_of(s.path("runs", r.split_id, r.rel_dir)))
    return models


def evaluate(files: list[Path], store: str | None = None, sheet: str | None = None) -> dict[str, Any]:
    import cv2

    from emotion.core.errors import EmotionError, RejectedInput
    from emotion.core.ids import EMOTION_LABELS, parse_id
    from emotion.models.frame_nets import FERZeroShot
    from emotion.video.frames import FrameParams, sample_frames

    zero = FERZeroShot()
    params = FrameParams(face_crop=True, size=96)
    trained = _store_models(store) if store else {}
    per_actor: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    clips: list[dict[str, Any]] = []
    tiles: list[list[np.ndarray]] = []
    skipped: list[dict[str, str]] = []  # clips that cannot be scored (not a RAVDESS id, undecodable): named, not fatal
    for f in files:
        try:
            rid = parse_id(f.name)
            data = f.read_bytes()
            frames = list(sample_frames(data, params))
        except (EmotionError, OSError) as exc:
            skipped.append({"clip": str(f), "reason": str(exc)})
            continue
        truth = int(rid.emotion) - 1
        faces = [fr for fr in frames if fr.face_found]
        row: dict[str, Any] = {"clip": f.name, "actor": rid.actor, "true": EMOTION_LABELS[truth],
                               "frames": len(frames), "faces": len(faces)}
        per_actor["face_rate"][rid.actor].append(len(faces) / max(1, len(frames)))
        if faces:
            p = zero.predict_proba(np.stack([fr.image for fr in faces])).mean(axis=0)
            row["zero_shot"] = EMOTION_LABELS[int(p.argmax())]
            per_actor["zero_shot"][rid.actor].append(float(p.argmax() == truth))
        else:
            per_actor["zero_shot"][rid.actor].append(0.0)
        haar = _haar_crops(data)
        if haar:
            ph = zero.predict_proba(np.stack(haar)).mean(axis=0)
            row["zero_shot_haar"] = EMOTION_LABELS[int(ph.argmax())]
            per_actor["zero_shot_haar"][rid.actor].append(float(ph.argmax() == truth))
        else:  # no face: wrong, as for the aligned crops (both scores are over the same clips)
            per_actor["zero_shot_haar"][rid.actor].append(0.0)
        for name, model in trained.items():
            try:
                probs, _ = model.predict_video(data)
                guess = max(probs, key=lambda k: probs[k])
            except RejectedInput:
                guess = None
            row[name] = guess
            per_actor[name][rid.actor].append(float(guess == EMOTION_LABELS[truth]))
        clips.append(row)
        if sheet:  # every kept frame with a face, its landmarks, and the zero-shot reading of that frame alone
            per_frame = zero.predict_proba(np.stack([fr.image for fr in faces])) if faces else np.zeros((0, 8))
            tile_row = []
            for fr, pf in zip(faces, per_frame, strict=True):
                vis = cv2.resize(cv2.cvtColor(fr.image, cv2.COLOR_GRAY2BGR), (TILE, TILE),
                                 interpolation=cv2.INTER_CUBIC)
                for x, y in (fr.landmarks * TILE)[::3]:
                    cv2.circle(vis, (int(x), int(y)), 1, (0, 220, 0), -1)
                label = np.full((18, TILE, 3), 255, np.uint8)
                k = int(pf.argmax())
                cv2.putText(label, f"{EMOTION_LABELS[k]} {pf[k]:.2f}", (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                            (0, 120, 0) if k == truth else (0, 0, 200), 1, cv2.LINE_AA)
                tile_row.append(np.vstack([vis, label]))
            tiles.append(tile_row)
    if sheet and tiles:
        width = max(1, max(len(t) for t in tiles))
        blank = np.zeros((TILE + 18, TILE, 3), np.uint8)
        cv2.imwrite(sheet, np.vstack([np.hstack(t + [blank] * (width - len(t))) for t in tiles]))
    summary = {what: {"overall": float(np.mean([v for vs in by.values() for v in vs])),
                      "per_actor": {a: float(np.mean(vs)) for a, vs in sorted(by.items())}}
               for what, by in per_actor.items()}
    n_frames = sum(c["frames"] for c in clips)
    summary["face_rate"]["overall"] = sum(c["faces"] for c in clips) / max(1, n_frames)  # over frames, not clips
    return {"clips": clips, "summary": summary, "n_clips": len(clips), "n_frames": n_frames, "models": list(trained),
            "skipped": skipped}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", nargs="?", default=str(REAL), help="folder of real RAVDESS-named mp4 clips")
    ap.add_argument("--store", help="also score every trained face model of this store")
    ap.add_argument("--sheet", help="write the aligned crops with their landmarks to this PNG")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    files = sorted(Path(args.dir).rglob("*.mp4"))
    if not files:
        print(f"no mp4 clips under {args.dir}", file=sys.stderr)
        return 2
    if args.store and not Path(args.store).is_dir() and "://" not in args.store:
        print(f"--store {args.store}: no such folder", file=sys.stderr)
        return 2
    r = evaluate(files, args.store, args.sheet)
    if args.store and not r["models"]:  # else the output is the same as without --store, and nothing says why
        print(f"note: no trained face model (cnn, fer, landmarks) in {args.store}: only the zero-shot readings follow",
              file=sys.stderr)
    for sk in r["skipped"]:
        print(f"skipped {sk['clip']}: {sk['reason']}", file=sys.stderr)
    if not r["clips"]:
        print(f"none of the {len(files)} mp4 clips under {args.dir} could be scored", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    for c in r["clips"]:
        extra = "  ".join(f"{k} {v}" for k, v in c.items() if k not in ("clip", "actor", "true", "frames", "faces"))
        print(f"{c['clip']}  true {c['true']:<9} faces {c['faces']}/{c['frames']}  {extra}")
    print(f"\n{r['n_clips']} clips, {r['n_frames']} kept frames")
    labels = {"face_rate": "face found (share of kept frames)",
              "zero_shot": "FER2013 zero-shot, aligned crops (per clip)",
              "zero_shot_haar": "FER2013 zero-shot, tight Haar boxes (reference)"}
    for what, s in r["summary"].items():
        per = "  ".join(f"{a:02d}: {v:.2f}" for a, v in s["per_actor"].items())
        print(f"{labels.get(what, what + ' (per clip)'):<52} {s['overall']:.3f}   per actor  {per}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
