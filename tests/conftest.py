"""Shared fixtures: tiny synthetic corpora and the real RAVDESS subset."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The tests never touch the Prefect of the person running them: not the server their shell points at, not the
# database under ~/.prefect (which another Prefect version may have migrated); a command the tests run without a
# server of their own gets a temporary one on a database of this session's.
os.environ.pop("PREFECT_API_URL", None)
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="emotion-tests-prefect-home-")
atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], True)
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")

from emotion.audio.synth import SynthParams, write_corpus  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
REAL = PROJECT.parent / "shared" / "ravdess"
REAL_AUDIO = REAL / "audio_speech"


def real_audio_files(n: int | None = None) -> list[Path]:
    if not REAL_AUDIO.is_dir():
        pytest.skip(f"real RAVDESS audio not found at {REAL_AUDIO} (it sits next to the project root)")
    files = sorted(REAL_AUDIO.rglob("*.flac"))
    return files[:n] if n else files


TINY = SynthParams(actors=(1, 2, 3, 21), repetitions=1, duration=1.0, seed=3)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 synthetic clips: actors 01-03 (train) and 21 (test), wav and flac, mono and stereo."""
    root = tmp_path_factory.mktemp("tiny") / "data"
    write_corpus(root, TINY)
    return root


@pytest.fixture
def corpus(tiny_corpus: Path, tmp_path: Path) -> Path:
    """A private, modifiable copy of the tiny corpus."""
    dst = tmp_path / "data"
    shutil.copytree(tiny_corpus, dst)
    return dst


def flip_value_bytes(path: str | Path, column: str) -> None:
    """Damage that keeps a Parquet file whole: 4 bytes flipped among ``column``'s stored values, away from the
    other columns and the footer (a bad disk block, a partial overwrite). The values are those of its dictionary
    page where it has one: its data page's header holds statistics (min and max) that no reader uses."""
    import pyarrow.parquet as pq

    rg = pq.ParquetFile(path).metadata.row_group(0)
    chunk = next(rg.column(i) for i in range(rg.num_columns) if rg.column(i).path_in_schema == column)
    if chunk.dictionary_page_offset:
        at = chunk.dictionary_page_offset + (chunk.data_page_offset - chunk.dictionary_page_offset) * 3 // 4
    else:
        at = chunk.data_page_offset + chunk.total_compressed_size * 3 // 4
    with open(path, "r+b") as fh:
        fh.seek(at)
        old = fh.read(4)
        fh.seek(at)
        fh.write(bytes(b ^ 0xFF for b in old))


def speaker_table(names: tuple[str, ...] = ("f1", "f2", "f3")) -> pd.DataFrame:
    """A feature table of five actors with 48 clips each and a large per-actor offset; the emotion (1-8) puts
    the first two features on a circle within each speaker, the others are noise."""
    rng = np.random.default_rng(0)
    rows = []
    for actor in range(1, 6):
        offset = rng.normal(0, 20, len(names))
        for k in range(48):
            emo = k % 8 + 1
            x = offset + rng.normal(0, 0.1, len(names))
            x[:2] += 2 * np.array([np.cos(np.pi * emo / 4), np.sin(np.pi * emo / 4)])  # emotions on a circle
            rows.append({"path": f"Actor_{actor:02d}/{k}.wav", "content_hash": f"h{actor}-{k}", "actor": actor,
                         "emotion": emo, **dict(zip(names, x, strict=True))})
    return pd.DataFrame(rows)


def write_tone(path: Path, seconds: float = 1.0, sr: int = 22050, channels: int = 1, amp: float = 0.3) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    y = amp * np.sin(2 * np.pi * 220 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.repeat(y[:, None], channels, axis=1), sr)
    return path


REAL_VIDEO = REAL / "video_speech"


def real_video_files() -> list[Path]:
    if not REAL_VIDEO.is_dir():
        pytest.skip(f"real RAVDESS video not found at {REAL_VIDEO} (it sits next to the project root)")
    return sorted(REAL_VIDEO.rglob("*.mp4"))


# A phone stores the pixels as its sensor reads them and, in the mp4's display matrix (the track header's matrix,
# ffprobe's "rotate" tag), the turn that shows them upright: tag 90 is a quarter turn clockwise, and so on. The
# matrices are QuickTime's (16.16 fixed point, 2.30 for the last column), as an iPhone writes them (less the offset).
_ONE, _UNIT = 0x10000, 0x40000000
DISPLAY_MATRIX = {90: (0, _ONE, 0, -_ONE, 0, 0, 0, 0, _UNIT), 180: (-_ONE, 0, 0, 0, -_ONE, 0, 0, 0, _UNIT),
                  270: (0, -_ONE, 0, _ONE, 0, 0, 0, 0, _UNIT)}


def write_turned_clip(path: Path, upright: list[np.ndarray], rotate: int, fps: int = 30) -> Path:
    """An H.264 mp4 of the ``upright`` RGB frames stored as a phone held turned stores them: pixels turned
    ``rotate`` degrees counter-clockwise (0, 90, 180 or 270) and a display matrix that turns them back."""
    import av

    if rotate and not hasattr(av.VideoStream, "set_display_matrix"):
        pytest.skip(f"PyAV {av.__version__} cannot write a display matrix (PyAV 18.1 can)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as out:
        stream = None
        for rgb in upright:
            stored = np.ascontiguousarray(np.rot90(rgb, k=rotate // 90))  # np.rot90 turns counter-clockwise
            if stream is None:
                stream = out.add_stream("libx264", rate=fps)
                stream.width, stream.height, stream.pix_fmt = stored.shape[1], stored.shape[0], "yuv420p"
                stream.options = {"preset": "ultrafast", "qp": "0"}  # lossless: every turn decodes to the same pixels
                if rotate:
                    stream.set_display_matrix(DISPLAY_MATRIX[rotate])
            for packet in stream.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="session")
def tiny_video_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic mp4 clips (H.264 + AAC): actors 01, 02 and 21, modalities 01 and 02, 30 clips each."""
    from emotion.video.synth import VideoSynthParams, write_video_corpus

    root = tmp_path_factory.mktemp("tinyvideo") / "data"
    write_video_corpus(root, VideoSynthParams(actors=(1, 2, 21), modalities=(1, 2), duration=1.4, seed=5))
    return root


# -- counting the files a test opens ------------------------------------------------------------------------------
_OPENED: list[list[str]] = []  # the lists of the counters now active


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _OPENED and isinstance(args[0], str | bytes | os.PathLike):
        path = os.fsdecode(args[0])
        for opened in _OPENED:
            opened.append(path)


@pytest.fixture(scope="session")
def open_counter():
    """``with open_counter(root) as opened:`` lists the files under ``root`` opened by this process meanwhile.

    Counted by an audit hook (every ``open`` of Python code and of fsspec's local file system); a Dask
    worker thread of this process counts too, worker processes do not.
    """
    import sys
    from contextlib import contextmanager

    sys.addaudithook(_audit)  # audit hooks cannot be removed: one for the session, idle when no counter is active

    @contextmanager
    def counter(root: Path):
        raw: list[str] = []
        mine: list[str] = []
        _OPENED.append(raw)
        try:
            yield mine
        finally:
            _OPENED.remove(raw)
            prefixes = (str(root), os.path.realpath(root))
            mine.extend(p for p in raw if p.startswith(prefixes))

    return counter


# Seconds the test process may take to exit after its summary before it is stopped
EXIT_GRACE = float(os.environ.get("EMOTION_TESTS_EXIT_GRACE", "180"))


def pytest_unconfigure(config: pytest.Config) -> None:
    """A thread a test left waiting for ever keeps the process from exiting after the summary, silently, until CI's
    time runs out (seen once). After ``EXIT_GRACE`` seconds, every thread's stack is printed and the process exits
    with failure instead."""
    import faulthandler
    import sys

    # only where the process is pytest's own (`pytest`, `python -m pytest`): never one that called pytest.main()
    # and goes on (an editor, a notebook)
    if Path(sys.argv[0]).name in ("pytest", "py.test") or sys.argv[0].endswith(os.path.join("pytest", "__main__.py")):
        faulthandler.dump_traceback_later(EXIT_GRACE, exit=True, file=sys.__stderr__)
