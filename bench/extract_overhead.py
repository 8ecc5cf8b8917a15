"""Orchestration overhead of audio extraction: the Prefect/Dask flow vs a bare loop.

Both sides compute the same features of the same clips on the same number of
processes, measured side by side in one run and repeated alternately (the
best of each is compared, which is robust to a noisy shared machine):

* bare: a ``ProcessPoolExecutor`` of freshly spawned, single-threaded
  processes maps read + decode + features over the files in chunks of 40
  (pool start-up and imports included), results kept in memory;
* flow: the ``extract-audio`` Prefect flow with a fresh local Dask cluster
  (cluster start-up, inventory with content hashing, Parquet writes and the
  commit included), against an already running Prefect API, as a deployment
  or ``emotion server`` has it.

A third line times a naive loop of the librosa calls as a reader writes them
(``librosa.load`` + ``librosa.feature.mfcc`` ...), for reference.

    python -m bench.extract_overhead [--data DIR] [--workers 2] [--repeats 2]

Uses the real clips in ../shared/ravdess/audio_speech when present, else a
synthetic corpus of 1200 clips.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

REAL = Path(__file__).resolve().parents[2] / "shared" / "ravdess" / "audio_speech"


def _features(paths: list[str]) -> int:
    from emotion.audio.decode import load_audio
    from emotion.audio.seed import AudioFeatureExtractor, AudioFeatureParams

    ex = AudioFeatureExtractor(AudioFeatureParams())
    for p in paths:
        with open(p, "rb") as fh:
            ex(load_audio(fh.read(), 22050))
    return len(paths)


def _naive(paths: list[str]) -> int:
    import librosa
    import numpy as np

    for p in paths:
        y, sr = librosa.load(p, sr=22050)
        m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13)
        blocks = [m, librosa.feature.delta(m), librosa.feature.delta(m, order=2), librosa.feature.rms(y=y)]
        np.concatenate([np.r_[b.mean(1), b.max(1), b.min(1), b.std(1)] for b in blocks])
    return len(paths)


def _single_threaded() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # as Dask's nanny does for its workers (OMP/MKL/OpenBLAS = 1 thread)


def bare(files: list[str], workers: int, fn=_features) -> float:
    """Fresh spawned processes (start-up and imports timed, as the flow's cluster is), one BLAS thread each."""
    t0 = time.perf_counter()
    chunks = [files[i : i + 40] for i in range(0, len(files), 40)]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_single_threaded) as pool:
        n = sum(pool.map(fn, chunks))
    assert n == len(files)
    return time.perf_counter() - t0


def flow(data: str, workers: int) -> float:
    from flows.extract import extract_audio

    out = tempfile.mkdtemp(prefix="bench-store-")
    try:
        t0 = time.perf_counter()
        s = extract_audio(data, out, workers=workers)
        dt = time.perf_counter() - t0
        assert s.processed + s.rejected == s.processed + s.skipped + s.rejected and s.processed > 0
        return dt
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="data root (default: the real RAVDESS audio, else synthetic)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    tmp = None
    if args.data:
        data = args.data
    elif REAL.is_dir():
        data = str(REAL)
    else:
        from emotion.audio.synth import SynthParams, write_corpus

        tmp = tempfile.mkdtemp(prefix="bench-data-")
        print("real RAVDESS audio not found; writing a synthetic corpus of 1200 clips", flush=True)
        write_corpus(tmp, SynthParams(actors=tuple(range(1, 21)), duration=3.5))
        data = tmp
    from emotion.store.sources import AUDIO_EXTENSIONS, DataRoot

    root = DataRoot(data)
    files = [f"{root.root}/{c.relpath}" for c in root.discover(AUDIO_EXTENSIONS)]
    print(f"{len(files)} clips under {data}; {args.workers} processes; {args.repeats} alternating repeats", flush=True)

    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        _features(files[:2])  # warm the page cache and numba caches once, outside the timings
        bare_t, flow_t = [], []
        for i in range(args.repeats):
            bare_t.append(bare(files, args.workers))
            flow_t.append(flow(data, args.workers))
            print(f"  repeat {i + 1}: bare {bare_t[-1]:.2f} s, flow {flow_t[-1]:.2f} s", flush=True)
        naive_t = bare(files, args.workers, _naive)
    b, f = min(bare_t), min(flow_t)
    print(f"bare loop      {b:7.2f} s  {len(files) / b:7.1f} clips/s")
    print(f"prefect flow   {f:7.2f} s  {len(files) / f:7.1f} clips/s")
    print(f"naive librosa  {naive_t:7.2f} s  {len(files) / naive_t:7.1f} clips/s  (reference)")
    print(f"ratio flow/bare = {f / b:.2f}  (target <= 1.5)")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if f / b <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
