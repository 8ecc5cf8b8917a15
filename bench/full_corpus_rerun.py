"""A no-change rerun over a corpus the size of the full RAVDESS (7,356 files): time and media bytes read.

Writes 7,356 small clips named as the full RAVDESS is (24 actors; speech:
modalities 01, 02 and 03 x 60 clips; song, which actor 18 lacks: 3 x 44
clips; all ``.wav`` here, a 0.3 s tone each, each of its own pitch),
runs ``emotion extract`` once (against a Prefect server started for it),
then again with nothing changed, timed, and once more under
``strace -f -e trace=open,openat,read,close`` where strace is present, and
prints the rerun's wall time, the flow's own time, the media files it
opened and the bytes it read from them. Target: no media file opened, no
media byte read, seconds not minutes.

    python -m bench.full_corpus_rerun [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.incremental import MEDIA, emotion_extract, media_opens, prefect_server

SPEECH_EMOTIONS, SONG_EMOTIONS = range(1, 9), range(1, 7)


def ravdess_names() -> list[str]:
    """The 7,356 file stems of the full RAVDESS."""
    names = []
    for actor in range(1, 25):
        for channel, emotions in ((1, SPEECH_EMOTIONS), (2, SONG_EMOTIONS)):
            if channel == 2 and actor == 18:
                continue
            for modality in (1, 2, 3):
                for emo in emotions:
                    for intensity in ((1,) if emo == 1 else (1, 2)):
                        for statement in (1, 2):
                            for rep in (1, 2):
                                names.append(f"{modality:02d}-{channel:02d}-{emo:02d}-{intensity:02d}-{statement:02d}-"
                                             f"{rep:02d}-{actor:02d}")
    return names


def write_corpus(root: Path) -> int:
    """One small WAV per name, each a tone of its own pitch: distinct content (a byte-for-byte copy of another
    clip would be one recording under two ids, and rejected as such)."""
    sr = 16000
    t = np.arange(int(0.3 * sr)) / sr
    names = ravdess_names()
    for i, stem in enumerate(names):
        dst = root / f"Actor_{stem[-2:]}" / f"{stem}.wav"
        dst.parent.mkdir(parents=True, exist_ok=True)
        sf.write(dst, 0.3 * np.sin(2 * np.pi * (120 + 0.1 * i) * t), sr, subtype="PCM_16")
    return len(names)


def bytes_read(trace: Path, roots: list[Path]) -> int:
    """Bytes returned by read() on file descriptors open on media files under ``roots`` (strace log, -f).

    A descriptor counts from the open of a media file to its close (descriptor numbers are reused).
    """
    prefixes = tuple(str(r) for r in roots)
    fds: set[tuple[str, str]] = set()
    total = 0
    for line in trace.read_text(errors="replace").splitlines():
        pid = line.split(" ", 1)[0]
        m = re.search(r'open(?:at)?\((?:[^,]+, )?"([^"]+)".*= (\d+)$', line)
        if m:
            if m.group(1).startswith(prefixes) and MEDIA.search(m.group(1)):
                fds.add((pid, m.group(2)))
            else:
                fds.discard((pid, m.group(2)))
            continue
        m = re.search(r"close\((\d+)\)", line)
        if m:
            fds.discard((pid, m.group(1)))
            continue
        m = re.search(r"read\((\d+),.*= (\d+)$", line)
        if m and (pid, m.group(1)) in fds:
            total += int(m.group(2))
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-full-"))
    data, out = tmp / "data", tmp / "store"
    try:
        n = write_corpus(data)
        print(f"{n} clips named as the full RAVDESS under {data}", flush=True)
        (tmp / "prefect").mkdir()
        with prefect_server(tmp / "prefect") as api:
            first, t_first = emotion_extract(data, out, api, "--workers", str(args.workers), "--chunk-size", "200")
            print(f"first run: {t_first:.1f} s wall (processed {first['processed']}, rejected {first['rejected']})",
                  flush=True)
            same, t_same = emotion_extract(data, out, api)
            print(f"no-change rerun: {t_same:.2f} s wall, flow {same['seconds']:.2f} s (processed {same['processed']}, "
                  f"skipped {same['skipped']})", flush=True)
            if shutil.which("strace"):
                trace = tmp / "strace.log"
                t0 = time.perf_counter()
                traced, _ = emotion_extract(data, out, api, strace=trace)
                opened = media_opens(trace, [data])
                # the same run traced for reads too, to count the media bytes
                cmd_trace = tmp / "strace-read.log"
                env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_LOGGING_LEVEL": "WARNING"}
                subprocess.run(["strace", "-f", "-qq", "-e", "trace=open,openat,read,close", "-o",
                                str(cmd_trace), str(Path(sys.executable).parent / "emotion"), "extract", str(data),
                                "--out", str(out), "--modality", "audio", "--json"],
                               capture_output=True, env=env, check=True, timeout=600)
                media_bytes = bytes_read(cmd_trace, [data])
                print(f"traced no-change rerun ({time.perf_counter() - t0:.1f} s with strace): media files opened "
                      f"{len(opened)}, media bytes read {media_bytes} (processed {traced['processed']})")
                ok = not opened and media_bytes == 0
            else:
                print("strace not found: files opened not counted")
                ok = True
        return 0 if ok and same["processed"] == 0 and t_same < 60 else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
