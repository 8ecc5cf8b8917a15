"""The face front end (MediaPipe face detection and face mesh through LiteRT): detection, landmarks, alignment."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest

from emotion.core.errors import RejectedInput, UsageError
from emotion.core.ids import parse_id
from emotion.video.face import (
    EYE_X,
    EYE_Y,
    FULL_RANGE,
    LEFT_EYE,
    RIGHT_EYE,
    SHORT_RANGE,
    Detection,
    Face,
    FaceFrontEnd,
    FaceTrack,
    _anchors,
    align,
    alignment,
    front_end,
    non_max_suppression,
)
from emotion.video.frames import FrameParams, sample_frames
from emotion.video.synth import VideoSynthParams, draw_face
from tests.conftest import real_video_files


def _rgb_frames(path, every=20):
    with av.open(str(path)) as c:
        for i, fr in enumerate(c.decode(video=0)):
            if i % every == 0:
                yield fr.to_ndarray(format="rgb24")


def _eyes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return points[list(RIGHT_EYE)].mean(axis=0), points[list(LEFT_EYE)].mean(axis=0)


def _in_canvas(rgb: np.ndarray, top: int, left: int, shape=(720, 1280), fill: int | None = None) -> np.ndarray:
    """``rgb`` pasted at (top, left) into a larger frame of its background's colour (a wide shot: the face small)."""
    canvas = np.full((*shape, 3), int(rgb[0, 0, 0]) if fill is None else fill, np.uint8)
    canvas[top : top + rgb.shape[0], left : left + rgb.shape[1]] = rgb
    return canvas


def _centre_x(face: Face) -> float:
    x, _, w, _ = face.box()
    return x + w / 2


def _two_faces(n: int = 6) -> list[np.ndarray]:
    """Frames of two drawn faces side by side (640x240: actor 01 on the left, actor 08's larger face on the right),
    noise on one of them by turns, so that the detector is surer of the left face in some frames and of the right one
    in others."""
    p = VideoSynthParams(width=320, height=240)
    out = []
    for i in range(n):
        left = draw_face(parse_id("01-01-03-01-01-01-01.mp4"), i / 3, p, np.random.default_rng(i))
        right = draw_face(parse_id("01-01-03-01-01-01-08.mp4"), i / 3, p, np.random.default_rng(100 + i))
        noise = np.random.default_rng(7).normal(0, 40, (240, 320, 1))
        if i % 2:
            left = np.clip(left + noise, 0, 255).astype(np.uint8)
        else:
            right = np.clip(right + noise, 0, 255).astype(np.uint8)
        out.append(np.ascontiguousarray(np.hstack([left, right])))
    return out


def _det(x: float, y: float, w: float, h: float, score: float) -> Detection:
    return Detection(score, (x, y, w, h), np.zeros((6, 2), np.float32))


def test_a_drawn_face_is_found_with_468_landmarks_on_it():
    rid = parse_id("01-01-03-02-01-01-01.mp4")
    rgb = draw_face(rid, 0.0, VideoSynthParams(width=320, height=240), np.random.default_rng(0))
    face = front_end().find(rgb)
    assert face is not None and face.landmarks.shape == (468, 2)
    x, y, w, h = face.box()
    assert 60 < x + w / 2 < 260 and 40 < y + h / 2 < 220  # around the drawn face, inside the frame
    right, left = face.eyes
    assert right[0] < left[0]  # the subject's right eye is on the image's left


def test_an_empty_frame_has_no_face():
    assert front_end().find(np.full((240, 320, 3), 200, np.uint8)) is None


def test_gray_input_is_refused_with_a_clear_message():
    with pytest.raises(UsageError, match="RGB frames"):
        front_end().find(np.zeros((240, 320), np.uint8))


def test_anchors_follow_mediapipes_graphs_and_match_the_models_outputs():
    short, full = _anchors(SHORT_RANGE), _anchors(FULL_RANGE)
    # face_detection_short_range.pbtxt: strides 8, 16, 16, 16 with an interpolated scale: 16x16 cells x 2 anchors,
    # then the three stride-16 layers merged on 8x8 cells x 6
    assert short.shape == (896, 2)
    assert short[0] == pytest.approx([1 / 32, 1 / 32]) and short[1] == pytest.approx(short[0])
    assert short[2] == pytest.approx([3 / 32, 1 / 32]) and short[511] == pytest.approx([31 / 32, 31 / 32])
    assert short[512:518] == pytest.approx(np.tile([1 / 16, 1 / 16], (6, 1))) and short[-1] == pytest.approx([15 / 16] * 2)
    # face_detection_full_range.pbtxt: one stride-4 layer, no interpolated scale: 48x48 cells x 1 anchor, row by row
    assert full.shape == (2304, 2)
    assert full[1] - full[0] == pytest.approx([1 / 48, 0]) and full[48] == pytest.approx([0.5 / 48, 1.5 / 48])
    fe = front_end()
    for spec, anchors in ((SHORT_RANGE, short), (FULL_RANGE, full)):
        it, _ = fe._detector(spec)
        assert it.get_input_details()[0]["shape"].tolist() == [1, spec.size, spec.size, 3]
        assert sorted(d["shape"].tolist() for d in it.get_output_details()) == [[1, len(anchors), 1],
                                                                                [1, len(anchors), 16]]


def test_overlapping_boxes_keep_the_most_confident_of_each_group():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10], [2, 0, 10, 10], [52, 50, 10, 10]])
    scores = np.array([0.6, 0.9, 0.7, 0.8, 0.7])
    assert non_max_suppression(boxes, scores) == [1, 2]  # IoU 0.68 and 0.67 suppressed; equal scores: lower index
    assert non_max_suppression(boxes[:1], scores[:1]) == [0]


def test_a_face_too_small_for_short_range_is_found_by_the_full_range_fallback():
    fe = front_end()
    for actor in (1, 2, 3, 4):
        rgb = draw_face(parse_id(f"01-01-03-01-01-01-{actor:02d}.mp4"), 0.3, VideoSynthParams(width=320, height=240),
                        np.random.default_rng(actor))
        canvas = _in_canvas(rgb, 300, 500)  # a 1280x720 wide shot: the face about a tenth of its width
        assert fe.detect_all(canvas, SHORT_RANGE) == []  # short range shrinks the frame to 128 px: nothing
        face = fe.find(canvas)
        assert face is not None and face.landmarks.shape == (468, 2)
        x, y, w, h = face.box()
        assert 500 < x + w / 2 < 820 and 300 < y + h / 2 < 540 and w < 200  # on the drawn face


def test_the_full_range_detector_runs_only_when_short_range_gives_no_face(monkeypatch):
    fe = FaceFrontEnd()
    asked = []
    detect_all = fe.detect_all
    monkeypatch.setattr(fe, "detect_all", lambda rgb, spec=SHORT_RANGE: asked.append(spec) or detect_all(rgb, spec))
    rid = parse_id("01-01-03-02-01-01-01.mp4")
    assert fe.find(draw_face(rid, 0.0, VideoSynthParams(width=320, height=240), np.random.default_rng(0))) is not None
    assert asked == [SHORT_RANGE]  # the common case costs what it did
    assert fe.find(np.full((240, 320, 3), 200, np.uint8)) is None
    assert asked == [SHORT_RANGE, SHORT_RANGE, FULL_RANGE]


def test_a_track_takes_the_largest_face_first_then_the_one_overlapping_it():
    track = FaceTrack(front=object())  # type: ignore[arg-type] - ranking runs no model
    small_sure, big_unsure = _det(0, 0, 50, 50, 0.95), _det(200, 0, 80, 80, 0.6)
    assert track.rank([small_sure, big_unsure]) == [big_unsure, small_sure]  # first frame: the largest
    track.box = (10, 5, 50, 50)  # the face followed overlaps the small one
    assert track.rank([big_unsure, small_sure]) == [small_sure, big_unsure]
    track.box = (600, 400, 40, 40)  # it overlaps none of them: the largest
    assert track.rank([small_sure, big_unsure]) == [big_unsure, small_sure]
    assert track.rank([]) == []


def test_a_clip_with_two_faces_keeps_one_face_whichever_the_detector_is_surer_of():
    frames = _two_faces()
    fe = front_end()
    assert all(len(fe.detect_all(f)) == 2 for f in frames)  # both faces, each once (overlapping anchors suppressed)
    surest = ["left" if _centre_x(fe.find(f)) < 320 else "right" for f in frames]
    assert set(surest) == {"left", "right"}  # the premise: the most confident face changes within the clip
    track = FaceTrack()
    followed = [track.find(f) for f in frames]
    assert all(f is not None and _centre_x(f) > 320 for f in followed)  # the first frame's larger face, throughout
    assert track.counts == [2] * len(frames) and track.max_faces == 2
    assert track.switches == [False] * len(frames) and not track.switched  # one person followed: no switch


def _face(actor: int, t: float, width: int, height: int, seed: int) -> np.ndarray:
    return draw_face(parse_id(f"01-01-03-01-01-01-{actor:02d}.mp4"), t, VideoSynthParams(width=width, height=height),
                     np.random.default_rng(seed))


def _stepping_back(n: int = 4, gone: bool = False) -> list[np.ndarray]:
    """960x540 frames of two drawn people: actor 01 near the camera on the left in the first frame (the largest face),
    then stepped back, their face about 80 px wide (too small for short range) where it was; actor 08 on the right
    all along, its face about 165 px wide (short range finds it). ``gone``: a last frame without actor 01."""
    out = []
    for i in range(n + gone):
        canvas = np.full((540, 960, 3), 128, np.uint8)
        canvas[180:540, 480:960] = _face(8, i / 3, 480, 360, 100 + i)
        if i == 0:
            canvas[0:540, 0:480] = _face(1, 0.0, 480, 540, 0)
        elif i < n:
            canvas[180:360, 120:360] = _face(1, i / 3, 240, 180, i)
        out.append(canvas)
    return out


def test_a_followed_face_too_small_for_short_range_is_sought_in_full_range_before_another_face_is_taken():
    frames = _stepping_back()
    fe = front_end()
    # the premise: after the first frame, short range finds only the other person, full range finds both
    assert [len(fe.detect_all(f, SHORT_RANGE)) for f in frames] == [2, 1, 1, 1]
    assert all(len(fe.detect_all(f, FULL_RANGE)) == 2 for f in frames)
    assert all(_centre_x(fe.find(f)) > 480 for f in frames[1:])  # frame by frame, the other person is the face
    track = FaceTrack()
    followed = [track.find(f) for f in frames]
    assert all(f is not None and _centre_x(f) < 480 for f in followed), [f and f.box() for f in followed]
    assert followed[0].box()[2] > 200 and all(f.box()[2] < 120 for f in followed[1:])  # the same person, smaller
    assert track.counts == [2] * len(frames)  # both people, whichever range saw them


def test_a_track_runs_the_mesh_on_another_face_only_when_the_followed_one_is_not_found(monkeypatch):
    frames = _stepping_back()
    fe = FaceFrontEnd()
    meshed = []
    landmarks = fe.landmarks
    monkeypatch.setattr(fe, "landmarks", lambda rgb, det: meshed.append(det) or landmarks(rgb, det))
    track = FaceTrack(fe)
    assert all(f is not None and _centre_x(f) < 480 for f in (track.find(f) for f in frames))
    assert len(meshed) == len(frames)  # one mesh a frame: the face followed's, none on the other person's


def test_a_track_takes_another_face_when_neither_range_finds_the_followed_one():
    frames = _stepping_back(n=2, gone=True)  # the followed person leaves the picture in the last frame
    track = FaceTrack()
    followed = [track.find(f) for f in frames]
    assert [_centre_x(f) < 480 for f in followed] == [True, True, False]  # the clip still keeps a face
    assert track.counts[-1] == 1


class _Scripted:
    """A stand-in front end whose search gives, frame by frame, a face with the box of a script (None: no face)."""

    def __init__(self, boxes: list[tuple[float, float, float, float] | None]) -> None:
        self.boxes = iter(boxes)

    def search(self, rgb, rank=None, follows=None):
        box = next(self.boxes)
        return (None, 0) if box is None else (Face(_det(*box, 0.9), np.zeros((468, 2), np.float32), 0.9), 1)


def test_a_track_records_a_switch_only_when_the_face_it_takes_does_not_overlap_the_one_followed():
    a, a_moved, b, b_moved = (0, 0, 50, 50), (5, 5, 50, 50), (200, 0, 50, 50), (205, 3, 50, 50)
    script = [None, a, None, a_moved, b, b_moved, None]
    track = FaceTrack(front=_Scripted(script))  # type: ignore[arg-type]
    frame = np.zeros((8, 8, 3), np.uint8)
    faces = [track.find(frame) for _ in script]
    assert [f is not None for f in faces] == [b is not None for b in script]
    # no face yet, the clip's first face, no face (not a switch), the same face found again where it was, another
    # face elsewhere (the switch), then followed, then no face
    assert track.switches == [False, False, False, False, True, False, False] and track.switched
    unswitched = FaceTrack(front=_Scripted([a, None, a_moved]))  # type: ignore[arg-type]
    for _ in range(3):
        unswitched.find(frame)
    assert unswitched.switches == [False] * 3 and not unswitched.switched


def test_a_track_that_loses_the_person_it_follows_records_the_switch_to_another():
    first, stepped_back, gone = _stepping_back(n=2, gone=True)
    empty = np.full_like(first, 128)
    frames = [first, stepped_back, empty, stepped_back, gone, gone]
    track = FaceTrack()
    followed = [track.find(f) for f in frames]
    assert [None if f is None else _centre_x(f) < 480 for f in followed] == [True, True, None, True, False, False]
    # found again after a frame without a face: the same person, no switch; the person leaves: the other is taken
    # (a switch), then followed (no more switches)
    assert track.switches == [False, False, False, False, True, False] and track.switched


def test_a_track_following_the_face_short_range_finds_never_runs_full_range(monkeypatch):
    fe = FaceFrontEnd()
    asked = []
    detect_all = fe.detect_all
    monkeypatch.setattr(fe, "detect_all", lambda rgb, spec=SHORT_RANGE: asked.append(spec) or detect_all(rgb, spec))
    track = FaceTrack(fe)
    assert all(track.find(f) is not None for f in _two_faces(4))
    assert asked == [SHORT_RANGE] * 4  # the common case costs what it did: one detector a frame


def write_rgb_clip(path, frames: list[np.ndarray]) -> None:
    """An H.264 mp4 (no audio) of RGB ``frames`` at 30 fps, nearly lossless."""
    with av.open(str(path), mode="w") as out:
        vs = out.add_stream("libx264", rate=30)
        vs.height, vs.width = frames[0].shape[:2]
        vs.pix_fmt, vs.options = "yuv420p", {"preset": "ultrafast", "crf": "12"}
        for rgb in frames:
            for packet in vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)


def test_stored_face_crops_of_a_two_face_clip_stay_on_one_face(tmp_path):
    path = tmp_path / "01-01-03-01-01-01-01.mp4"
    write_rgb_clip(path, _two_faces())
    frames = list(sample_frames(path.read_bytes(), FrameParams(face_crop=True, every=1, size=64)))
    assert len(frames) == 6 and all(f.face_found for f in frames)
    assert [f.faces for f in frames] == [2] * 6  # each frame says how many faces it shows
    assert all(f.face_box[0] + f.face_box[2] / 2 > 320 for f in frames), [f.face_box for f in frames]
    assert [f.track_switched for f in frames] == [False] * 6


def test_stored_face_crops_say_in_which_frame_the_track_switched_person(tmp_path):
    path = tmp_path / "01-01-03-01-01-01-01.mp4"
    write_rgb_clip(path, _stepping_back(n=2, gone=True))  # the person followed leaves in the last frame
    frames = list(sample_frames(path.read_bytes(), FrameParams(face_crop=True, every=1, size=64)))
    assert [f.face_box[0] + f.face_box[2] / 2 < 480 for f in frames] == [True, True, False]
    assert [f.track_switched for f in frames] == [False, False, True]


def test_alignment_levels_the_eyes_at_the_fixed_places_whatever_the_tilt():
    # a synthetic landmark set: the eyes 100 px apart, tilted by 20 degrees
    pts = np.zeros((468, 2), np.float32)
    a = math.radians(20)
    centre = np.array([300.0, 200.0])
    pts[list(RIGHT_EYE)] = centre - 50 * np.array([math.cos(a), math.sin(a)])
    pts[list(LEFT_EYE)] = centre + 50 * np.array([math.cos(a), math.sin(a)])
    face = Face(detection=None, landmarks=pts, presence=1.0)  # type: ignore[arg-type]
    m = alignment(face, 64)
    out = pts @ m[:, :2].T + m[:, 2]
    right, left = _eyes(out)
    assert right == pytest.approx([EYE_X[0] * 64, EYE_Y * 64], abs=1e-3)
    assert left == pytest.approx([EYE_X[1] * 64, EYE_Y * 64], abs=1e-3)
    wide = alignment(face, 64, margin=0.25)  # a margin shrinks the face about the crop's centre
    r2, l2 = _eyes(pts @ wide[:, :2].T + wide[:, 2])
    assert (l2[0] - r2[0]) == pytest.approx((left[0] - right[0]) / 1.5, abs=1e-3)


def test_eyes_at_one_point_are_a_data_problem_not_a_usage_error():
    # degenerate landmarks (both eye centres at one pixel) come from the frame, not from the user's command: the clip
    # is rejected with its reason (RejectedInput), not exited as a usage error (code 2)
    face = Face(detection=None, landmarks=np.full((468, 2), 50.0, np.float32), presence=1.0)  # type: ignore[arg-type]
    with pytest.raises(RejectedInput, match="eyes coincide") as info:
        alignment(face, 64)
    assert not isinstance(info.value, UsageError) and "\n" not in str(info.value)


@pytest.mark.real_data
def test_real_faces_are_found_in_every_kept_frame_and_aligned():
    files = real_video_files()
    found = total = 0
    for f in files:
        for rgb in _rgb_frames(f):
            total += 1
            face = front_end().find(rgb)
            if face is None:
                continue
            found += 1
            crop, pts = align(rgb, face, 128)
            assert crop.shape == (128, 128, 3)
            right, left = _eyes(pts)
            # eyes level and where the crop puts them (within 1 % of the side)
            assert abs(right[1] - left[1]) < 1.3
            assert right == pytest.approx([EYE_X[0] * 128, EYE_Y * 128], abs=1.3)
            assert left == pytest.approx([EYE_X[1] * 128, EYE_Y * 128], abs=1.3)
            # the landmarks sit on a face: mouth below the nose below the eyes, chin lowest
            assert pts[1, 1] > right[1] and pts[14, 1] > pts[1, 1] and pts[152, 1] > pts[14, 1]
    assert total == 25 and found / total >= 0.98, f"faces in {found}/{total} kept frames"


@pytest.mark.real_data
def test_real_faces_shrunk_into_a_wide_shot_are_found_by_the_fallback():
    import cv2

    files = real_video_files()
    frames = [rgb for f in files for rgb in _rgb_frames(f)]
    short = found = 0
    for rgb in frames:  # the frame at a fifth of its size inside a 1280x720 frame: the face about 6 % of its width
        small = cv2.resize(rgb, (rgb.shape[1] // 5, rgb.shape[0] // 5), interpolation=cv2.INTER_AREA)
        top, left = (720 - small.shape[0]) // 2, (1280 - small.shape[1]) // 2
        canvas = _in_canvas(small, top, left, fill=128)
        short += bool(front_end().detect_all(canvas, SHORT_RANGE))
        face = front_end().find(canvas)
        if face is not None and left < _centre_x(face) < left + small.shape[1]:
            found += 1
    assert len(frames) == 25 and short == 0 and found == 25, f"short range {short}, with the fallback {found} of 25"


@pytest.mark.real_data
def test_two_real_people_in_view_one_is_followed_through_the_clip():
    files = {f.stem: f for f in real_video_files()}
    a = list(_rgb_frames(files["01-01-01-01-01-01-01"]))
    b = list(_rgb_frames(files["02-01-01-01-02-01-05"]))
    for first, second in ((a, b), (b, a)):  # each person on each side
        frames = [np.ascontiguousarray(np.hstack([x[:, 320:960], y[:, 320:960]]))
                  for x, y in zip(first, second, strict=False)]
        track = FaceTrack()
        followed = [track.find(f) for f in frames]
        assert all(f is not None for f in followed) and track.counts == [2] * len(frames)
        assert len({_centre_x(f) < 640 for f in followed}) == 1  # one person, on one side, throughout
        assert not track.switched


@pytest.mark.real_data
def test_a_real_person_stepping_back_out_of_short_range_stays_followed():
    import cv2

    files = {f.stem: f for f in real_video_files()}
    a = list(_rgb_frames(files["01-01-01-01-01-01-01"]))
    b = list(_rgb_frames(files["02-01-01-01-02-01-05"]))
    fe = front_end()
    for first, second in ((a, b), (b, a)):
        frames = []
        for i, (x, y) in enumerate(zip(first, second, strict=False)):
            canvas = np.zeros((720, 1280, 3), np.uint8)  # the other person at half size, bottom right, all along
            canvas[360:720, 960:1280] = cv2.resize(y[:, 320:960], (320, 360), interpolation=cv2.INTER_AREA)
            if i == 0:  # the followed person near the camera, then at a fifth of the size where they were
                canvas[:, 0:640] = x[:, 320:960]
            else:
                canvas[288:432, 256:384] = cv2.resize(x[:, 320:960], (128, 144), interpolation=cv2.INTER_AREA)
            frames.append(canvas)
        assert [len(fe.detect_all(f, SHORT_RANGE)) for f in frames] == [2] + [1] * (len(frames) - 1)  # the premise
        track = FaceTrack()
        followed = [track.find(f) for f in frames]
        assert all(f is not None and _centre_x(f) < 640 for f in followed), [f and f.box() for f in followed]
        assert track.counts == [2] * len(frames) and not track.switched


@pytest.mark.real_data
def test_a_real_person_leaving_the_picture_is_recorded_as_a_switch_to_the_other():
    files = {f.stem: f for f in real_video_files()}
    a = list(_rgb_frames(files["01-01-01-01-01-01-01"]))
    b = list(_rgb_frames(files["02-01-01-01-02-01-05"]))
    frames = [np.ascontiguousarray(np.hstack([x[:, 320:960], y[:, 320:960]])) for x, y in zip(a, b, strict=False)]
    track = FaceTrack()
    first = track.find(frames[0])
    assert first is not None
    side = slice(0, 640) if _centre_x(first) < 640 else slice(640, 1280)  # the person followed
    for f in frames[3:]:  # leaves the picture after the third kept frame
        f[:, side] = 0
    followed = [first, *(track.find(f) for f in frames[1:])]
    assert [f is not None and (_centre_x(f) < 640) == (side.start == 0) for f in followed] == [True] * 3 + [False] * 2
    assert track.switches == [False, False, False, True, False] and track.switched


@pytest.mark.real_data
def test_stored_face_crops_of_real_clips_keep_landmarks_with_level_eyes():
    params = FrameParams(face_crop=True, size=96)
    for f in real_video_files():
        frames = list(sample_frames(f.read_bytes(), params))
        assert all(fr.face_found for fr in frames)
        assert not any(fr.track_switched for fr in frames) and all(fr.track_switched is False for fr in frames)
        for fr in frames:
            assert fr.image.shape == (96, 96) and fr.landmarks is not None and fr.landmarks.shape == (468, 2)
            right, left = _eyes(fr.landmarks * 96)
            assert right == pytest.approx([EYE_X[0] * 96, EYE_Y * 96], abs=1.0)
            assert left == pytest.approx([EYE_X[1] * 96, EYE_Y * 96], abs=1.0)


def test_face_crops_of_the_earlier_front_end_are_not_read_as_current():
    # revision 1: short range only and the most confident face of each frame; 2: the full-range fallback and one
    # face followed per clip; 3: a track tries full range for the face it follows. The earlier crops keep their name
    # (and their runs their hash), the new ones get another
    old = FrameParams.from_dict({"every": 20, "size": 256, "face_crop": True, "margin": 0.0, "detect_width": 320,
                                 "revision": 1, "detector": "mesh"})
    assert old.landmarks and old.key == "face256-every20-a81a0eb018bb"
    assert FrameParams(face_crop=True).revision == 3 and FrameParams(face_crop=True).key != old.key


def test_haar_front_end_records_hash_as_the_first_release():
    old = {"every": 20, "size": 256, "face_crop": True, "margin": 0.25, "detect_width": 320, "revision": 1}
    p = FrameParams.from_dict(old)
    assert p.detector == "haar" and p.to_dict() == old and not p.landmarks
    assert FrameParams(face_crop=True).landmarks and FrameParams(face_crop=True).hash() != p.hash()
    with pytest.raises(UsageError, match="unknown face detector"):
        FrameParams(detector="dlib")


def test_threads_of_one_process_find_faces_at_once_as_one_thread_does():
    """Worker threads (a Dask worker's, the in-process cluster of a small run) each have their own front end: the
    LiteRT interpreters are not thread-safe, and shared they failed clips with "There is at least 1 reference to
    internal data in the interpreter"."""
    from concurrent.futures import ThreadPoolExecutor

    frames = [draw_face(parse_id(f"01-01-0{e}-01-01-01-0{a}.mp4"), t, VideoSynthParams(width=320, height=240),
                        np.random.default_rng(a))
              for a in (1, 2) for e in (3, 5) for t in (0.1, 0.5, 0.9)]
    alone = [front_end().find(f) for f in frames]
    assert all(f is not None for f in alone)

    def find_all(_: int) -> list[np.ndarray]:
        return [front_end().find(f).landmarks for f in frames for _ in range(4)]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(find_all, range(8)))
    expected = [f.landmarks for f in alone for _ in range(4)]
    for got in results:
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, atol=1e-4)
