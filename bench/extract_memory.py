"""Peak memory of extraction for two corpus sizes: it must not grow with the corpus.

Writes synthetic corpora of ``--small`` and ``--large`` clips (3.5 s each,
like RAVDESS), runs ``emotion extract`` on each in a subprocess with a local
Dask cluster, and samples the resident memory of the whole process tree (the
command, its Dask workers and its temporary Prefect server) every 50 ms.
Prints both peaks and their ratio (target: within 20%).

    python -m bench.extract_memory [--small 500] [--large 2000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def peak_rss(cmd: list[str], env: dict[str, str]) -> tuple[int, float, int]:
    t0 = time.perf_counter()
    popen = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    proc = psutil.Process(popen.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, tree_rss(proc))
            except psutil.NoSuchProcess:
                return
            time.sleep(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    code = popen.wait()
    done.set()
    th.join()
    return peak, time.perf_counter() - t0, code


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=500)
    ap.add_argument("--large", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    from emotion.audio.synth import SynthParams, all_ids, write_corpus

    tmp = Path(tempfile.mkdtemp(prefix="bench-mem-"))
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DASK_LOGGING__DISTRIBUTED": "warning"}
    env.pop("PREFECT_API_URL", None)
    results = {}
    try:
        for n in (args.small, args.large):
            actors = tuple(range(1, (n + 59) // 60 + 1))  # 60 clips per actor
            params = SynthParams(actors=actors, duration=3.5)
            data = tmp / f"data-{n}"
            write_corpus(data, params)
            extra = sorted(data.rglob("*.*"))[n:]  # trim to exactly n clips
            for p in extra:
                p.unlink()
            assert len(all_ids(params)) >= n
            cmd = [str(BIN / "emotion"), "extract", str(data), "--out", str(tmp / f"store-{n}"), "--modality", "audio",
                   "--workers", str(args.workers)]
            peak, secs, code = peak_rss(cmd, env)
            assert code == 0, f"extract failed on {n} clips"
            results[n] = peak
            print(f"{n:5d} clips: peak RSS of the process tree {peak / 2**20:7.1f} MiB, {secs:6.1f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = results[args.large] / results[args.small]
    print(f"ratio large/small = {ratio:.3f}  (target <= 1.20)")
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    sys.exit(main())
