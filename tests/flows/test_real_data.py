"""The real RAVDESS files in ../shared through the whole extraction flow (skipped where absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emotion.audio.seed import AudioFeatureParams
from emotion.store.store import Store
from emotion.video.frames import FrameParams
from flows.cli import main
from tests.conftest import REAL, real_audio_files, real_video_files

pytestmark = [pytest.mark.slow, pytest.mark.real_data]


def test_real_audio_and_video_through_the_flow(tmp_path: Path, capsys):
    real_audio_files()  # skips with a message where ../shared/ravdess is absent
    real_video_files()
    data = tmp_path / "data"
    (data / "audio").mkdir(parents=True)
    for actor in ("Actor_01", "Actor_05"):  # links, never copies of the real files
        (data / "audio" / actor).symlink_to(REAL / "audio_speech" / actor, target_is_directory=True)
    (data / "video").symlink_to(REAL / "video_speech", target_is_directory=True)
    out = tmp_path / "store"
    assert main(["extract", str(data), "--out", str(out), "--face-crop", "--workers", "2", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    # audio: 120 FLAC and the speech of the 3 AV clips; the 2 video-only clips have no audio (not rejects)
    assert s["modalities"]["audio"]["processed"] == 123 and s["modalities"]["video"]["processed"] == 5
    assert s["rejected"] == 0 and s["no_audio"] == 2
    assert {r["path"] for r in s["no_audio_clips"]} == {"video/Actor_05/02-01-01-01-02-01-05.mp4",
                                                        "video/Actor_05/02-01-04-01-01-01-05.mp4"}
    store = Store(str(out))
    audio = store.read_features("audio", AudioFeatureParams().key)
    assert len(audio) == 123 and set(audio["actor"]) == {1, 5}
    assert audio["path"].str.endswith(".flac").sum() == 120 and set(audio[audio["path"].str.endswith(".mp4")]["modality"]) == {1}
    frames = store.read_dataset("frames", FrameParams(face_crop=True).key)
    assert frames["path"].nunique() == 5 and (frames["height"] == 256).all() and (frames["width"] == 256).all()
    assert frames["face_found"].mean() >= 0.95
    # one person in each real clip: nobody else to switch to, and every kept frame says so
    faces = s["modalities"]["video"]["faces"]
    assert faces["n_clips_track_switched"] == 0 and faces["n_clips_track_unknown"] == 0
    assert faces["n_clips_with_several_faces"] == 0
    assert frames["track_switched"].eq(False).all()
