"""Reruns that read nothing unchanged, a cluster kept busy to its size, and retried store writes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from emotion.core.errors import StoreError
from emotion.store.store import Store
from flows.cli import main
from tasks.extract import stored_extraction
from tests.conftest import flip_value_bytes

pytestmark = pytest.mark.slow


def extract_json(capsys, *argv: str) -> dict:
    code = main(["extract", *argv, "--modality", "audio", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    return json.loads(out)


def test_a_rerun_without_changes_reads_no_clip_and_starts_no_cluster(corpus: Path, tmp_path: Path, capsys,
                                                                     open_counter):
    for d in corpus.iterdir():  # actor 02 only: 30 WAV clips
        if d.is_dir() and d.name != "Actor_02":
            shutil.rmtree(d)
    out = str(tmp_path / "store")
    first = extract_json(capsys, str(corpus), "--out", out, "--workers", "2", "--chunk-size", "10")
    assert first["processed"] == 30 and first["n_workers"] == 2
    audio = first["modalities"]["audio"]
    assert audio["read_by_flow"] == 0 and audio["max_in_flight"] >= 2 and audio["cluster_threads"] == 2
    with open_counter(corpus) as opened:
        again = extract_json(capsys, str(corpus), "--out", out, "--workers", "2")
    assert opened == []  # not one media file opened by the flow (and no cluster, so no worker either)
    assert (again["processed"], again["skipped"], again["n_workers"]) == (0, 30, 0)
    # the data version the first run recorded (named in its flow run and tags) holds as long as the data
    # does: for a rerun over the same listing, and for --verify, which reads every clip and finds the same contents
    key = first["modalities"]["audio"]["feature_set"]
    version = stored_extraction(out, "features/audio", key)[0]
    assert len(version) == 8
    assert extract_json(capsys, str(corpus), "--out", out, "--verify")["processed"] == 0
    assert stored_extraction(out, "features/audio", key)[0] == version
    # a change that keeps size and modification time is seen by --verify only
    clip = sorted(corpus.rglob("*.*"))[0]
    st = clip.stat()
    data = bytearray(clip.read_bytes())
    data[-64] ^= 0xFF
    clip.write_bytes(bytes(data))
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert extract_json(capsys, str(corpus), "--out", out)["processed"] == 0
    with open_counter(corpus) as opened:
        verified = extract_json(capsys, str(corpus), "--out", out, "--verify")
    assert verified["modalities"]["audio"]["read_by_flow"] == 30 and len(set(opened)) == 30
    assert (verified["processed"], verified["skipped"]) == (1, 29)
    assert stored_extraction(out, "features/audio", key)[0] != version  # other data, another version


def test_verify_recomputes_a_part_damaged_outside_its_key_columns(corpus: Path, tmp_path: Path, capsys):
    for d in corpus.iterdir():  # actor 02 only: 30 WAV clips
        if d.is_dir() and d.name != "Actor_02":
            shutil.rmtree(d)
    out = str(tmp_path / "store")
    first = extract_json(capsys, str(corpus), "--out", out, "--chunk-size", "10")
    store, key = Store(out), first["modalities"]["audio"]["feature_set"]
    before = store.read_features("audio", key)
    part = store.list_parts(store.features_dir("audio", key))[0]
    in_part = len(store.read_parts([part]))
    feature = next(c for c in before.columns if c.startswith("mfcc"))
    flip_value_bytes(part, feature)
    # a plain rerun reads the key columns only: the damage stays, and readers name it
    assert extract_json(capsys, str(corpus), "--out", out)["processed"] == 0
    with pytest.raises(StoreError, match=f"damaged part {part}: .*--verify"):
        store.read_features("audio", key)
    verified = extract_json(capsys, str(corpus), "--out", out, "--verify")
    assert (verified["processed"], verified["skipped"]) == (in_part, 30 - in_part)
    assert part not in store.list_parts(store.features_dir("audio", key))
    # (recomputed in this process, not on the first run's worker processes: equal to float32 rounding)
    pd.testing.assert_frame_equal(store.read_features("audio", key), before, rtol=1e-4, atol=1e-5)
    # a part the rerun would rewrite (it holds a changed clip) is read whole first: its damage is mended in the
    # same run, without --verify, by recomputing every clip it held
    part = store.list_parts(store.features_dir("audio", key))[0]
    held = sorted(store.read_parts([part])["path"])
    flip_value_bytes(part, feature)
    changed = corpus / held[0]
    y, sr = sf.read(changed, dtype="float32")
    sf.write(changed, 0.8 * y, sr)
    rerun = extract_json(capsys, str(corpus), "--out", out)
    assert (rerun["processed"], rerun["skipped"]) == (len(held), 30 - len(held))
    assert len(store.read_features("audio", key)) == 30


def _flaky_store(fail_writes: int, error: OSError):
    """``flakystore://``: an in-memory store whose first ``fail_writes`` Parquet part writes raise ``error``."""
    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    class FlakyStore(MemoryFileSystem):
        protocol = "flakystore"
        failures = fail_writes

        @classmethod
        def _strip_protocol(cls, path):
            return super()._strip_protocol(path.removeprefix("flakystore://"))

        def pipe_file(self, path, value, *args, **kwargs):
            if "/part-" in path and type(self).failures > 0:
                type(self).failures -= 1
                raise error
            return super().pipe_file(path, value, *args, **kwargs)

    fsspec.register_implementation("flakystore", FlakyStore, clobber=True)
    return FlakyStore


def test_a_store_write_that_fails_for_a_moment_is_retried(tiny_corpus: Path, tmp_path: Path, capsys):
    from flows.extract import extract_audio

    data = tmp_path / "data"  # few clips: the work runs on threads of this process, which knows flakystore://
    for f in sorted(tiny_corpus.rglob("*.wav"))[:6]:
        (data / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, data / f.parent.name / f.name)
    store = _flaky_store(1, ConnectionError("connection reset by peer"))
    s = extract_audio(str(data), "flakystore:///retry-store")
    assert s.processed == 6 and store.failures == 0  # failed once, written on the retry

    _flaky_store(5, OSError(28, "No space left on device"))
    with pytest.raises(Exception, match=r"cannot write flakystore:///full-store/features/audio/.*/part-.*: No space left"):
        extract_audio(str(data), "flakystore:///full-store")
    # a full disk is not retried: the one failure is the only write tried
    import fsspec

    assert type(fsspec.filesystem("flakystore")).failures == 4


def test_chunks_in_flight_follow_the_cluster_size(tiny_corpus: Path, tmp_path: Path, capsys):
    """24 single-thread worker processes and one-clip chunks: more than 16 chunks run at once, as the scheduler
    sees it, and no more than the bounded backlog waits."""
    data = tmp_path / "data"  # 48 clips: 48 chunks, more than the cluster takes at once
    for f in sorted(tiny_corpus.rglob("*.*"))[:48]:
        (data / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, data / f.parent.name / f.name)
    from distributed import LocalCluster
    from distributed.diagnostics.plugin import SchedulerPlugin

    class InFlight(SchedulerPlugin):
        def __init__(self) -> None:
            self.processing, self.peak, self.peak_known = 0, 0, 0

        def transition(self, key, start, finish, *args, **kwargs):
            if finish == "processing":
                self.processing += 1
            elif start == "processing":
                self.processing -= 1
            self.peak = max(self.peak, self.processing)
            self.peak_known = max(self.peak_known, len(sched.tasks))

    with LocalCluster(n_workers=24, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      silence_logs=40) as cluster:
        sched = cluster.scheduler
        plugin = InFlight()
        sched.add_plugin(plugin, name="in-flight")
        summary = extract_json(capsys, str(data), "--out", str(tmp_path / "store"), "--dask-address",
                               cluster.scheduler_address, "--chunk-size", "1")
    audio = summary["modalities"]["audio"]
    print(f"chunks processing at once on the scheduler: up to {plugin.peak}; tasks known to it: up to "
          f"{plugin.peak_known}; the flow's own count: up to {audio['max_in_flight']}; workers used {summary['n_workers']}")
    assert summary["processed"] == 48 and audio["cluster_threads"] == 24
    assert plugin.peak > 16, plugin.peak  # the old runner never had more than 16 chunks on the cluster
    limit = 24 + 12  # one chunk per thread plus a backlog of half the threads
    assert audio["max_in_flight"] <= limit and plugin.peak_known <= limit  # bounded: memory does not grow with the work
    assert summary["n_workers"] > 16
    # 48 one-clip parts are more small parts than the store keeps: the commit merged them into one, rows intact
    assert (audio["merged_parts"], audio["parts"]) == (48, 1)
    stored = Store(str(tmp_path / "store")).read_features("audio", audio["feature_set"])
    assert len(stored) == 48 and stored["path"].is_unique


def test_one_recording_under_two_ids_is_found_from_the_hashes_without_reading_in_the_flow(
        corpus: Path, tmp_path: Path, capsys, open_counter):
    """Issue 16's duplicate detection with issue 15's change detection: a new clip that copies an unchanged one is
    hashed by its worker and rejected naming the other; while both are unchanged it is rejected again unread;
    once the other clip is gone it is processed."""
    for d in corpus.iterdir():  # actor 02 only: 30 WAV clips
        if d.is_dir() and d.name != "Actor_02":
            shutil.rmtree(d)
    out = str(tmp_path / "store")
    assert extract_json(capsys, str(corpus), "--out", out, "--workers", "1")["processed"] == 30
    src = corpus / "Actor_02" / "03-01-03-01-01-01-02.wav"
    copy = corpus / "Actor_02" / "copy.tmp"
    copy.write_bytes(src.read_bytes())
    target = corpus / "Actor_02" / "03-01-03-01-01-02-02.wav"  # a new id (the second repetition), the same recording
    copy.rename(target)
    assert main(["extract", str(corpus), "--out", out, "--workers", "1", "--modality", "audio", "--json"]) == 0
    printed, err = capsys.readouterr()
    s = json.loads(printed)
    assert "WARNING" not in err and "already found under another id" not in err  # the summary names it, once
    reason = f"same recording as Actor_02/{src.name} (identical content under another id)"
    assert (s["processed"], s["skipped"], s["rejected"]) == (0, 30, 1), s
    assert s["rejects"][0]["path"] == f"Actor_02/{target.name}" and s["rejects"][0]["reason"] == reason
    store = Store(out)
    key = next(Path(out, "features", "audio").iterdir()).name
    assert f"Actor_02/{target.name}" not in set(store.feature_keys("audio", key)["path"])  # its row was dropped
    with open_counter(corpus) as opened:
        again = extract_json(capsys, str(corpus), "--out", out, "--workers", "1")
    assert opened == [] and (again["processed"], again["rejected"]) == (0, 1) and again["rejects"][0]["reason"] == reason
    src.unlink()  # the other clip goes: the copy is the only one now
    last = extract_json(capsys, str(corpus), "--out", out, "--workers", "1")
    assert (last["processed"], last["removed"], last["rejected"]) == (1, 1, 0), last
    assert last["removed_clips"] == [f"Actor_02/{src.name}"]


def test_a_copy_added_under_a_name_that_sorts_first_is_the_one_rejected(corpus: Path, tmp_path: Path, capsys):
    """A copy of a stored clip added under another id that sorts before it: the copy is rejected, and the stored
    clip keeps its row and label (the first by path kept the recording: the stored clip was rejected and its rows
    dropped, the copy's other label took its place); the reruns keep it so, with --verify too."""
    for d in corpus.iterdir():  # actor 02 only: 30 WAV clips
        if d.is_dir() and d.name != "Actor_02":
            shutil.rmtree(d)
    out = str(tmp_path / "store")
    assert extract_json(capsys, str(corpus), "--out", out, "--workers", "1")["processed"] == 30
    src = corpus / "Actor_02" / "03-01-03-01-01-01-02.wav"  # happy
    target = corpus / "Actor_02" / "03-01-02-01-01-02-02.wav"  # calm, a new id that sorts before it
    target.write_bytes(src.read_bytes())
    reason = f"same recording as Actor_02/{src.name} (identical content under another id)"
    key = next(Path(out, "features", "audio").iterdir()).name
    for extra in ((), (), ("--verify",)):
        s = extract_json(capsys, str(corpus), "--out", out, "--workers", "1", *extra)
        assert (s["processed"], s["removed"], s["rejected"]) == (0, 0, 1), s
        assert s["rejects"][0]["path"] == f"Actor_02/{target.name}" and s["rejects"][0]["reason"] == reason
        paths = set(Store(out).feature_keys("audio", key)["path"])
        assert f"Actor_02/{src.name}" in paths and f"Actor_02/{target.name}" not in paths


def test_an_emptied_data_root_never_empties_the_store_in_a_run_the_command_line_did_not_check(tiny_corpus: Path,
                                                                                                tmp_path: Path):
    """A walkthrough: a served run (the flow called as a deployment calls it) on a data folder emptied by a move
    removed all 120 stored clips and ended Completed; only the command line refused an empty root."""
    from emotion.audio.seed import AudioFeatureParams
    from emotion.core.errors import UsageError
    from flows.extract import extract, extract_audio

    data, out = tmp_path / "data", str(tmp_path / "store")
    for f in sorted(tiny_corpus.rglob("*.wav"))[:6]:
        (data / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, data / f.parent.name / f.name)
    assert extract_audio(str(data), out).processed == 6
    shutil.rmtree(data)
    data.mkdir()
    (data / "notes.txt").write_text("the clips moved to another drive")
    with pytest.raises(UsageError, match=rf"^data root {str(data)!r} holds no \.wav, \.flac or \.mp4 clip \(in folders "
                                         r"or zip archives\): nothing to extract \(a store is never emptied"):
        extract_audio(str(data), out)
    assert len(Store(out).read_features("audio", AudioFeatureParams().key)) == 6
    # a root of the other modality's clips is not empty: a video extraction of FLAC files goes on, as before
    (data / "03-01-01-01-01-01-01.flac").write_bytes(b"")
    assert extract(str(data), out, "video")["video"].processed == 0
    assert len(Store(out).read_features("audio", AudioFeatureParams().key)) == 6


def test_the_runs_log_names_each_rejected_file_with_its_reason(tiny_corpus: Path, tmp_path: Path):
    """A walkthrough: a served run's terminal and its log in the UI said "rejected 2" and named neither file (the
    command line prints its own list; a served run has only its log)."""
    from prefect import get_client

    from flows.extract import extract_audio

    data = tmp_path / "data"
    for f in sorted(tiny_corpus.rglob("*.wav"))[:3]:
        (data / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, data / f.parent.name / f.name)
    bad = data / "Actor_01" / "03-01-05-01-02-02-01.wav"
    bad.parent.mkdir(exist_ok=True)
    bad.write_bytes(b"RIFF" + bytes(40))
    summary = extract_audio(str(data), str(tmp_path / "store"))
    assert summary.rejected == 1
    import asyncio

    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    async def logged() -> list[str]:
        async with get_client() as client:
            run = (await client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1))[0]
            logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
            return [x.message for x in logs]

    reason = summary.rejects[0]["reason"]
    import time

    for _ in range(40):  # log lines reach the server in batches
        lines = asyncio.run(logged())
        if any(line.startswith("audio: rejected") for line in lines):
            break
        time.sleep(0.5)
    assert f"audio: rejected Actor_01/03-01-05-01-02-02-01.wav: {reason}" in lines, lines


def test_a_data_root_that_does_not_exist_is_never_recorded_as_the_stores_root(tiny_corpus: Path, tmp_path: Path):
    """A walkthrough: extract from a mistyped s3:// root failed, but the store had recorded it, and the corrected
    command was refused as "another data root" (--replace-data)."""
    from emotion.core.errors import UsageError
    from flows.extract import extract_audio

    data, out = tmp_path / "data", str(tmp_path / "store")
    for f in sorted(tiny_corpus.rglob("*.wav"))[:3]:
        (data / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, data / f.parent.name / f.name)
    with pytest.raises(UsageError, match="does not exist"):
        extract_audio(str(tmp_path / "dta"), out)
    assert extract_audio(str(data), out).processed == 3  # the right root: not refused as another one


def test_clips_whose_storage_fails_during_a_full_rerun_keep_their_rows(tiny_corpus: Path, tmp_path: Path):
    """A walkthrough: with the data's S3 endpoint down during --full, the clips' failed reads became rejects and
    the commit dropped their stored rows: a storage outage emptied the store of them."""
    from emotion.audio.seed import AudioFeatureParams
    from flows.extract import extract_audio
    from tests.emotion.store.test_sources import _flaky_fs

    flaky = _flaky_fs(0)
    wavs = sorted(tiny_corpus.rglob("*.wav"))[:3]
    for f in wavs:
        flaky().pipe_file(f"/outage/{f.parent.name}/{f.name}", f.read_bytes())
    data, out = "flakyread:///outage", str(tmp_path / "store")
    assert extract_audio(data, out).processed == 3
    flaky.failures = 10**6  # every read fails from now on: the endpoint is down
    s = extract_audio(data, out, full=True)
    assert s.rejected == 3 and all("(after 3 attempts)" in r["reason"] for r in s.rejects), s.rejects
    assert len(Store(out).read_features("audio", AudioFeatureParams().key)) == 3  # nothing stored was lost
    s = extract_audio(data, out, verify=True)  # the inventory reads every clip itself: the same (a review)
    assert s.rejected == 3 and len(Store(out).read_features("audio", AudioFeatureParams().key)) == 3
    flaky.failures = 0  # back up: the next run reads them again, and each clip has one row
    s = extract_audio(data, out)
    assert (s.processed + s.skipped, s.rejected) == (3, 0)
    assert len(Store(out).read_features("audio", AudioFeatureParams().key)) == 3


def test_a_storage_found_down_stops_the_run_handing_out_chunks(tiny_corpus: Path, tmp_path: Path, monkeypatch):
    """A walkthrough: with the data's S3 endpoint down mid-run, every chunk in turn waited out its clips' retries
    (about 5 s a clip; hours over a full corpus). Once a chunk finds the storage down, no further chunk is handed
    out: the clips left are named as not read, their stored rows kept, and the next run reads them."""
    import types

    import emotion.store.sources as sources
    from emotion.audio.seed import AudioFeatureParams
    from flows.extract import extract_audio
    from tests.emotion.store.test_sources import _flaky_fs

    monkeypatch.setattr(sources, "time", types.SimpleNamespace(sleep=lambda s: None))  # retries without their waits
    flaky = _flaky_fs(0)
    wavs = sorted(tiny_corpus.rglob("*.wav"))[:21]
    for f in wavs:
        flaky().pipe_file(f"/down/{f.parent.name}/{f.name}", f.read_bytes())
    data, out = "flakyread:///down", str(tmp_path / "store")
    # 7 chunks of 3 clips on one worker thread (few clips: threads of this process, which knows flakyread://)
    assert extract_audio(data, out, chunk_size=3, workers=1).processed == 21
    flaky.failures = 10**6  # every read fails from now on: the endpoint is down
    s = extract_audio(data, out, full=True, chunk_size=3, workers=1)
    reads = 10**6 - flaky.failures
    assert reads <= 3 * 3 * 3, reads  # the chunks in flight (3 for one thread), 3 clips each, 3 tries a clip
    assert s.rejected == 21 and {r["stage"] for r in s.rejects} == {"unexpected"}
    unsent = [r for r in s.rejects if r["reason"].startswith("not read: the data root's storage failed on ")]
    assert len(unsent) >= 21 - 9, s.rejects
    assert len(Store(out).read_features("audio", AudioFeatureParams().key)) == 21  # nothing stored was lost
    # chunks of one clip each (a review: a chunk's own count never reached 3): the flow adds their failures up
    flaky.failures = 10**6
    s = extract_audio(data, out, full=True, chunk_size=1, workers=1)
    reads = 10**6 - flaky.failures
    assert reads <= (3 + 3) * 3, reads  # 3 chunks failed in a row, and those still in flight then
    assert s.rejected == 21 and s.removed == 0
    assert len(Store(out).read_features("audio", AudioFeatureParams().key)) == 21
    flaky.failures = 0  # back up: the next run reads them again
    s = extract_audio(data, out, chunk_size=3, workers=1)
    assert (s.processed + s.skipped, s.rejected) == (21, 0)
    assert len(Store(out).read_features("audio", AudioFeatureParams().key)) == 21
