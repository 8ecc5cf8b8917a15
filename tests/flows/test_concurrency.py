"""Issue 16: two extractions into one store, and readers during an extraction, leave a consistent store."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from emotion.audio.synth import SynthParams, write_corpus
from emotion.core.errors import StoreError
from emotion.store.store import Store
from flows.cli import main
from tests.services import reap

PROJECT = Path(__file__).resolve().parents[2]
ROUNDS = int(os.environ.get("EMOTION_CONCURRENCY_ROUNDS", "1"))


def _emotion(out: Path, *argv: str) -> subprocess.Popen[str]:
    # each command with its own temporary Prefect server and its own Prefect home: two temporary servers migrating
    # one SQLite database at the same moment can fail to start (Prefect's limit; a shared `emotion server` has none)
    home = out.parent / f"prefect-home-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    _STARTED.append(proc)
    return proc


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _nothing_left_running() -> Iterator[None]:
    """A test that fails midway (a time-out) leaves none of its commands running under the tests after it."""
    yield
    while _STARTED:
        reap(_STARTED.pop())


def _extract(data: Path, out: Path) -> subprocess.Popen[str]:
    return _emotion(out, "extract", str(data), "--out", str(out), "--modality", "audio", "--workers", "1",
                    "--chunk-size", "8")


def _consistent(out: Path) -> None:
    store = Store(str(out))
    key = next((out / "features" / "audio").iterdir()).name
    rows = store.read_features("audio", key)
    keys = store.feature_keys("audio", key)
    manifest = store.read_table(store.path("manifest", "audio.parquet"))
    assert keys["path"].is_unique, "a clip stored twice"
    kept = manifest[manifest["status"] == "ok"]  # rejects are in the manifest too (seen, with their reason)
    assert sorted(rows["path"]) == sorted(kept["path"]), "manifest and feature rows disagree"


@pytest.mark.slow
def test_two_extractions_and_a_reader_at_once_leave_a_consistent_store(tmp_path: Path):
    data = tmp_path / "data"
    write_corpus(data, SynthParams(actors=(1, 2), repetitions=1, duration=0.6, seed=1))
    n_clips = len(list(data.rglob("*.wav")) + list(data.rglob("*.flac")))
    for r in range(ROUNDS):
        out = tmp_path / f"store{r}"
        first = _extract(data, out)
        time.sleep(0.5 * (r % 2))
        second = _extract(data, out)
        results = [p.communicate(timeout=300) + (p.returncode,) for p in (first, second)]
        codes = sorted(code for _, _, code in results)
        assert codes[0] == 0, results
        for _, err, code in results:
            if code:  # the loser says why, on one line, without a traceback
                assert code == 1 and "Traceback" not in err, err
                assert err.strip().splitlines()[-1].startswith("emotion: extract failed: the store"), err
                assert "is being written by emotion extract" in err, err
        _consistent(out)
        assert len(Store(str(out)).read_table(str(out / "manifest" / "audio.parquet"))) == n_clips

    # a reader (what `train` does) while an extraction rewrites the store: every read sees whole parts
    for f in sorted(data.rglob("*.wav"))[:6]:
        f.write_bytes(f.read_bytes()[:-2000] + os.urandom(2000))  # changed clips: their rows get compacted
    out = tmp_path / "store0"
    key = next((out / "features" / "audio").iterdir()).name
    errors: list[str] = []
    reads = [0]
    proc = _extract(data, out)

    def read_loop() -> None:
        store = Store(str(out))
        while proc.poll() is None:
            try:
                df = store.read_features("audio", key)
                assert df["path"].is_unique
                reads[0] += 1
            except StoreError as exc:
                errors.append(str(exc))
            except Exception as exc:  # noqa: BLE001 - what the test is about
                errors.append(f"{type(exc).__name__}: {exc}")

    t = threading.Thread(target=read_loop, daemon=True)
    t.start()
    _, err, code = proc.communicate(timeout=300) + (proc.returncode,)
    t.join(timeout=60)
    assert code == 0, err
    assert not errors and reads[0] > 0
    _consistent(out)


def test_a_second_data_root_is_refused_not_silently_dropped(tiny_corpus: Path, tmp_path: Path, capsys):
    out = tmp_path / "store"
    Store(str(out)).check_data_root(str(tmp_path / "other-root"))
    code = main(["extract", str(tiny_corpus), "--out", str(out), "--modality", "audio", "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "was built from" in err and "--replace-data" in err
    assert not (out / "features").exists()


def _train(out: Path) -> subprocess.Popen[str]:
    return _emotion(out, "train", str(out), "--split", "train=1-3,test=4", "--model", "lr", "--n-iter", "2", "--force")


@pytest.mark.slow
def test_a_training_run_started_during_an_extraction_reads_a_whole_store(tmp_path: Path):
    """`emotion train` started while an extraction rewrites changed clips: the training succeeds on a whole set of
    rows (every clip once) and the store ends consistent, round after round."""
    data = tmp_path / "data"
    write_corpus(data, SynthParams(actors=(1, 2, 3, 4), repetitions=1, duration=0.6, seed=3))  # 3 to train, 1 to test
    out = tmp_path / "store"
    first = _extract(data, out)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    clips = sorted(data.rglob("*.wav")) + sorted(data.rglob("*.flac"))
    for r in range(ROUNDS):
        for f in clips[r % 8::8][:8]:  # changed clips (a FLAC may become a reject): rows rewritten and compacted
            f.write_bytes(f.read_bytes()[:-2000] + os.urandom(2000))
        extraction = _extract(data, out)
        time.sleep(1.0 + 0.7 * (r % 3))  # the training starts at different moments of the extraction
        training = _train(out)
        (_, e_err), (t_out, t_err) = extraction.communicate(timeout=300), training.communicate(timeout=600)
        assert extraction.returncode == 0, e_err
        assert training.returncode == 0, t_err[-3000:]
        assert "Traceback" not in t_err
        assert "lr" in t_out
        _consistent(out)
