"""Incremental rerun vs full extraction, side by side in one run.

Builds a temporary tree of symbolic links to the 1200 real clips in
../shared/ravdess/audio_speech (or a synthetic corpus of 1200 clips where
that folder is absent), runs the extract-audio flow once in full, then
changes one clip, adds one and deletes one, and runs it again. Prints both
times and their ratio (target: rerun under 10% of the full run), and checks
the counts: exactly 2 processed, 1 removed, the rest skipped.

Two modes, each with its own full run and rerun:

* service: a Dask cluster that outlives the runs (``--dask-address``), as
  when the pipeline runs on a schedule next to a cluster;
* local: the default, a local cluster started by each run. A rerun then pays
  process start-up and the first-call imports of librosa/scipy (about 1.5 s
  in a fresh process) whatever the amount of work.

    python -m bench.incremental [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

REAL = Path(__file__).resolve().parents[2] / "shared" / "ravdess" / "audio_speech"


def measure(mode: str, data: Path, out: Path, files: list[Path], address: str | None = None,
            workers: int | None = None) -> bool:
    from flows.extract import extract_audio

    def run():
        t0 = time.perf_counter()
        s = extract_audio(str(data), str(out), dask_address=address, workers=workers)
        return s, time.perf_counter() - t0

    full, t_full = run()
    changed, donor, gone = files[0], files[1], files[2]
    saved = [(p, p.read_bytes()) for p in (changed, gone)]
    changed.unlink()
    shutil.copyfile(donor, changed)  # new content under the same name
    gone.unlink()
    added = changed.parent / (changed.name[:-7] + "21" + changed.suffix)  # a new actor-21 clip
    shutil.copyfile(files[3], added)
    rerun, t_rerun = run()
    for p, content in saved:  # put the tree back for the next mode
        p.unlink(missing_ok=True)
        p.write_bytes(content)
    added.unlink()
    ok_counts = (rerun.processed, rerun.removed, rerun.skipped) == (2, 1, len(files) - 2)
    ratio = t_rerun / t_full
    print(f"[{mode}] full run {t_full:6.2f} s (processed {full.processed}); rerun {t_rerun:5.2f} s "
          f"(processed {rerun.processed}, skipped {rerun.skipped}, removed {rerun.removed}, rejected {rerun.rejected})")
    print(f"[{mode}] counts as expected: {ok_counts}; ratio rerun/full = {ratio:.3f} (target < 0.10)", flush=True)
    return ok_counts and ratio < 0.10


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-incr-"))
    data = tmp / "data"
    try:
        if REAL.is_dir():
            for f in sorted(REAL.rglob("*.flac")):
                dst = data / f.parent.name / f.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.symlink_to(f)
            source = f"links to {REAL}"
        else:
            from emotion.audio.synth import SynthParams, write_corpus

            write_corpus(data, SynthParams(actors=tuple(range(1, 21)), duration=3.5))
            source = "synthetic corpus (real RAVDESS audio not found)"
        files = sorted(p for p in data.rglob("*") if p.suffix in (".flac", ".wav"))
        print(f"{len(files)} clips ({source}); {args.workers} workers", flush=True)

        from distributed import LocalCluster
        from prefect.testing.utilities import prefect_test_harness

        ok = True
        with prefect_test_harness(server_startup_timeout=120):
            with LocalCluster(n_workers=args.workers, threads_per_worker=1, host="127.0.0.1",
                              dashboard_address=None) as cluster:
                ok &= measure("service", data, tmp / "store-service", files, address=cluster.scheduler_address)
            ok &= measure("local", data, tmp / "store-local", files, workers=args.workers)
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
