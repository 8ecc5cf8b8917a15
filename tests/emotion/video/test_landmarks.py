"""Landmark geometry: scale-free measures per frame, statistics per clip, the feature table."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pandas as pd
import pytest

from emotion.audio.seed import AudioFeatureParams
from emotion.core.errors import UsageError
from emotion.core.ids import parse_id
from emotion.featuresets import read_faceless_clips
from emotion.store.store import Store
from emotion.video.frames import LATEST_REVISION, FrameParams, sample_frames, set_revision
from emotion.video.landmarks import (
    MEASURES,
    MESH_REVISION,
    STATS,
    LandmarkParams,
    clip_features,
    decode_landmarks,
    encode_landmarks,
    faceless_clips,
    frame_measures,
    landmark_table,
    read_landmark_features,
    summarise,
    update_landmark_features,
)
from tests.conftest import flip_value_bytes, real_video_files


def _face(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.2, 0.8, (468, 2)).astype(np.float32)


def test_measures_do_not_change_with_the_face_size_or_place():
    pts = _face(np.random.default_rng(0))
    a = frame_measures(pts)
    b = frame_measures(pts * 3.0 + 7.0)
    assert a.shape == (len(MEASURES),)
    np.testing.assert_allclose(a, b, rtol=1e-4)  # float32 input


def test_opening_the_mouth_raises_mouth_open_only_by_the_lips():
    pts = _face(np.random.default_rng(1))
    wider = pts.copy()
    wider[14, 1] += 0.05  # the lower inner lip moves down
    i = MEASURES.index("mouth_open")
    assert frame_measures(wider)[i] > frame_measures(pts)[i]
    assert frame_measures(wider)[MEASURES.index("eye_open")] == pytest.approx(frame_measures(pts)[MEASURES.index("eye_open")])


def test_summary_statistics_and_slope():
    t = np.array([0.0, 1.0, 2.0, 3.0])
    v = np.stack([t * 2 + 1, np.ones(4)], axis=1)
    s = summarise(t, v).reshape(2, len(STATS))
    assert s[0, STATS.index("mean")] == pytest.approx(4.0)
    assert s[0, STATS.index("slope")] == pytest.approx(2.0)
    assert s[0, STATS.index("range")] == pytest.approx(6.0)
    assert s[1, STATS.index("std")] == 0 and s[1, STATS.index("slope")] == 0
    one = summarise(np.array([0.5]), v[:1])  # one frame: no spread, no slope, no NaN
    assert np.isfinite(one).all()
    with pytest.raises(UsageError):
        summarise(np.array([]), np.empty((0, 2)))


def test_landmarks_round_trip_through_the_frame_table_bytes():
    pts = _face(np.random.default_rng(2))
    back = decode_landmarks(encode_landmarks(pts))
    np.testing.assert_allclose(back, pts, atol=1e-3)
    with pytest.raises(UsageError):
        decode_landmarks(b"123")


def test_table_has_one_row_per_clip_with_a_face_and_counts_the_others():
    rng = np.random.default_rng(3)
    rows = []
    for clip, found in (("a.mp4", [True, True, False]), ("b.mp4", [False, False])):
        for i, f in enumerate(found):
            rows.append({"path": clip, "content_hash": "h", "actor": 1, "emotion": 3, "time": i * 0.5, "face_found": f,
                         "landmarks": encode_landmarks(_face(rng)) if f else None})
    tab = landmark_table(pd.DataFrame(rows), LandmarkParams())
    assert list(tab.features["path"]) == ["a.mp4"] and tab.no_face == ["b.mp4"]
    assert tab.faces == {"a.mp4": (2, 3), "b.mp4": (0, 2)} and tab.face_rate == pytest.approx(2 / 5)
    assert tab.features[["n_frames", "n_faces"]].values.tolist() == [[3, 2]]
    assert tab.features[LandmarkParams().feature_names()].notna().all().all()


def test_the_landmark_set_is_renamed_with_the_face_crops_it_is_measured_on():
    # a stored table is reused while its clips' keys are unchanged, whatever frames it was measured on: with face
    # crops of a new revision, the table measured on the earlier ones must not be read as theirs
    old = LandmarkParams.from_dict({"name": "landmarks", "every": 20, "size": 256, "revision": 1})
    assert old.key == "landmarks-4cfde0d0f0ac" and LandmarkParams().key != old.key
    # revision 2 (on the face crops of frame revision 2) keeps its key, and reads the frames it was measured on
    two = LandmarkParams.from_dict({"name": "landmarks", "every": 20, "size": 256, "revision": 2})
    assert two.key == "landmarks-8c79c72fe13a" and two.to_dict() == {"name": "landmarks", "every": 20, "size": 256,
                                                                      "revision": 2}
    assert two.frame_params().key == replace(FrameParams(face_crop=True), revision=2).key == "face256-every20-f2995e23dec8"
    assert old.frame_params().revision == 1
    # the current set names the frame revision it reads: frame revision 3 (a track tries full range for its face)
    assert LandmarkParams().key == "landmarks-0f22ced050a3"
    assert LandmarkParams().frame_params() == FrameParams(face_crop=True) and FrameParams(face_crop=True).stored_revision == 3


def test_a_new_frame_revision_gives_the_landmark_set_a_new_key_by_itself():
    # LandmarkParams' default frame revision is the current mesh crops': a frame revision that changes them (and
    # nothing in LandmarkParams) names a new landmark set, measured on the new crops
    mesh = FrameParams(face_crop=True, detector="mesh").stored_revision
    assert {f.name: f.default for f in fields(LandmarkParams)}["frame_revision"] == mesh == MESH_REVISION
    assert MESH_REVISION == set_revision("mesh", LATEST_REVISION)
    nxt = replace(LandmarkParams(), frame_revision=mesh + 1)  # as the default after a raise
    assert nxt.key != LandmarkParams().key and nxt.revision == LandmarkParams().revision
    assert nxt.frame_params() == replace(FrameParams(face_crop=True), revision=mesh + 1)
    assert LandmarkParams.from_dict(nxt.to_dict()) == nxt and LandmarkParams.from_dict(nxt.to_dict()).key == nxt.key


def test_a_frame_revision_of_other_kinds_leaves_the_landmark_set_alone(monkeypatch):
    # a revision that changes only whole frames (or Haar crops) keeps the mesh crops' revision, so the landmark set
    # measured on them keeps its key
    from emotion.video import frames

    monkeypatch.setitem(frames.REVISION_CHANGES, LATEST_REVISION + 1, frozenset({"full", "haar"}))
    assert set_revision("mesh", LATEST_REVISION + 1) == MESH_REVISION
    assert replace(FrameParams(face_crop=True), revision=LATEST_REVISION + 1) == FrameParams(face_crop=True)
    assert replace(FrameParams(), revision=LATEST_REVISION + 1).stored_revision == LATEST_REVISION + 1


def test_params_name_their_frames_and_hash_apart():
    p = LandmarkParams()
    assert p.key.startswith("landmarks-") and p.frame_params() == FrameParams(face_crop=True, detector="mesh")
    assert len(p.feature_names()) == len(MEASURES) * len(STATS)
    assert LandmarkParams(every=10).hash() != p.hash()
    assert LandmarkParams.from_dict(p.to_dict()) == p


TWO_CLIPS = ("02-01-03-01-01-01-01", "02-01-04-01-01-01-02")


def _face_frames_store(tmp_path, faceless: tuple[str, ...] = (), fp: FrameParams | None = None,
                       seed: int = 4, faces: dict[str, int] | None = None, absent: tuple[str, ...] = (),
                       switched: dict[str, list[bool]] | None = None,
                       stems: tuple[str, ...] = TWO_CLIPS) -> tuple[Store, LandmarkParams]:
    """A store holding face-crop frames (of ``fp``, by default the landmark set's), with landmarks, of clips ``stems``
    (and of ``faceless`` ones, without a face) in one part; ``faces``: the faces detected in each kept frame of a clip
    (by stem; 1 by default, 0 without a face), ``switched``: whether its track switched person in each of its three
    kept frames (never by default), ``absent``: columns of the frame table left out, as in parts stored before they
    existed (``faces_detected``, ``track_switched``)."""
    import pyarrow as pa

    from emotion.extract.chunk import frame_schema
    from emotion.video.frames import encode_png

    params, rng = LandmarkParams(), np.random.default_rng(seed)
    fp = fp or params.frame_params()
    store, rows = Store(str(tmp_path)), []
    for stem in (*stems, *faceless):
        rid, face = parse_id(f"{stem}.mp4"), stem not in faceless
        rows += [{"path": f"Actor_{rid.actor:02d}/{stem}.mp4", "content_hash": f"h{stem[-2:]}", **rid.labels(),
                  "frame_index": 20 * i, "time": 20 * i / 30, "face_found": face, "face_x": 0, "face_y": 0,
                  "face_w": 8, "face_h": 8, "height": 8, "width": 8, "image": encode_png(np.zeros((8, 8), np.uint8)),
                  "landmarks": encode_landmarks(_face(rng)) if face else None,
                  "faces_detected": (faces or {}).get(stem, int(face)),
                  "track_switched": (switched or {}).get(stem, [False] * 3)[i]} for i in range(3)]
    schema = frame_schema(fp)
    for col in absent:
        schema = schema.remove(schema.get_field_index(col))
        rows = [{k: v for k, v in r.items() if k != col} for r in rows]
    store.write_table(f"{store.dataset_dir('frames', fp.key)}/{Store.new_part_name()}",
                      pa.Table.from_pylist(rows, schema=schema))
    return store, params


def test_a_table_measured_on_frames_of_an_earlier_revision_is_not_read_for_the_current_frames(tmp_path):
    """Frames of revision 1 kept turned phone clips turned; the table measured on them (the earlier release's, under
    its key) has the same clips and contents as the current one, so only its key tells them apart."""
    earlier_frames = replace(FrameParams(face_crop=True), revision=1)
    store, _ = _face_frames_store(tmp_path, fp=earlier_frames, seed=5)
    assert LandmarkParams(revision=1).frame_params() == earlier_frames  # the earlier release's set, on its frames
    stale = update_landmark_features(store, LandmarkParams(revision=1)).features
    assert LandmarkParams(revision=1).key == "landmarks-4cfde0d0f0ac"  # as the earlier release named it
    store, params = _face_frames_store(tmp_path)  # the current frames of the same clips
    assert params.key == "landmarks-0f22ced050a3" and params.frame_params().revision == 3
    current = read_landmark_features(store, params)
    assert list(current["path"]) == list(stale["path"]) and list(current["content_hash"]) == list(stale["content_hash"])
    names = params.feature_names()
    assert not np.allclose(current[names].to_numpy(float), stale[names].to_numpy(float))
    measured = landmark_table(store.read_dataset("frames", params.frame_params().key), params).features
    pd.testing.assert_frame_equal(current.reset_index(drop=True)[names], measured[names], check_dtype=False)


def test_clips_with_more_than_one_face_in_a_kept_frame_are_told_from_the_frame_table(tmp_path):
    store, params = _face_frames_store(tmp_path, faceless=("02-01-05-01-01-01-21",),
                                       faces={"02-01-04-01-01-01-02": 3})
    table = update_landmark_features(store, params)
    assert table.most_faces == {"Actor_01/02-01-03-01-01-01-01.mp4": 1, "Actor_02/02-01-04-01-01-01-02.mp4": 3,
                                "Actor_21/02-01-05-01-01-01-21.mp4": 0}
    assert table.several_faces == ["Actor_02/02-01-04-01-01-01-02.mp4"] and table.faces_unknown == []
    recorded = store.read_json(f"{store.features_dir('video', params.key)}/params.json")
    assert recorded["clips_with_several_faces"] == ["Actor_02/02-01-04-01-01-01-02.mp4"]


def test_frames_stored_before_faces_were_counted_still_read_and_their_count_is_unknown(tmp_path):
    store, params = _face_frames_store(tmp_path, absent=("faces_detected", "track_switched"))
    assert "faces_detected" not in store.read_dataset("frames", params.frame_params().key).columns  # the premise
    table = update_landmark_features(store, params)
    assert len(table.features) == 2 and table.several_faces == [] and table.track_switched == []
    assert table.faces_unknown == ["Actor_01/02-01-03-01-01-01-01.mp4", "Actor_02/02-01-04-01-01-01-02.mp4"]
    assert table.track_unknown == table.faces_unknown
    assert len(read_landmark_features(store, params)) == 2


def test_clips_whose_track_switched_person_are_told_from_the_frame_table(tmp_path):
    store, params = _face_frames_store(tmp_path, faceless=("02-01-05-01-01-01-21",),
                                       switched={"02-01-04-01-01-01-02": [False, True, False]})
    table = update_landmark_features(store, params)
    assert table.switched == {"Actor_01/02-01-03-01-01-01-01.mp4": False, "Actor_02/02-01-04-01-01-01-02.mp4": True,
                              "Actor_21/02-01-05-01-01-01-21.mp4": False}
    assert table.track_switched == ["Actor_02/02-01-04-01-01-01-02.mp4"] and table.track_unknown == []


def test_frames_stored_before_switches_were_recorded_keep_their_set_and_read_as_unknown(tmp_path):
    """The switches are a new column, not new crops: the frame set keeps its key (no clip is extracted again), and a
    part of the earlier release (faces counted, switches not recorded) reads beside a new one."""
    one, two = TWO_CLIPS
    store, params = _face_frames_store(tmp_path, absent=("track_switched",), stems=(one,))
    _face_frames_store(tmp_path, stems=(two,), switched={two: [False, False, True]})
    frames = store.read_dataset("frames", params.frame_params().key)
    assert len(store.list_parts(store.dataset_dir("frames", params.frame_params().key))) == 2  # the premise
    assert frames.groupby("path")["track_switched"].apply(lambda s: s.isna().all()).to_dict() == {
        f"Actor_01/{one}.mp4": True, f"Actor_02/{two}.mp4": False}
    table = update_landmark_features(store, params)
    assert len(table.features) == 2 and table.faces_unknown == []
    assert table.track_unknown == [f"Actor_01/{one}.mp4"] and table.track_switched == [f"Actor_02/{two}.mp4"]
    assert table.switched == {f"Actor_01/{one}.mp4": None, f"Actor_02/{two}.mp4": True}


def test_a_damaged_landmark_table_is_measured_again_and_rewritten(tmp_path):
    store, params = _face_frames_store(tmp_path)
    measured = update_landmark_features(store, params).features
    folder = store.features_dir("video", params.key)
    [part] = store.list_parts(folder)
    flip_value_bytes(part, params.feature_names()[0])
    read = read_landmark_features(store, params)  # a reader never writes: it measures afresh, in memory
    pd.testing.assert_frame_equal(read.reset_index(drop=True), measured.reset_index(drop=True), check_dtype=False)
    assert store.list_parts(folder) == [part]
    update_landmark_features(store, params)  # the next extraction of the frames: the table's keys are intact
    [new] = store.list_parts(folder)
    assert new != part and len(store.read_features("video", params.key)) == 2


def test_the_clips_without_a_landmark_row_are_listed_with_their_labels(tmp_path):
    store, params = _face_frames_store(tmp_path, faceless=("02-01-05-01-01-01-21",))
    update_landmark_features(store, params)
    features = read_landmark_features(store, params)
    out = faceless_clips(store, params, features)
    assert out.to_dict("records") == [{"path": "Actor_21/02-01-05-01-01-01-21.mp4", "content_hash": "h21", "actor": 21,
                                       "emotion": 5}]
    assert read_faceless_clips(store, params, features).equals(out)
    assert read_faceless_clips(store, AudioFeatureParams(), features) is None  # an audio set: every clip has a row


@pytest.mark.real_data
def test_real_clips_give_landmark_features_without_missing_values():
    params = LandmarkParams()
    for f in real_video_files():
        frames = [fr for fr in sample_frames(f.read_bytes(), params.frame_params()) if fr.face_found]
        assert len(frames) == 5
        x = clip_features(np.array([fr.time for fr in frames]), np.stack([fr.landmarks for fr in frames]))
        assert x.shape == (len(params.feature_names()),) and np.isfinite(x).all()
        m = frame_measures(np.stack([fr.landmarks for fr in frames]))
        # plausible faces: the mouth is narrower than 1.5 eye distances, the chin below the mouth
        assert (m[:, MEASURES.index("mouth_width")] < 1.5).all()
        assert (m[:, MEASURES.index("jaw_drop")] > m[:, MEASURES.index("mouth_height")]).all()


def test_the_record_follows_frames_rewritten_with_counts_while_the_table_stays(tmp_path):
    """`extract --full` over frames stored before faces were counted or switches recorded rewrites them with both,
    for the same clips and contents: the table's part stays, and its record (params.json) names the clips with
    several faces and whose track switched (it kept the empty lists of the frames before)."""
    import shutil

    store, params = _face_frames_store(tmp_path, absent=("faces_detected", "track_switched"))
    update_landmark_features(store, params)
    folder = store.features_dir("video", params.key)
    part = store.list_parts(folder)
    assert store.read_json(f"{folder}/params.json")["clips_with_several_faces"] == []  # the premise
    shutil.rmtree(tmp_path / store.dataset_dir("frames", params.frame_params().key))
    store, _ = _face_frames_store(tmp_path, faces={"02-01-04-01-01-01-02": 2},
                                  switched={"02-01-04-01-01-01-02": [False, False, True]})
    table = update_landmark_features(store, params)
    assert store.list_parts(folder) == part  # the same rows: not rewritten
    recorded = store.read_json(f"{folder}/params.json")
    assert recorded["clips_with_several_faces"] == ["Actor_02/02-01-04-01-01-01-02.mp4"] == table.several_faces
    assert recorded["clips_track_switched"] == ["Actor_02/02-01-04-01-01-01-02.mp4"] == table.track_switched
