"""The extraction tasks: an outcome the summary reports is returned, not raised (Prefect would log it as a failure)."""

from __future__ import annotations

from emotion.video.frames import FrameParams
from tasks.extract import landmark_features


def test_no_landmark_features_is_an_outcome_not_a_failed_task(tmp_path):
    """No face-crop frame with a face (here: none stored): the task returns the reason for the summary."""
    faces = landmark_features.fn(str(tmp_path), FrameParams(face_crop=True))
    assert set(faces) == {"error"} and "face256-every20" in faces["error"]
    assert len(faces["error"].splitlines()) == 1
