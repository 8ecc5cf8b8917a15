"""Extraction speed of our ``extended`` set vs openSMILE's ComParE 2016 functionals.

Both sides read, decode and resample each clip to 16 kHz mono exactly as the
pipeline does (``emotion.audio.decode.load_audio``) and compute one feature vector,
in this same single-threaded process, over the same clips. The two are
interleaved clip by clip (which order goes first alternates), so the load of
a shared machine hits both alike; the totals and their ratio are printed.
Where the optional ``opensmile`` package is absent, only our absolute rate is
printed.

    python -m bench.extended_vs_opensmile [--data DIR] [--limit N] [--also-egemaps]

Uses the 1200 real clips in ../shared/ravdess/audio_speech by default.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

REAL = Path(__file__).resolve().parents[2] / "shared" / "ravdess" / "audio_speech"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REAL), help="folder of .wav/.flac clips (default: the real RAVDESS subset)")
    ap.add_argument("--limit", type=int, help="use only the first N clips")
    ap.add_argument("--also-egemaps", action="store_true", help="time eGeMAPS as well")
    args = ap.parse_args(argv)

    from emotion.audio.decode import load_audio
    from emotion.audio.opensmile import OpenSmileParams, opensmile_available
    from emotion.featuresets import feature_set, make_extractor

    files = sorted(p for p in Path(args.data).rglob("*") if p.suffix.lower() in (".wav", ".flac"))[: args.limit]
    if not files:
        print(f"no clips under {args.data}", file=sys.stderr)
        return 2
    sides = {"extended": make_extractor(feature_set("extended"))}
    if opensmile_available():
        sides["compare"] = make_extractor(OpenSmileParams("compare"))
        if args.also_egemaps:
            sides["egemaps"] = make_extractor(OpenSmileParams("egemaps"))
    blobs = [f.read_bytes() for f in files]  # file reads outside the timing: both sides get the same bytes
    for ex in sides.values():  # warm-up (filter banks, openSMILE configuration)
        ex(load_audio(blobs[0], ex.params.sample_rate))
    total = dict.fromkeys(sides, 0.0)
    audio_seconds = 0.0
    for i, data in enumerate(blobs):
        order = list(sides) if i % 2 == 0 else list(sides)[::-1]
        for name in order:
            ex = sides[name]
            t0 = time.perf_counter()
            y = load_audio(data, ex.params.sample_rate)
            ex(y)
            total[name] += time.perf_counter() - t0
            if name == "extended":
                audio_seconds += len(y) / ex.params.sample_rate
    n = len(blobs)
    print(f"{n} clips ({audio_seconds / 60:.1f} min of audio) from {args.data}, decode + resample + features, one thread")
    for name, secs in total.items():
        print(f"  {name:<9} {secs:7.1f} s  {n / secs:7.1f} clips/s  {audio_seconds / secs:6.0f}x real time  "
              f"({len(sides[name].names)} features)")
    if "compare" in total:
        print(f"  extended is {total['compare'] / total['extended']:.1f}x faster than openSMILE ComParE")
    else:
        print("  openSMILE is not installed (pip install -e '.[opensmile]'): no ratio; absolute rate above")
    return 0


if __name__ == "__main__":
    sys.exit(main())
