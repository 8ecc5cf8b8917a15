"""Incremental reruns vs the full extraction, as a user runs them: `emotion extract` against a running Prefect server.

Builds a temporary tree of symbolic links to the 1200 real clips in
../shared/ravdess/audio_speech (or a synthetic corpus of 1200 clips where
that folder is absent), starts a Prefect server on a free port of 127.0.0.1,
and runs the command line (start-up included) with ``PREFECT_API_URL`` set:

1. the full extraction;
2. a rerun with nothing changed, timed, then once more under
   ``strace -f -e trace=open,openat`` to count the media files opened (by the
   command and any process it starts): target none;
3. a rerun after 1 change, 1 addition and 1 deletion: exactly 2 processed,
   1 removed, the rest skipped.

Prints, for each rerun, the wall time of the command and the flow's own time
(the ``seconds`` of its summary) as shares of the full extraction's. Targets:
the flow's own time of the no-change rerun under 3 %, the wall time of the
1/1/1 rerun under 10 %.

    python -m bench.incremental [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent
REAL = Path(__file__).resolve().parents[2] / "shared" / "ravdess" / "audio_speech"
MEDIA = re.compile(r"\.(wav|flac|mp4|zip)$", re.IGNORECASE)
QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DASK_LOGGING__DISTRIBUTED": "warning",
         "PREFECT_LOGGING_LEVEL": "WARNING", "TF_CPP_MIN_LOG_LEVEL": "3"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """``prefect server start`` on a free port with its own home; yields its API URL."""
    import httpx

    port = free_port()
    env = {**os.environ, **QUIET, "PREFECT_HOME": str(home)}
    with open(home.parent / "server.log", "wb") as log:
        proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the Prefect server did not start (see server.log)")
            time.sleep(0.5)
        yield api
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)


def emotion_extract(data: Path, out: Path, api: str, *extra: str, strace: Path | None = None) -> tuple[dict, float]:
    """Run ``emotion extract`` as a user does; its JSON summary and wall time."""
    cmd = [str(BIN / "emotion"), "extract", str(data), "--out", str(out), "--modality", "audio", "--json", *extra]
    if strace is not None:
        cmd = ["strace", "-f", "-qq", "-e", "trace=open,openat", "-o", str(strace), *cmd]
    env = {**os.environ, **QUIET, "PREFECT_API_URL": api}
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - t0
    if res.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout), wall


def media_opens(trace: Path, roots: list[Path]) -> list[str]:
    """Media files under ``roots`` opened (successfully or not) in an strace log."""
    prefixes = tuple(str(r) for r in roots)
    opened = []
    for line in trace.read_text(errors="replace").splitlines():
        m = re.search(r'open(?:at)?\((?:[^,]+, )?"([^"]+)"', line)
        if m and m.group(1).startswith(prefixes) and MEDIA.search(m.group(1)):
            opened.append(m.group(1))
    return opened


def quieter(src: Path, dst: Path) -> None:
    """``dst``: the recording of ``src`` at 0.8 of its level (new content), in the same format."""
    import soundfile as sf

    y, sr = sf.read(str(src), dtype="float32", always_2d=True)
    dst.unlink(missing_ok=True)
    sf.write(str(dst), 0.8 * y, sr, subtype="PCM_16")


def no_change_rerun(data: Path, out: Path, api: str, roots: list[Path], tmp: Path) -> tuple[dict, float, list[str]]:
    """A timed rerun, then one under strace (when strace is here) for the files it opens."""
    summary, wall = emotion_extract(data, out, api)
    opened: list[str] = []
    if shutil.which("strace"):
        trace = tmp / "strace.log"
        emotion_extract(data, out, api, strace=trace)
        opened = media_opens(trace, roots)
    else:
        print("strace not found: files opened not counted", flush=True)
    return summary, wall, opened


def real_or_synthetic_corpus(data: Path) -> tuple[list[Path], str]:
    """``data``: links to the 1,200 real clips (never copies), or 1,200 synthetic ones where they are absent;
    its clips and where they came from."""
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
    return sorted(p for p in data.rglob("*") if p.suffix in (".flac", ".wav")), source


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-incr-"))
    data, out = tmp / "data", tmp / "store"
    try:
        files, source = real_or_synthetic_corpus(data)
        print(f"{len(files)} clips ({source}); {args.workers} workers; emotion extract against a running Prefect server",
              flush=True)
        (tmp / "prefect").mkdir()
        with prefect_server(tmp / "prefect") as api:
            workers = ["--workers", str(args.workers)]
            full, t_full = emotion_extract(data, out, api, *workers)
            print(f"full run:        {t_full:7.2f} s wall, flow {full['seconds']:6.2f} s (processed {full['processed']}, "
                  f"{full['n_workers']} workers)", flush=True)
            roots = [data, REAL] if REAL.is_dir() else [data]
            same, t_same, opened = no_change_rerun(data, out, api, roots, tmp)
            print(f"no-change rerun: {t_same:7.2f} s wall, flow {same['seconds']:6.2f} s (processed {same['processed']}, "
                  f"skipped {same['skipped']}); media files opened: {len(opened)}", flush=True)

            changed, gone = files[0], files[2]
            # new content under the same name, and a new clip: each a quieter take of a clip (a byte-for-byte copy of
            # another clip would be one recording under two ids, and rejected as such)
            quieter(files[1], changed)
            gone.unlink()
            added = changed.parent / (changed.name[:-7] + "21" + changed.suffix)  # a new actor-21 clip
            quieter(files[3], added)
            rerun, t_rerun = emotion_extract(data, out, api, *workers)
            print(f"1/1/1 rerun:     {t_rerun:7.2f} s wall, flow {rerun['seconds']:6.2f} s (processed "
                  f"{rerun['processed']}, skipped {rerun['skipped']}, removed {rerun['removed']}, rejected "
                  f"{rerun['rejected']})", flush=True)
        # clips the full run rejected stay rejected (the real subset holds one recording under two ids in Actor_07)
        ok_counts = (rerun["processed"], rerun["removed"], rerun["skipped"]) == (2, 1, len(files) - 2 - full["rejected"])
        flow_same = same["seconds"] / full["seconds"]
        print(f"no change: flow/full flow = {flow_same:.3f} (target < 0.03), wall/full wall = {t_same / t_full:.3f}; "
              f"media files opened {len(opened)} (target 0)")
        print(f"1 change, 1 addition, 1 deletion: wall/full wall = {t_rerun / t_full:.3f} (target < 0.10), "
              f"flow/full flow = {rerun['seconds'] / full['seconds']:.3f}; counts as expected: {ok_counts}", flush=True)
        return 0 if ok_counts and not opened and flow_same < 0.03 and t_rerun / t_full < 0.10 else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
