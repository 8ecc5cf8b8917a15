"""Nightly reruns and the store's parts: what a rerun reads stays a few files however many runs came before.

Every run that finds a change writes one new Parquet part (and compaction
rewrites the parts that held changed clips). Without merging, a store run
nightly for a year holds hundreds of small parts, and every rerun's commit,
and every training, reads them all.

Over the 1,200 real FLAC clips in ../shared/ravdess/audio_speech (symbolic
links; a synthetic corpus where that folder is absent), against a Prefect
server started for it, with ``emotion extract`` as a user runs it:

1. the full extraction, then a no-change rerun (timed: the baseline);
2. ``--runs`` reruns, each after one clip changed: the parts count after each;
3. the feature folder rewritten as ``--split`` parts of a few rows each (a
   store written by a year of nightly runs before parts were merged), then
   two no-change reruns: the first reads every part and merges them, the
   second reads what is left.

Prints the flow's own time (the ``seconds`` of its summary) of each no-change
rerun and its ratio to the baseline's. Target: parts stay bounded (at most
``MAX_SMALL_PARTS`` + 1 small ones) and the rerun after the merge is back
near the baseline.

    python -m bench.part_growth [--runs 20] [--split 400]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bench.incremental import emotion_extract, prefect_server, quieter, real_or_synthetic_corpus
from emotion.store.store import MAX_SMALL_PARTS, Store


def split_parts(folder: Path, n: int) -> int:
    """Rewrite the parts of ``folder`` as ``n`` parts of a few rows each; the number written."""
    parts = sorted(folder.glob("part-*.parquet"))
    tables = [pq.read_table(p) for p in parts]
    table = pa.concat_tables(tables)
    for p in parts:
        p.unlink()
    step = -(-table.num_rows // n)
    written = 0
    for i in range(0, table.num_rows, step):
        pq.write_table(table.slice(i, step), folder / Store.new_part_name(), compression="zstd")
        written += 1
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--split", type=int, default=400)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-parts-"))
    data, out = tmp / "data", tmp / "store"
    try:
        files, source = real_or_synthetic_corpus(data)
        print(f"{len(files)} clips ({source}); emotion extract against a running Prefect server", flush=True)
        (tmp / "prefect").mkdir()
        with prefect_server(tmp / "prefect") as api:
            full, t_full = emotion_extract(data, out, api, "--workers", "2")
            audio = full["modalities"]["audio"]
            folder = out / "features" / "audio" / audio["feature_set"]
            print(f"full run: {t_full:.2f} s wall; {audio['parts']} part(s) stored, {audio['merged_parts']} merged",
                  flush=True)
            base, _ = emotion_extract(data, out, api)
            print(f"no-change rerun: flow {base['seconds']:.2f} s (baseline)", flush=True)
            most = 0
            for k in range(args.runs):
                quieter(files[(k + 1) % len(files)], files[k])  # one clip's content changes
                s, wall = emotion_extract(data, out, api)
                a = s["modalities"]["audio"]
                most = max(most, a["parts"])
                merged = f" (merged {a['merged_parts']})" if a["merged_parts"] else ""
                print(f"rerun {k + 1:3d} (1 changed): {wall:5.2f} s wall, flow {s['seconds']:.2f} s; "
                      f"parts {a['parts']}{merged}", flush=True)
            n = split_parts(folder, args.split)
            first, _ = emotion_extract(data, out, api)
            second, _ = emotion_extract(data, out, api)
        a1, a2 = first["modalities"]["audio"], second["modalities"]["audio"]
        print(f"after {args.runs} one-change reruns: at most {most} parts (target <= {MAX_SMALL_PARTS + 1})")
        print(f"split into {n} parts: no-change rerun flow {first['seconds']:.2f} s ({first['seconds'] / base['seconds']:.1f}x "
              f"the baseline), merged {a1['merged_parts']}, {a1['parts']} part(s) left")
        print(f"the next no-change rerun: flow {second['seconds']:.2f} s ({second['seconds'] / base['seconds']:.2f}x "
              f"the baseline), {a2['parts']} part(s)", flush=True)
        ok = most <= MAX_SMALL_PARTS + 1 and a2["parts"] <= MAX_SMALL_PARTS + 1 and a1["merged_parts"] >= n - 1
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
