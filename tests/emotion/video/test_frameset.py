"""Stored frames as a stream: selection by actor, newest part wins, clip aggregation."""

from __future__ import annotations

import os
import posixpath

import numpy as np
import pyarrow as pa
import pytest

from emotion.core.errors import StoreError
from emotion.core.ids import parse_id
from emotion.core.names import extract_command
from emotion.extract.chunk import frame_schema
from emotion.store.store import Store
from emotion.video.frames import FrameParams, encode_png
from emotion.video.frameset import FrameSet, aggregate_clips, frame_index, top_two
from tests.conftest import flip_value_bytes

PARAMS = FrameParams(size=16)


def _rows(stem: str, n: int, value: int, face: bool | None = None) -> list[dict]:
    rid = parse_id(f"{stem}.mp4")
    path = f"Actor_{rid.actor:02d}/{stem}.mp4"
    img = np.full((16, 16), value, np.uint8)
    return [{"path": path, "content_hash": f"h{value}", **rid.labels(), "frame_index": 20 * i, "time": 20 * i / 30,
             "face_found": face, "face_x": None, "face_y": None, "face_w": None, "face_h": None,
             "height": 16, "width": 16, "image": encode_png(img)} for i in range(n)]


def _write(store: Store, rows: list[dict]) -> None:
    folder = store.dataset_dir("frames", PARAMS.key)
    store.write_table(f"{folder}/{Store.new_part_name()}", pa.Table.from_pylist(rows, schema=frame_schema(PARAMS)))


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(str(tmp_path / "store"))
    _write(s, _rows("01-01-03-01-01-01-01", 3, 10) + _rows("01-01-04-01-01-01-02", 2, 20, face=False))
    _write(s, _rows("02-01-05-01-01-01-21", 4, 30) + _rows("02-01-06-01-01-01-01", 3, 40, face=True))
    _write(s, _rows("01-01-03-01-01-01-01", 2, 50))  # the clip changed: its newer rows replace the old ones
    return s


def test_index_keeps_the_newest_rows_of_each_clip(store: Store):
    idx = frame_index(store, PARAMS.key)
    assert len(idx) == 2 + 2 + 4 + 3
    assert set(idx.loc[idx["path"].str.contains("03-01-01-01-01"), "content_hash"]) == {"h50"}


def test_selection_by_actor_streams_only_those_clips(store: Store):
    fs = FrameSet.select(store, PARAMS.key, actors=[1])
    assert (fs.n_clips, fs.n_frames) == (2, 2 + 3)
    seen = {}
    for b in fs.batches(batch_rows=2):
        assert b.images.shape[1:] == (16, 16) and b.images.dtype == np.uint8
        for p, img, lab in zip(b.paths, b.images, b.labels, strict=True):
            seen.setdefault(p, set()).add((int(img[0, 0]), int(lab)))
    assert seen == {"Actor_01/01-01-03-01-01-01-01.mp4": {(50, 2)}, "Actor_01/02-01-06-01-01-01-01.mp4": {(40, 5)}}
    test = FrameSet.select(store, PARAMS.key, actors=[21])
    assert test.clips() == ["Actor_21/02-01-05-01-01-01-21.mp4"]


def test_faces_only_skips_frames_without_a_face(store: Store):
    fs = FrameSet.select(store, PARAMS.key, actors=[2], faces_only=True)
    assert fs.n_frames == 0 and sum(len(b) for b in fs.batches()) == 0
    assert FrameSet.select(store, PARAMS.key, actors=[2]).n_frames == 2


def test_shuffled_parts_give_the_same_frames(store: Store):
    fs = FrameSet.select(store, PARAMS.key)
    plain = sorted((p, int(i)) for b in fs.batches() for p, i in zip(b.paths, b.frame_index, strict=True))
    shuffled = sorted((p, int(i)) for b in fs.batches(rng=np.random.default_rng(1))
                      for p, i in zip(b.paths, b.frame_index, strict=True))
    assert plain == shuffled and len(plain) == fs.n_frames


def _frames(fs: FrameSet) -> list[tuple[str, int, int]]:
    return sorted((p, int(i), int(img[0, 0])) for b in fs.batches() for p, i, img in
                  zip(b.paths, b.frame_index, b.images, strict=True))


def _compact_everything(store: Store) -> None:
    """What an extract committing meanwhile may do: rewrite every part under a new name and delete the old one."""
    from emotion.extract.chunk import compact

    folder = store.dataset_dir("frames", PARAMS.key)
    compact(store, folder, {posixpath.basename(p): set() for p in store.list_parts(folder)})


def test_a_copied_selection_outlives_a_writer_rewriting_the_parts(store: Store, tmp_path):
    fs = FrameSet.select(store, PARAMS.key, actors=[1, 21])
    expected = _frames(fs)
    copy = fs.copy_to(str(tmp_path / "copy"))
    _compact_everything(store)
    with pytest.raises(FileNotFoundError):  # the store's parts are gone: a reader coming back to them fails
        _frames(fs)
    for _ in range(2):  # every epoch reads the same frames from the copy
        assert _frames(copy) == expected
    assert (copy.n_frames, copy.n_clips, copy.clips()) == (fs.n_frames, fs.n_clips, fs.clips())


def test_pinned_frames_select_again_when_a_part_vanishes_during_the_copy(store: Store, monkeypatch):
    from emotion.core.splits import ActorSplit
    from emotion.training.video import pinned_frames, split_frames

    split = ActorSplit.parse("train=1-2,test=21")
    plain = split_frames(store, PARAMS, split)
    expected = {k: _frames(getattr(plain, k)) for k in ("fit", "test")}
    real, calls = FrameSet.copy_to, []

    def racing(self, folder, batch_rows=256):
        calls.append(folder)
        if len(calls) == 1:
            _compact_everything(store)  # between the selection and the copy
        return real(self, folder, batch_rows)

    monkeypatch.setattr(FrameSet, "copy_to", racing)
    with pinned_frames(store, PARAMS, split) as data:
        folders = {os.path.dirname(f) for f in calls}
        assert len(folders) == 2  # the first copy failed and was removed; the second is in use
        assert {k: _frames(getattr(data, k)) for k in ("fit", "test")} == expected
        assert data.data_hash == plain.data_hash and data.val is None
        _compact_everything(store)  # and again while training
        assert {k: _frames(getattr(data, k)) for k in ("fit", "test")} == expected
    assert not any(os.path.exists(f) for f in folders)  # the copies are removed on exit


def _stream(fs: FrameSet, rng: np.random.Generator | None) -> list[tuple[str, int, int]]:
    return [(p, int(i), int(img[0, 0])) for b in fs.batches(batch_rows=2, rng=rng)
            for p, i, img in zip(b.paths, b.frame_index, b.images, strict=True)]


def test_a_copy_streams_its_frames_in_an_order_of_its_clips_whatever_the_store_layout(tmp_path):
    """The same frames in two stores, grouped into other parts written in another order (an extraction's chunks
    finish in any order, part names carry the time of writing, and small parts are merged in that order; reruns
    regroup clips): the copies stream them alike, sorted or shuffled by the same generator, so training on them is
    alike. Frames were streamed as stored, and two demos on the same data gave their FER models 0.933 and 0.883."""
    clips = [_rows(f"01-01-0{e}-01-01-01-0{a}", 3, 10 * e + a) for a, e in ((1, 3), (1, 4), (2, 5), (2, 6), (1, 7))]
    a, b = Store(str(tmp_path / "a")), Store(str(tmp_path / "b"))
    _write(a, clips[0] + clips[1] + clips[2])
    _write(a, clips[3] + clips[4])
    _write(b, clips[4] + clips[1])
    _write(b, [clips[3][0], clips[2][2], clips[3][1], clips[2][1], clips[3][2], clips[2][0]])  # interleaved, backwards
    _write(b, clips[0])
    copies = [FrameSet.select(s, PARAMS.key).copy_to(str(tmp_path / f"copy-{s.root}".replace("/", "_")))
              for s in (a, b)]
    sorted_a, sorted_b = (_stream(c, None) for c in copies)
    assert sorted_a == sorted_b == sorted(sorted_a) and len(sorted_a) == 15
    shuffled = [_stream(c, np.random.default_rng([0, 1])) for c in copies]
    assert shuffled[0] == shuffled[1] and sorted(shuffled[0]) == sorted_a and shuffled[0] != sorted_a
    for clip in {p for p, _, _ in sorted_a}:  # each clip's frames together, in frame order
        at = [k for k, (p, _, _) in enumerate(shuffled[0]) if p == clip]
        assert at == list(range(at[0], at[0] + 3)) and [shuffled[0][k][1] for k in at] == [0, 20, 40]
    assert _stream(copies[0], np.random.default_rng([0, 2])) != shuffled[0]  # another epoch, another order


def test_empty_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match=rf"emotion extract DATA --out {tmp_path} --modality video --frame-size 16`") \
            as err:
        frame_index(Store(str(tmp_path)), PARAMS.key)
    assert err.value.served_message() == (f"no frames for {PARAMS.key} under {tmp_path} (run the extract flow with "
                                          f"data=DATA, out={tmp_path}, modality=video, frames.size=16 first)")


def test_the_advice_for_missing_frames_writes_the_frame_set_asked_for():
    """The face crops every face model reads need --face-crop: `emotion extract --modality video` writes whole frames."""
    face = FrameParams(face_crop=True)
    assert extract_command("frames", face.key) == "emotion extract DATA --out OUT --modality video --face-crop"
    assert extract_command("frames", FrameParams(every=10, size=64).key, "/s") == \
        "emotion extract DATA --out /s --modality video --frame-size 64 --every 10"


def test_frames_whose_bytes_changed_are_a_damaged_part_with_the_command_that_rebuilds_it(store: Store, tmp_path):
    store.check_data_root("/corpus")
    part = store.list_parts(store.dataset_dir("frames", PARAMS.key))[1]
    flip_value_bytes(part, "image")
    fs = FrameSet.select(store, PARAMS.key, actors=[1, 2, 21])  # the index columns are intact
    expected = rf"damaged part {part}: .*CRC.* \(`emotion extract /corpus --out {store.url} --modality video " \
               r"--frame-size 16 --verify` drops it and recomputes its clips\)"
    with pytest.raises(StoreError, match=expected):
        _frames(fs)
    with pytest.raises(StoreError, match=expected) as err:
        fs.copy_to(str(tmp_path / "copy"))
    assert err.value.served_message().endswith(  # as a served run tells it: the extract flow's parameters
        f"(the extract flow with data=/corpus, out={store.url}, modality=video, frames.size=16, verify=true drops it "
        "and recomputes its clips)")


def test_a_damaged_private_copy_is_named_as_the_copy_not_as_a_store_part(store: Store, tmp_path):
    """Damage to a training run's private copy is the copy's: the store's rebuild command would name the copy's
    temporary folder as the store."""
    fs = FrameSet.select(store, PARAMS.key, actors=[1, 21])
    copy = fs.copy_to(str(tmp_path / "copy"))
    assert copy.copied_from == store.url and copy.copy_to(str(tmp_path / "again")).copied_from == store.url
    flip_value_bytes(copy.selection[0][0], "image")
    with pytest.raises(StoreError, match=rf"cannot read {tmp_path}/copy/000000-part-\S+, the private copy of frames "
                                         rf"from {store.url}: .*CRC.*store is not affected") as err:
        _frames(copy)
    assert "--out" not in str(err.value)
    assert _frames(fs)  # the store's own parts read as before


def test_a_copy_that_cannot_be_written_says_so_and_leaves_no_file(store: Store, tmp_path, monkeypatch):
    import errno

    import pyarrow.parquet as pq

    class Full(pq.ParquetWriter):
        def write_table(self, *a, **k):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "ParquetWriter", Full)
    fs = FrameSet.select(store, PARAMS.key, actors=[1, 21])
    with pytest.raises(StoreError, match=rf"cannot write {tmp_path}/copy/000000-part-\S+: .*No space left") as err:
        fs.copy_to(str(tmp_path / "copy"))
    assert "damaged" not in str(err.value) and os.listdir(tmp_path / "copy") == []


def test_clip_outcome_is_the_mean_of_its_frames():
    paths = np.array(["b", "a", "b", "a", "a"], dtype=object)
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.4, 0.6], [0.3, 0.7]])
    clips, mean = aggregate_clips(paths, proba)
    assert clips == ["a", "b"]
    np.testing.assert_allclose(mean, [[0.3, 0.7], [0.7, 0.3]])


def test_top_two_per_frame():
    p = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    i1, p1, i2, p2 = top_two(p)
    assert i1.tolist() == [1, 0] and i2.tolist() == [2, 2]
    np.testing.assert_allclose(p1, [0.6, 0.5])
    np.testing.assert_allclose(p2, [0.3, 0.3])


def test_a_recording_with_its_audio_video_and_video_only_clips_is_one_clip_of_the_split(tmp_path):
    """RAVDESS's 02 clip is its 01 clip without the sound: the frame models fit, validate and are tested on the 01
    clip's frames only, and the fused table has one row for the recording."""
    from emotion.audio.seed import AudioFeatureParams
    from emotion.core.splits import ActorSplit
    from emotion.training.fusion import fusion_table
    from emotion.training.video import split_frames

    store = Store(str(tmp_path / "store"))
    _write(store, _rows("01-01-03-01-01-01-01", 2, 10) + _rows("02-01-03-01-01-01-01", 2, 11)  # twins (train)
           + _rows("01-01-04-01-01-01-21", 3, 20) + _rows("02-01-04-01-01-01-21", 3, 21)  # twins (test)
           + _rows("02-01-05-01-01-01-21", 2, 30))  # a video-only clip alone: kept
    data = split_frames(store, PARAMS, ActorSplit.parse("train=1,test=21"))
    assert list(data.clips["path"]) == ["Actor_01/01-01-03-01-01-01-01.mp4", "Actor_21/01-01-04-01-01-01-21.mp4",
                                        "Actor_21/02-01-05-01-01-01-21.mp4"]
    assert (data.fit.n_clips, data.fit.n_frames, data.test.n_clips, data.test.n_frames) == (1, 2, 2, 5)
    table, _, _ = fusion_table(store, AudioFeatureParams(), PARAMS, (1, 21),
                               lambda images: np.zeros((len(images), 3), np.float32))
    assert list(table["path"]) == list(data.clips["path"])
