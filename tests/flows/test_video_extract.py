"""Frame extraction end to end: mp4 clips -> frames in the Parquet store, over Dask."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from emotion.audio.seed import AudioFeatureParams
from emotion.store.store import Store
from emotion.video.frames import FrameParams, decode_png
from flows.cli import main

pytestmark = pytest.mark.slow


def test_extract_video_frames_with_face_crop(tiny_video_corpus: Path, tmp_path: Path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_video_corpus, data)
    (data / "Actor_02" / "01-01-05-01-01-01-02.mp4").write_bytes(b"")  # an empty clip
    (data / "Actor_02" / "01-01-05-01-02-01-02.mp4").write_bytes(np.random.default_rng(0).bytes(5000))  # not a video
    (data / "Actor_02" / "03-01-05-01-02-01-02.mp4").write_bytes(b"x")  # an mp4 named audio-only
    out = tmp_path / "store"
    argv = ["extract", str(data), "--out", str(out), "--modality", "video", "--face-crop", "--workers", "2", "--json"]
    assert main(argv) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["processed"], s["rejected"]) == (180 - 2, 3)
    reasons = {r["path"].split("/")[-1]: r["reason"] for r in s["rejects"]}
    assert reasons["01-01-05-01-01-01-02.mp4"] == "empty file (0 bytes)"
    assert reasons["01-01-05-01-02-01-02.mp4"].startswith("cannot open video")
    assert "modality 03" in reasons["03-01-05-01-02-01-02.mp4"]
    assert len(s["workers"]) == 2

    key = FrameParams(face_crop=True).key
    frames = Store(str(out)).read_dataset("frames", key)
    assert len(frames) == 178 * 3  # 42 frames per clip: indices 0, 20, 40
    assert sorted(frames["frame_index"].unique()) == [0, 20, 40]
    assert frames.groupby("path").size().eq(3).all()
    assert frames["face_found"].mean() >= 0.95
    img = decode_png(frames.loc[0, "image"])
    assert img.shape == (256, 256) and img.dtype == np.uint8
    assert set(frames["modality"]) == {1, 2} and set(frames["actor"]) == {1, 2, 21}

    # a rerun decodes nothing again
    assert main(argv) == 0
    s2 = json.loads(capsys.readouterr().out)
    assert (s2["processed"], s2["skipped"], s2["rejected"]) == (0, 178, 3)
    assert len(Store(str(out)).read_dataset("frames", key)) == 178 * 3


def _face_crops_extracted(tmp_path: Path, capsys) -> tuple[Path, list[str], dict]:
    """``emotion extract`` of the clips under ``tmp_path/data`` into face crops (one worker): the store, the
    command's arguments and the ``faces`` of its --json summary."""
    out = tmp_path / "store"
    argv = ["extract", str(tmp_path / "data"), "--out", str(out), "--modality", "video", "--face-crop", "--workers",
            "1"]
    assert main([*argv, "--json"]) == 0
    return out, argv, json.loads(capsys.readouterr().out)["modalities"]["video"]["faces"]


def test_clips_with_more_than_one_face_are_counted_stored_and_named(tmp_path: Path, capsys):
    from emotion.core.ids import parse_id
    from emotion.video.synth import VideoSynthParams, write_clip
    from tests.emotion.video.test_face import _two_faces, write_rgb_clip

    data = tmp_path / "data" / "Actor_01"
    data.mkdir(parents=True)
    two = "02-01-03-01-01-01-01.mp4"  # two people side by side in every frame (kept: 0, 20, 40)
    write_rgb_clip(data / two, [f for f in _two_faces(3) for _ in range(20)])
    one = "02-01-04-01-01-01-01.mp4"
    write_clip(data / one, parse_id(one), VideoSynthParams(modalities=(2,), duration=1.4, seed=5))
    out, argv, faces = _face_crops_extracted(tmp_path, capsys)
    assert faces["n_clips_with_several_faces"] == 1 and faces["clips_with_several_faces"] == [f"Actor_01/{two}"]
    assert faces["n_clips_faces_unknown"] == 0
    frames = Store(str(out)).read_dataset("frames", FrameParams(face_crop=True).key)
    per_clip = frames.groupby("path")["faces_detected"].apply(list).to_dict()
    assert per_clip == {f"Actor_01/{two}": [2, 2, 2], f"Actor_01/{one}": [1, 1, 1]}
    assert main(argv) == 0  # nothing to extract again: the summary still tells the store's clips
    text = capsys.readouterr().out
    assert ("faces: 1 clip(s) show more than one face in a kept frame; their crops follow one face at a time (check "
            "that it is the speaker's)\n") in text, text
    assert f"more than one face in Actor_01/{two}\n" in text and f"in Actor_01/{one}" not in text


def test_clips_whose_face_track_switched_person_are_stored_and_named(tmp_path: Path, capsys):
    from tests.emotion.video.test_face import _stepping_back, _two_faces, write_rgb_clip

    data = tmp_path / "data" / "Actor_01"
    data.mkdir(parents=True)
    left = "02-01-03-01-01-01-01.mp4"  # the person followed leaves after the second kept frame (kept: 0, 20, 40)
    write_rgb_clip(data / left, [f for f in _stepping_back(n=2, gone=True) for _ in range(20)])
    stay = "02-01-04-01-01-01-01.mp4"  # two people in every frame, one followed throughout
    write_rgb_clip(data / stay, [f for f in _two_faces(3) for _ in range(20)])
    out, argv, faces = _face_crops_extracted(tmp_path, capsys)
    assert faces["n_clips_track_switched"] == 1 and faces["clips_track_switched"] == [f"Actor_01/{left}"]
    assert faces["n_clips_track_unknown"] == 0 and faces["n_clips_with_several_faces"] == 2
    store = Store(str(out))
    key = FrameParams(face_crop=True).key
    frames = store.read_dataset("frames", key)
    per_clip = frames.sort_values("frame_index").groupby("path")["track_switched"].apply(list).to_dict()
    assert per_clip == {f"Actor_01/{left}": [False, False, True], f"Actor_01/{stay}": [False, False, False]}
    assert main(argv) == 0  # nothing to extract again: the summary still tells the store's clips
    text = capsys.readouterr().out
    assert ("faces: 1 clip(s) lose the face they follow in a kept frame and go on with another; check their crops, "
            "which may show someone other than the speaker from there on\n") in text, text
    assert f"track switched person in Actor_01/{left}\n" in text and f"switched person in Actor_01/{stay}" not in text

    for part in store.list_parts(store.dataset_dir("frames", key)):  # as stored before switches were recorded
        store.write_table(part, store.read_part(part).drop_columns(["track_switched"]))
    assert main([*argv, "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["modalities"]["video"]
    assert s["processed"] == 0 and s["skipped"] == 2  # the frame set is the same: nothing extracted again
    assert s["faces"]["n_clips_track_unknown"] == 2 and s["faces"]["clips_track_switched"] == []


def test_face_crops_of_clips_all_rejected_say_so_not_run_extract_first(tiny_video_corpus: Path, tmp_path: Path,
                                                                        capsys):
    data = tmp_path / "data"
    data.mkdir()
    clip = next(tiny_video_corpus.rglob("01-*.mp4"))
    shutil.copy(clip, data / f"{clip.stem}_copy.mp4")  # not a RAVDESS id: rejected
    argv = ["extract", str(data), "--out", str(tmp_path / "store"), "--modality", "video", "--face-crop"]
    assert main(argv) == 0
    text = "".join(capsys.readouterr())
    assert "faces: no frames stored: none of the clips could be used (1 rejected, listed below)" in text
    assert "first" not in text


def test_face_crops_of_audio_only_data_say_there_is_no_mp4_clip(tiny_corpus: Path, tmp_path: Path, capsys):
    """Not "none of the clips could be used (0 rejected, listed below)": there was no video clip to use."""
    data = tmp_path / "data"
    shutil.copytree(tiny_corpus / "Actor_01", data / "Actor_01")
    argv = ["extract", str(data), "--out", str(tmp_path / "store"), "--modality", "video", "--face-crop"]
    assert main(argv) == 0
    text = "".join(capsys.readouterr())
    assert f"faces: no mp4 clips under {data}\n" in text, text
    assert "could be used" not in text and "rejected, listed below" not in text


def test_extract_all_handles_audio_and_video_together(tiny_corpus: Path, tiny_video_corpus: Path, tmp_path: Path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_corpus / "Actor_01", data / "audio" / "Actor_01")
    shutil.copytree(tiny_video_corpus / "Actor_21", data / "video" / "Actor_21")
    assert main(["extract", str(data), "--out", str(tmp_path / "store"), "--workers", "1", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    # the audio step reads the 30 wavs and the speech of the 30 AV clips; the 30 video-only clips have no audio
    assert s["modalities"]["audio"]["processed"] == 60 and s["modalities"]["video"]["processed"] == 60
    assert s["processed"] == 120 and s["rejected"] == 0
    assert s["modalities"]["audio"]["no_audio"] == s["no_audio"] == 30
    assert {r["path"].split("/")[-1][:3] for r in s["no_audio_clips"]} == {"02-"}
    assert all(r["reason"] == "no audio: video-only clip (modality 02)" for r in s["no_audio_clips"])
    store = Store(str(tmp_path / "store"))
    assert set(store.read_no_audio()["path"]) == {r["path"] for r in s["no_audio_clips"]}
    audio = store.read_features("audio", AudioFeatureParams().key)
    assert sorted(audio.groupby("modality").size().items()) == [(1, 30), (3, 30)]
    assert not set(store.read_table(store.path("manifest", "audio.parquet"))["path"]) & {r["path"] for r in s["no_audio_clips"]}
