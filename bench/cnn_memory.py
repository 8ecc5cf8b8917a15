"""Peak memory of frame-CNN training for two corpus sizes: it must not grow with the number of clips.

Writes two frame stores (N and 4N clips, 3 frames of 256x256 each, PNG in
Parquet parts of 6 clips, as extraction writes them), then trains the frame
CNN for the same number of epochs on each in a fresh process, streaming from
Parquet through tf.data, and prints each process's peak RSS and their ratio.

    python bench/cnn_memory.py [--clips 300] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emotion.core.ids import Emotion, Modality, RavdessId, VocalChannel  # noqa: E402
from emotion.extract.chunk import frame_schema  # noqa: E402
from emotion.store.store import Store  # noqa: E402
from emotion.video.frames import FrameParams, encode_png  # noqa: E402

PARAMS = FrameParams()


def write_store(root: Path, n_clips: int) -> None:
    store = Store(str(root))
    rng = np.random.default_rng(0)
    folder = store.dataset_dir("frames", PARAMS.key)
    rows = []
    for i in range(n_clips):
        actor = 1 + i % 8
        emo = Emotion(1 + (i // 8) % 8)
        rid = RavdessId(Modality.VIDEO_ONLY, VocalChannel.SPEECH, emo, 1, 1 + (i // 64) % 2, 1, actor)
        path = f"Actor_{actor:02d}/{i:06d}-{rid.stem}.mp4"
        for f in range(3):
            img = rng.integers(0, 60, (256, 256), dtype=np.uint8)
            img[32 * (int(emo) - 1) : 32 * int(emo), :] += 150  # a learnable band per emotion
            rows.append({"path": path, "content_hash": f"{i}", **rid.labels(), "frame_index": 20 * f, "time": f * 0.67,
                         "face_found": None, "face_x": None, "face_y": None, "face_w": None, "face_h": None,
                         "height": 256, "width": 256, "image": encode_png(img)})
        if len(rows) >= 18:
            store.write_table(f"{folder}/{Store.new_part_name()}", pa.Table.from_pylist(rows, schema=frame_schema(PARAMS)))
            rows = []
    if rows:
        store.write_table(f"{folder}/{Store.new_part_name()}", pa.Table.from_pylist(rows, schema=frame_schema(PARAMS)))


CHILD = """
import json, resource, sys, time
from emotion.video.frameset import FrameSet
from emotion.models.frame_nets import FrameCNN
from emotion.store.store import Store
from emotion.video.frames import FrameParams
store, epochs = Store(sys.argv[1]), int(sys.argv[2])
fs = FrameSet.select(store, FrameParams().key)
t = time.perf_counter()
est = FrameCNN(epochs=epochs, patience=0, seed=0).fit(fs)
print(json.dumps({"frames": fs.n_frames, "seconds": time.perf_counter() - t,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "accuracy": est.history_["accuracy"][-1]}))
"""


def train(root: Path, epochs: int) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", CHILD, str(root), str(epochs)], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=300, help="clips of the small corpus (the large one has 4x)")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        sizes = {"small": args.clips, "large": 4 * args.clips}
        t = time.perf_counter()
        for name, n in sizes.items():
            write_store(Path(d) / name, n)
        print(f"wrote frame stores of {sizes['small']} and {sizes['large']} clips in {time.perf_counter() - t:.1f} s")
        res = {name: train(Path(d) / name, args.epochs) for name in sizes}
    for name, r in res.items():
        print(f"{name:>5}: {sizes[name]:5d} clips, {r['frames']:6d} frames: peak RSS {r['peak_mib']:7.1f} MiB, "
              f"{r['seconds']:6.1f} s for {args.epochs} epochs, train accuracy {r['accuracy']:.3f}")
    ratio = res["large"]["peak_mib"] / res["small"]["peak_mib"]
    print(f"peak memory ratio large/small (4x the clips): {ratio:.3f} (target: about 1, i.e. no growth)")


if __name__ == "__main__":
    main()
