"""The face front end (MediaPipe face detection and face mesh through LiteRT): detection, landmarks, alignment."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest

from emotion.core.errors import RejectedInput, UsageError
from emotion.core.ids import parse_id
from emotion.video.face import EYE_X, EYE_Y, LEFT_EYE, RIGHT_EYE, Face, align, alignment, front_end
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
def test_stored_face_crops_of_real_clips_keep_landmarks_with_level_eyes():
    params = FrameParams(face_crop=True, size=96)
    for f in real_video_files():
        frames = list(sample_frames(f.read_bytes(), params))
        assert all(fr.face_found for fr in frames)
        for fr in frames:
            assert fr.image.shape == (96, 96) and fr.landmarks is not None and fr.landmarks.shape == (468, 2)
            right, left = _eyes(fr.landmarks * 96)
            assert right == pytest.approx([EYE_X[0] * 96, EYE_Y * 96], abs=1.0)
            assert left == pytest.approx([EYE_X[1] * 96, EYE_Y * 96], abs=1.0)


def test_haar_front_end_records_hash_as_the_first_release():
    old = {"every": 20, "size": 256, "face_crop": True, "margin": 0.25, "detect_width": 320, "revision": 1}
    p = FrameParams.from_dict(old)
    assert p.detector == "haar" and p.to_dict() == old and not p.landmarks
    assert FrameParams(face_crop=True).landmarks and FrameParams(face_crop=True).hash() != p.hash()
    with pytest.raises(UsageError, match="unknown face detector"):
        FrameParams(detector="dlib")
