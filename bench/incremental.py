"""Incremental rerun vs full extraction, side by side in one run.

Builds a temporary tree of symbolic links to the 1200 real clips in
../shared/ravdess/audio_speech (or a synthetic corpus of 1200 clips where
that folder is absent), runs the extract-audio flow once in full, then
changes one clip, adds one and deletes one, and runs it again. Prints both
times and their ratio (target: rerun under 10% of the full run), and checks
the counts: exactly 2 processed, 1 removed, the rest skipped.

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-incr-"))
    data, out = tmp / "data", tmp / "store"
    try:
        if REAL.is_dir():
            for f in sorted(REAL.rglob("*.flac")):
                dst = data / f.parent.name / f.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.symlink_to(f)
            source = f"links to {REAL}"
        else:
            from emotion.synth import SynthParams, write_corpus

            write_corpus(data, SynthParams(actors=tuple(range(1, 21)), duration=3.5))
            source = "synthetic corpus (real RAVDESS audio not found)"
        files = sorted(p for p in data.rglob("*") if p.suffix in (".flac", ".wav"))
        print(f"{len(files)} clips ({source}); {args.workers} workers", flush=True)

        from prefect.testing.utilities import prefect_test_harness

        from flows.extract import extract_audio

        with prefect_test_harness(server_startup_timeout=120):
            t0 = time.perf_counter()
            full = extract_audio(str(data), str(out), workers=args.workers)
            t_full = time.perf_counter() - t0
            changed, donor, gone = files[0], files[1], files[2]
            changed.unlink()
            shutil.copyfile(donor, changed)  # new content under the same name
            gone.unlink()
            added = changed.parent / (changed.name[:-7] + "21" + changed.suffix)  # a new actor-21 clip
            shutil.copyfile(files[3], added)
            t0 = time.perf_counter()
            rerun = extract_audio(str(data), str(out), workers=args.workers)
            t_rerun = time.perf_counter() - t0
        print(f"full run   {t_full:7.2f} s  processed {full.processed}, rejected {full.rejected}")
        print(f"rerun      {t_rerun:7.2f} s  processed {rerun.processed}, skipped {rerun.skipped}, "
              f"removed {rerun.removed}, rejected {rerun.rejected}")
        ok_counts = (rerun.processed, rerun.removed, rerun.skipped) == (2, 1, len(files) - 2)
        print(f"counts as expected (2 processed, 1 removed, {len(files) - 2} skipped): {ok_counts}")
        print(f"ratio rerun/full = {t_rerun / t_full:.3f}  (target < 0.10)")
        return 0 if ok_counts and t_rerun / t_full < 0.10 else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
