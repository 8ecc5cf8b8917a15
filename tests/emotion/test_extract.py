import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emotion.audio.seed import AudioFeatureParams
from emotion.core.errors import RejectedInput
from emotion.extract.chunk import extract_audio_chunk
from emotion.extract.inventory import take_inventory
from emotion.extract.plan import plan_extraction
from emotion.store.sources import DataRoot
from emotion.store.store import Store
from tests.conftest import write_tone

PARAMS = AudioFeatureParams()


def _extract_all(data: Path, out: Path):
    inv = take_inventory(DataRoot(str(data)))
    store = Store(str(out))
    p = plan_extraction(inv, store.feature_keys("audio", PARAMS.key))
    res = extract_audio_chunk(p.todo, str(data), str(out), PARAMS) if p.todo else None
    return inv, p, res


def test_bad_files_are_rejected_and_the_rest_processed(corpus, tmp_path):
    (corpus / "Actor_01" / "03-01-05-01-01-01-01.flac").write_bytes(b"")  # zero bytes (replaces a good clip)
    (corpus / "Actor_02" / "03-01-05-01-01-01-02.wav").write_bytes(np.random.default_rng(1).bytes(3000))  # corrupt
    (corpus / "Actor_02" / "notravdess.wav").write_bytes(b"x")
    (corpus / "Actor_02" / "03-01-09-01-01-01-02.wav").write_bytes(b"x")
    dup = corpus / "Actor_03" / "03-01-03-01-01-01-03.flac"
    (corpus / "copy").mkdir()
    (corpus / "copy" / "03-01-03-01-01-01-03.flac").write_bytes(dup.read_bytes())
    inv, p, res = _extract_all(corpus, tmp_path / "out")
    rejects = {r["path"]: r["reason"] for r in inv.rejects + res.rejects}
    assert rejects["Actor_01/03-01-05-01-01-01-01.flac"] == "empty file (0 bytes)"
    assert rejects["Actor_02/03-01-05-01-01-01-02.wav"].startswith("cannot decode audio")
    assert "not a RAVDESS id" in rejects["Actor_02/notravdess.wav"]
    assert "emotion 09" in rejects["Actor_02/03-01-09-01-01-01-02.wav"]
    assert "duplicate id" in rejects["copy/03-01-03-01-01-01-03.flac"]
    assert len(rejects) == 5
    assert res.processed == 120 - 2  # every good clip of the corpus
    df = Store(str(tmp_path / "out")).read_features("audio", PARAMS.key)
    assert len(df) == 118 and df["path"].is_unique
    assert set(df.columns) >= {"path", "content_hash", "actor", "emotion", "gender", *PARAMS.feature_names()}
    assert not any(p.startswith("/") for p in df["path"])  # relative to the data root


def test_plan_processes_only_new_and_changed_and_drops_removed(corpus, tmp_path):
    out = tmp_path / "out"
    _extract_all(corpus, out)
    changed = corpus / "Actor_01" / "03-01-02-01-01-01-01.flac"
    write_tone(changed, seconds=1.2, amp=0.2)  # new content under the same name
    (corpus / "Actor_03" / "03-01-04-01-01-01-03.flac").unlink()
    (corpus / "Actor_21").rename(corpus / "Actor_21_moved")  # a move is a removal plus additions
    inv = take_inventory(DataRoot(str(corpus)))
    p = plan_extraction(inv, Store(str(out)).feature_keys("audio", PARAMS.key))
    assert sorted(r.path for r in p.todo if not r.path.startswith("Actor_21_moved")) == ["Actor_01/03-01-02-01-01-01-01.flac"]
    assert len(p.todo) == 1 + 30 and p.skipped == 119 - 31
    assert len(p.removed) == 1 + 30
    assert sum(len(v) for v in p.stale_parts.values()) == 1 + 1 + 30
    full = plan_extraction(inv, Store(str(out)).feature_keys("audio", PARAMS.key), full=True)
    assert len(full.todo) == 119 and full.skipped == 0 and full.drop_parts


def test_extracts_from_a_zip_archive_as_downloaded(tiny_corpus, tmp_path):
    import zipfile

    data = tmp_path / "data"
    data.mkdir()
    files = sorted(tiny_corpus.rglob("*.*"))[:10]
    with zipfile.ZipFile(data / "Audio_Speech_Actors_01-24.zip", "w") as zf:
        for f in files:
            zf.write(f, f.relative_to(tiny_corpus).as_posix())
    inv, _, res = _extract_all(data, tmp_path / "out")
    assert res.processed == 10 and not res.rejects and not inv.rejects
    df = Store(str(tmp_path / "out")).read_features("audio", PARAMS.key)
    assert df["path"].str.startswith("Audio_Speech_Actors_01-24.zip/Actor_").all()
    assert [p.name for p in data.iterdir()] == ["Audio_Speech_Actors_01-24.zip"]


def test_extended_set_is_stored_beside_seed(tiny_corpus, tmp_path):
    from emotion.audio.extended import ExtendedFeatureParams

    ext = ExtendedFeatureParams()
    out = tmp_path / "out"
    inv = take_inventory(DataRoot(str(tiny_corpus)))
    clips = [r for r, _, _ in inv.clips][:12]
    for params in (PARAMS, ext):
        res = extract_audio_chunk(clips, str(tiny_corpus), str(out), params)
        assert res.processed == 12 and not res.rejects
    store = Store(str(out))
    seed_df, ext_df = store.read_features("audio", PARAMS.key), store.read_features("audio", ext.key)
    assert ext.key != PARAMS.key and (out / "features" / "audio" / ext.key).is_dir()
    assert list(ext_df.columns[-len(ext.feature_names()):]) == ext.feature_names()
    assert "logmel07_p90" in ext_df and "logmel07_p90" not in seed_df and "mfcc01_max" in seed_df
    assert sorted(seed_df["path"]) == sorted(ext_df["path"])
    assert np.isfinite(ext_df[ext.feature_names()].to_numpy()).all()


def test_audio_step_takes_the_speech_of_av_clips_and_sets_video_only_clips_aside(tiny_video_corpus, tmp_path):
    """mp4 modality 01 -> a feature row like a WAV; modality 02 -> no audio (not a reject, never decoded)."""
    import shutil

    from emotion.extract.chunk import extract_chunk
    from emotion.extract.inventory import NO_AUDIO_VIDEO_ONLY, audio_step
    from tests.emotion.audio.test_decode import mux_mp4

    data = tmp_path / "data"
    shutil.copytree(tiny_video_corpus / "Actor_21", data / "Actor_21")
    (data / "Actor_21" / "01-01-02-01-01-01-21.mp4").write_bytes(  # an AV clip whose speech track is silent
        mux_mp4(np.zeros(48000, np.float32), 48000, video=True))
    (data / "Actor_21" / "01-01-02-01-02-01-21.mp4").write_bytes(  # an AV clip without an audio track
        mux_mp4(np.zeros(1), 48000, video=True, audio=False))
    (data / "Actor_21" / "01-01-03-01-01-01-21.mp4").write_bytes(b"not a video")
    step = audio_step(PARAMS)
    inv = take_inventory(DataRoot(str(data)), step.extensions, accept=step.accept, absent=step.absent)
    assert len(inv.clips) == 30 and not inv.rejects
    assert len(inv.no_audio) == 30 and {r["reason"] for r in inv.no_audio} == {NO_AUDIO_VIDEO_ONLY}
    assert all(r["path"].split("/")[-1].startswith("02-") for r in inv.no_audio)
    res = extract_chunk(step, [ref for ref, _, _ in inv.clips], str(data), str(tmp_path / "out"))
    assert res.processed == 27
    assert {r["path"].split("/")[-1]: r["reason"] for r in res.no_audio} == {
        "01-01-02-01-01-01-21.mp4": "no audio: the audio track is silent (digital silence: every sample is zero)",
        "01-01-02-01-02-01-21.mp4": "no audio: no audio track in the clip"}
    assert [r["path"].split("/")[-1] for r in res.rejects] == ["01-01-03-01-01-01-21.mp4"]
    df = Store(str(tmp_path / "out")).read_features("audio", PARAMS.key)
    assert len(df) == 27 and set(df["modality"]) == {1} and df["path"].str.endswith(".mp4").all()
    assert np.isfinite(df[PARAMS.feature_names()].to_numpy()).all()


def test_extended_set_reads_the_speech_track_of_av_clips(tiny_video_corpus, tmp_path):
    """Every feature set goes through the same audio step: mp4 speech tracks too, video-only clips set aside."""
    from emotion.audio.extended import ExtendedFeatureParams
    from emotion.extract.chunk import extract_chunk
    from emotion.extract.inventory import audio_step

    ext = ExtendedFeatureParams()
    step = audio_step(ext)
    inv = take_inventory(DataRoot(str(tiny_video_corpus)), step.extensions, accept=step.accept, absent=step.absent)
    av = [ref for ref, rid, _ in inv.clips if ref.path.endswith(".mp4")][:3]
    assert len(av) == 3 and inv.no_audio
    res = extract_chunk(step, av, str(tiny_video_corpus), str(tmp_path / "out"))
    assert res.processed == 3 and not res.rejects and not res.no_audio
    df = Store(str(tmp_path / "out")).read_features("audio", ext.key)
    assert set(df["modality"]) == {1} and np.isfinite(df[ext.feature_names()].to_numpy()).all()


def test_a_file_name_that_is_not_utf8_is_a_reject_and_the_others_go_on(corpus, tmp_path):
    src = next(corpus.rglob("*.wav"))
    bad = os.fsencode(str(corpus / "Actor_01")) + b"/03-01-02-02-02-02-01\xff.wav"
    with open(bad, "wb") as fh:
        fh.write(b"x" + src.read_bytes())
    inv = take_inventory(DataRoot(str(corpus)))
    reasons = {r["path"]: r["reason"] for r in inv.rejects}
    assert reasons == {"Actor_01/03-01-02-02-02-02-01\\xff.wav": "file name is not valid UTF-8"}
    res = extract_audio_chunk([r for r, _, _ in inv.clips][:5], str(corpus), str(tmp_path / "out"), PARAMS)
    assert res.processed == 5
    store = Store(str(tmp_path / "out"))
    store.write_rejects("audio", inv.rejects)  # the reject itself can be stored
    assert len(store.read_rejects("audio")) == 1


def test_one_recording_under_two_ids_is_rejected_naming_both(corpus):
    src = corpus / "Actor_01" / "03-01-03-01-01-01-01.flac"
    if not src.exists():
        src = next((corpus / "Actor_01").glob("03-01-03-01-01-01-01.*"))
    copy = corpus / "Actor_02" / f"03-01-03-01-01-01-02{src.suffix}.tmp"
    copy.write_bytes(src.read_bytes())
    target = corpus / "Actor_02" / f"03-01-07-02-02-02-02{src.suffix}"  # another actor, another emotion
    for old in (corpus / "Actor_02").glob("03-01-07-02-02-02-02.*"):
        old.unlink()
    copy.rename(target)
    inv = take_inventory(DataRoot(str(corpus)))
    rel = f"Actor_02/{target.name}"
    reasons = {r["path"]: r["reason"] for r in inv.rejects}
    assert reasons[rel] == f"same recording as Actor_01/{src.name} (identical content under another id)"
    assert rel not in {r.path for r, _, _ in inv.clips}


def test_a_row_arrow_cannot_store_is_a_reject_not_a_lost_chunk(corpus, tmp_path, monkeypatch):
    import emotion.extract.chunk as ex

    real = ex.audio_row
    inv = take_inventory(DataRoot(str(corpus)))
    refs = [r for r, _, _ in inv.clips if r.path.startswith("Actor_01/")][:8]

    def odd(root, ref, extractor, data=None, notes=None):
        row = real(root, ref, extractor, data, notes)
        if ref.path == refs[3].path:
            row["path"] = row["path"] + "\udcff"  # what a non-UTF-8 name decodes to
        return row

    monkeypatch.setattr(ex, "audio_row", odd)
    res = extract_audio_chunk(refs, str(corpus), str(tmp_path / "out"), PARAMS)
    assert res.processed == 7 and len(res.rejects) == 1 and "cannot store its row" in res.rejects[0]["reason"]


def test_a_huge_file_is_refused_from_its_size_before_it_is_read(corpus, monkeypatch):
    import emotion.store.sources as src

    monkeypatch.setattr(src, "MAX_AUDIO_FILE_BYTES", 1000)
    big = corpus / "Actor_01" / "03-01-02-02-02-02-01.wav"
    big.write_bytes(b"RIFF" + b"\0" * 5000)
    read = []
    monkeypatch.setattr(os, "read", lambda *a: read.append(a) or b"")
    with pytest.raises(RejectedInput, match="over the limit of 1000 bytes"):
        DataRoot(str(corpus)).read_bytes("Actor_01/03-01-02-02-02-02-01.wav")
    assert not read


# -- change detection from listing metadata ----------------------------------------------------------------------
def _one_actor(corpus: Path) -> Path:
    """The corpus cut to actor 02 (30 WAV clips): enough to see what is read, cheap to extract."""
    import shutil

    for d in corpus.iterdir():
        if d.is_dir() and d.name != "Actor_02":
            shutil.rmtree(d)
    return corpus


def _run_like_the_flow(data: Path, out: Path, known: bool = True):
    """Inventory (with the previous manifest unless ``known`` is False, as --verify), plan, one chunk, commit's manifest."""
    from emotion.extract.chunk import extract_chunk
    from emotion.extract.inventory import audio_step, load_known, manifest_frame

    step, store = audio_step(PARAMS), Store(str(out))
    inv = take_inventory(DataRoot(str(data)), step.extensions, known=load_known(store, "audio") if known else None,
                         params_key=step.key)
    p = plan_extraction(inv, store.feature_keys("audio", PARAMS.key))
    res = extract_chunk(step, p.todo, str(data), str(out)) if p.todo else None
    rejects = inv.rejects + (res.rejects if res else [])
    store.write_manifest("audio", manifest_frame(inv, res.hashes if res else {}, rejects, [], step.key))
    return inv, p, res


def test_unchanged_clips_are_not_read_and_changed_ones_are_hashed_by_the_worker(corpus, tmp_path, open_counter):
    import os

    out, corpus = tmp_path / "out", _one_actor(corpus)
    inv, p, res = _run_like_the_flow(corpus, out)
    assert inv.read == 0 and inv.unhashed == 30 and len(p.todo) == 30  # the first run: hashed by the worker
    assert res is not None and len(res.hashes) == 30 and res.processed == 30
    manifest = Store(str(out)).read_table(str(out / "manifest" / "audio.parquet"))
    assert manifest["meta"].str.match(r"^s\d+:m\d+$").all() and manifest["content_hash"].notna().all()
    with open_counter(corpus) as opened:
        inv, p, res = _run_like_the_flow(corpus, out)
    assert opened == [] and inv.read == 0 and inv.unhashed == 0 and p.todo == [] and p.skipped == 30

    touched = corpus / "Actor_02" / "03-01-02-01-01-01-02.wav"  # a new time, the same content
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    changed = corpus / "Actor_02" / "03-01-02-01-02-01-02.wav"
    data = bytearray(changed.read_bytes())
    data[-100] ^= 0xFF  # new content (not another clip's: that would be one recording under two ids)
    changed.write_bytes(bytes(data))
    with open_counter(corpus) as opened:
        inv, p, res = _run_like_the_flow(corpus, out)
    assert sorted(r.path for r in p.todo) == ["Actor_02/03-01-02-01-01-01-02.wav", "Actor_02/03-01-02-01-02-01-02.wav"]
    assert sorted(Path(o).name for o in opened) == sorted([changed.name, touched.name])  # only the two, each once
    assert res is not None and (res.processed, res.unchanged) == (1, 1)  # the touched clip is not recomputed


def test_verify_catches_a_change_that_keeps_size_and_time(corpus, tmp_path):
    import os

    out, corpus = tmp_path / "out", _one_actor(corpus)
    _run_like_the_flow(corpus, out)
    clip = sorted(corpus.rglob("*.*"))[0]
    st = clip.stat()
    data = bytearray(clip.read_bytes())
    data[-100] ^= 0xFF  # one sample changed
    clip.write_bytes(bytes(data))
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same time
    _, p, _ = _run_like_the_flow(corpus, out)
    assert p.todo == []  # metadata cannot see it
    inv, p, res = _run_like_the_flow(corpus, out, known=False)
    assert inv.read == 30 and [r.path for r in p.todo] == [clip.relative_to(corpus).as_posix()]
    assert res is not None and res.processed == 1


def test_rejects_found_by_reading_come_back_unread_while_unchanged(corpus, tmp_path, open_counter):
    out, corpus = tmp_path / "out", _one_actor(corpus)
    bad = corpus / "Actor_02" / "03-01-05-01-01-01-02.wav"
    bad.write_bytes(bad.read_bytes()[:300])  # truncated
    _, _, res = _run_like_the_flow(corpus, out)
    assert res is not None and [r["path"] for r in res.rejects] == ["Actor_02/03-01-05-01-01-01-02.wav"]
    reason = res.rejects[0]["reason"]
    with open_counter(corpus) as opened:
        inv, p, res = _run_like_the_flow(corpus, out)
    assert opened == [] and p.todo == [] and res is None
    assert inv.rejects == [{"path": "Actor_02/03-01-05-01-01-01-02.wav", "reason": reason, "stage": "decode"}]


def test_a_clip_failed_by_an_unexpected_error_is_read_again_by_the_next_run(corpus, tmp_path, monkeypatch):
    """An unexpected error is a fault of the code or the machine (it was once a face model shared by two threads),
    not of the file: the clip is rejected naming it, and the next run tries it again rather than repeat it."""
    import emotion.extract.chunk as ex

    out, corpus = tmp_path / "out", _one_actor(corpus)
    flaky = "Actor_02/03-01-05-01-01-01-02.wav"
    real = ex.audio_row

    def failing(root, ref, extractor, data=None, notes=None):
        if ref.path == flaky:
            raise RuntimeError("an interpreter in use by another thread")
        return real(root, ref, extractor, data, notes)

    monkeypatch.setattr(ex, "audio_row", failing)
    _, _, res = _run_like_the_flow(corpus, out)
    assert res is not None and res.rejects == [{"path": flaky, "stage": "unexpected",
                                                "reason": "unexpected RuntimeError: an interpreter in use by another thread"}]
    monkeypatch.setattr(ex, "audio_row", real)
    inv, p, res = _run_like_the_flow(corpus, out)
    assert inv.rejects == [] and [r.path for r in p.todo] == [flaky]
    assert res is not None and res.processed == 1 and res.rejects == []


def test_a_data_root_a_worker_cannot_open_is_an_error_naming_the_host_and_the_environment(corpus, tmp_path, monkeypatch):
    # the command lists the clips with its own credentials; a Dask worker without them used to fail with a bare
    # 'NoCredentialsError: Unable to locate credentials' and hundreds of lines of traceback
    import socket

    from emotion.core.errors import EmotionError
    from emotion.extract import chunk
    from emotion.extract.chunk import extract_chunk

    inv = take_inventory(DataRoot(str(corpus)))
    todo = plan_extraction(inv, Store(str(tmp_path / "out")).feature_keys("audio", PARAMS.key)).todo
    step = chunk.audio_step(PARAMS)

    def no_credentials(url):
        raise RuntimeError("Unable to locate credentials")

    chunk._cached_root.cache_clear()
    monkeypatch.setattr(chunk, "DataRoot", no_credentials)
    with pytest.raises(EmotionError) as err:
        extract_chunk(step, todo[:2], "s3://bucket/ravdess", str(tmp_path / "out"))
    msg = str(err.value)
    assert "'s3://bucket/ravdess'" in msg and socket.gethostname() in msg
    assert "RuntimeError: Unable to locate credentials" in msg and "AWS_ACCESS_KEY_ID" in msg and "every Dask worker" in msg
    monkeypatch.undo()
    chunk._cached_root.cache_clear()
    with pytest.raises(EmotionError, match=r"cannot be opened on .*: data root .* does not exist"):  # a folder not mounted
        extract_chunk(step, todo[:2], str(tmp_path / "not-mounted"), str(tmp_path / "out"))


def test_a_clip_recorded_below_the_features_rate_is_kept_with_a_note(corpus, tmp_path):
    """An 8 kHz (telephone) recording among full-band clips: its features lack everything above 4 kHz. It is
    processed like the others, and the result names it with its rate; the full-band clips are not named."""
    (narrow,) = (corpus / "Actor_01").glob("03-01-05-01-01-01-01.*")
    (wide,) = (corpus / "Actor_02").glob("03-01-05-01-01-01-02.*")
    for f in (narrow, wide):
        f.unlink()
    write_tone(narrow.with_suffix(".wav"), seconds=1.5, sr=8000)
    write_tone(wide.with_suffix(".wav"), seconds=1.5, sr=48000)
    inv, _, res = _extract_all(corpus, tmp_path / "out")
    assert res.processed == 120 and not res.rejects and not inv.rejects
    assert [(b["path"], b["sample_rate"]) for b in res.band_limited] == [("Actor_01/03-01-05-01-01-01-01.wav", 8000)]
    assert "below the 22050 Hz its features are computed at: nothing above 4000 Hz" in res.band_limited[0]["note"]


def test_compacting_a_damaged_part_drops_it_rather_than_copy_the_damage(tmp_path):
    """A part with stale rows is rewritten without them; one that is damaged is removed (its other clips are no
    longer stored, so the next extraction recomputes them), never copied into a part with fresh checksums."""
    import pyarrow as pa

    from emotion.extract.chunk import compact
    from tests.conftest import flip_value_bytes

    store = Store(str(tmp_path))
    folder = store.features_dir("audio", "k")
    good, bad = (f"{folder}/{Store.new_part_name()}" for _ in range(2))
    for path, prefix in ((good, "g"), (bad, "b")):
        store.write_table(path, pa.table({"path": [f"{prefix}{i:03d}" for i in range(200)], "content_hash": ["h"] * 200,
                                          "x": np.random.default_rng(1).random(200)}))
    flip_value_bytes(bad, "x")
    damaged: list[str] = []
    stale = {os.path.basename(good): {("g000", "h")}, os.path.basename(bad): {("b000", "h")}}
    assert compact(store, folder, stale, damaged) == 1
    assert damaged == [bad] and not os.path.exists(bad) and not os.path.exists(good)
    assert sorted(store.read_features("audio", "k")["path"]) == [f"g{i:03d}" for i in range(1, 200)]


def test_of_one_recording_the_clip_kept_before_keeps_it_else_the_first_by_path():
    from emotion.extract.inventory import duplicate_pairs

    clips = [("A/2.wav", "h"), ("A/1.wav", "h"), ("A/3.wav", "h"), ("B/1.wav", "g")]
    assert duplicate_pairs(clips, {}) == [("A/2.wav", "A/1.wav"), ("A/3.wav", "A/1.wav")]
    assert duplicate_pairs(clips, {"A/3.wav": "h"}) == [("A/1.wav", "A/3.wav"), ("A/2.wav", "A/3.wav")]
    # kept before with other content (it changed since): no claim on this one
    assert duplicate_pairs(clips, {"A/3.wav": "x"}) == [("A/2.wav", "A/1.wav"), ("A/3.wav", "A/1.wav")]


def test_a_copy_of_one_clip_leaves_the_id_it_bears_to_another_file_of_that_id(tmp_path):
    """A copy of clip A under B's id, beside B's own file of another extension: the copy is rejected as A's
    recording, and B's file keeps its id (the copy had taken B's id, then was rejected: id B had no clip)."""
    from tests.conftest import write_tone

    a = write_tone(tmp_path / "Actor_01" / "03-01-03-01-01-01-01.wav", amp=0.3)
    copy = tmp_path / "Actor_01" / "03-01-04-01-01-01-01.flac"
    copy.write_bytes(a.read_bytes())  # a .wav's bytes under a .flac name: the same content
    write_tone(tmp_path / "Actor_01" / "03-01-04-01-01-01-01.wav", amp=0.2)
    inv = take_inventory(DataRoot(str(tmp_path)))
    assert [r.path for r, _, _ in inv.clips] == ["Actor_01/03-01-03-01-01-01-01.wav", "Actor_01/03-01-04-01-01-01-01.wav"]
    assert [(r["path"], r["reason"]) for r in inv.rejects] == [
        ("Actor_01/03-01-04-01-01-01-01.flac",
         "same recording as Actor_01/03-01-03-01-01-01-01.wav (identical content under another id)")]


def test_of_two_files_of_one_id_the_one_kept_before_keeps_it(tmp_path):
    """X.wav stored, X.flac added beside it (it sorts first): the added file is rejected, the stored one stays."""
    from tests.conftest import write_tone

    wav = write_tone(tmp_path / "Actor_01" / "03-01-03-01-01-01-01.wav", amp=0.3)
    write_tone(tmp_path / "Actor_01" / "03-01-03-01-01-01-01.flac", amp=0.2)
    first = take_inventory(DataRoot(str(tmp_path)))
    assert [r.path for r, _, _ in first.clips] == ["Actor_01/03-01-03-01-01-01-01.flac"]  # no run before: by path
    again = take_inventory(DataRoot(str(tmp_path)), kept={"Actor_01/03-01-03-01-01-01-01.wav": "h"})
    assert [r.path for r, _, _ in again.clips] == [f"Actor_01/{wav.name}"]
    assert [r["reason"] for r in again.rejects] == [
        "duplicate id 03-01-03-01-01-01-01: already given by Actor_01/03-01-03-01-01-01-01.wav"]


def test_a_chunk_stops_reading_once_the_storage_failed_clips_in_a_row(corpus, tmp_path, monkeypatch):
    """A walkthrough: with the data's S3 endpoint down mid-run, every clip waited out its own retries (about 5 s a
    clip): hours over a corpus. After 3 clips in a row the storage failed, the chunk tries no other; each clip
    left is named, as a storage failure (its stored rows kept, read again next run)."""
    from emotion.core.errors import StorageReadError
    from emotion.extract.chunk import extract_chunk
    from emotion.extract.inventory import UNEXPECTED, ClipRef, audio_step

    corpus = _one_actor(corpus)
    clips = [ClipRef(str(p.relative_to(corpus))) for p in sorted(corpus.rglob("*.wav"))[:8]]
    tried: list[str] = []
    answers = iter([])

    def read(self, relpath):
        tried.append(relpath)
        if next(answers, False):
            return (corpus / relpath).read_bytes()
        raise StorageReadError("cannot read file: EndpointConnectionError: Could not connect (after 3 attempts)",
                               relpath)

    monkeypatch.setattr(DataRoot, "_read_retrying", read)
    res = extract_chunk(audio_step(PARAMS), clips, str(corpus), str(tmp_path / "out"))
    assert tried == [c.path for c in clips[:3]]
    assert [r["path"] for r in res.rejects] == [c.path for c in clips] and res.processed == 0
    assert {r["stage"] for r in res.rejects} == {UNEXPECTED}
    assert res.rejects[3]["reason"] == ("not read: the data root's storage failed on 3 clips in a row before it "
                                        "(cannot read file: EndpointConnectionError: Could not connect (after 3 "
                                        "attempts))")
    assert res.storage.down and res.storage.last.startswith("cannot read file: EndpointConnectionError")

    # failures that an answer breaks (a clip read between them): every clip is tried, and the chunk goes on
    tried.clear()
    answers = iter([False, False, True, False, False, True, False, False])
    res = extract_chunk(audio_step(PARAMS), clips, str(corpus), str(tmp_path / "out"))
    assert tried == [c.path for c in clips] and res.processed == 2 and len(res.rejects) == 6
    assert not res.storage.down and res.storage.in_a_row == 2


def test_verify_stops_reading_once_the_storage_failed_clips_in_a_row(corpus, monkeypatch):
    """--verify reads every clip in the flow, one after another: an endpoint down held it for hours the same way."""
    from emotion.core.errors import StorageReadError
    from emotion.extract.inventory import UNEXPECTED

    corpus = _one_actor(corpus)
    tried: list[str] = []

    def read(self, relpath):
        tried.append(relpath)
        raise StorageReadError("cannot read file: connection reset by peer (after 3 attempts)", relpath)

    monkeypatch.setattr(DataRoot, "_read_retrying", read)
    inv = take_inventory(DataRoot(str(corpus)), known=None)
    assert len(tried) == 3 and len(inv.rejects) == 30 and {r["stage"] for r in inv.rejects} == {UNEXPECTED}
    assert inv.rejects[-1]["reason"].startswith("not read: the data root's storage failed on 3 clips in a row before")
    # the clips not read are kept, not removed (the plan had counted every stored clip not read as removed)
    stored = pd.DataFrame({"path": [r["path"] for r in inv.rejects], "content_hash": "h", "_part": "part-0"})
    for full in (False, True):
        assert plan_extraction(inv, stored, full=full).removed == []
    gone = pd.DataFrame({"path": [inv.rejects[-1]["path"]], "content_hash": ["h"], "_part": ["p"]})
    corpus.joinpath(gone["path"][0]).unlink()  # a clip deleted is still removed
    assert plan_extraction(take_inventory(DataRoot(str(corpus)), known=None), gone).removed == list(gone["path"])
