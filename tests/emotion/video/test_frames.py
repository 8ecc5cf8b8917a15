import re
from dataclasses import replace

import av
import numpy as np
import pytest

from emotion.core.errors import DecodeError, RejectedInput, UsageError
from emotion.core.ids import parse_id
from emotion.video.frames import (
    FrameParams,
    decode_png,
    detect_face,
    encode_png,
    sample_frames,
    set_revision,
    square_crop_box,
)
from emotion.video.synth import VideoSynthParams, draw_face, write_clip
from tests.conftest import real_video_files, write_turned_clip

CLIP = "01-01-03-02-01-01-02.mp4"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / CLIP
    write_clip(path, parse_id(CLIP), VideoSynthParams(duration=1.4, fps=30))  # 42 frames
    return path.read_bytes()


def test_every_nth_frame_is_kept_with_its_time(clip):
    frames = list(sample_frames(clip, FrameParams(every=20)))
    assert [f.index for f in frames] == [0, 20, 40]
    assert [f.time for f in frames] == pytest.approx([0.0, 20 / 30, 40 / 30], abs=1e-3)
    assert all(f.image.shape == (256, 256) and f.image.dtype == np.uint8 for f in frames)
    assert all(f.face_found is None for f in frames)
    assert [f.index for f in sample_frames(clip, FrameParams(every=7, size=64))] == [0, 7, 14, 21, 28, 35]


def test_only_kept_frames_are_colour_converted(clip, monkeypatch):
    calls = []
    original = av.VideoFrame.to_ndarray

    def counting(self, *a, **k):
        calls.append(self.pts)
        return original(self, *a, **k)

    monkeypatch.setattr(av.VideoFrame, "to_ndarray", counting)
    kept = list(sample_frames(clip, FrameParams(every=20)))
    assert len(calls) == len(kept) == 3  # 42 frames decoded, 3 converted


def test_face_crop_finds_the_drawn_face(clip):
    frames = list(sample_frames(clip, FrameParams(face_crop=True)))
    assert all(f.face_found for f in frames)
    x, y, w, h = frames[0].face_box
    assert 0 <= x < 320 and 0 <= y < 240 and 40 < w < 240 and 40 < h < 240


@pytest.mark.parametrize("box, margin, size, expected", [
    ((100, 50, 40, 40), 0.25, (320, 240), (90, 40, 150, 100)),  # centred, grown by a quarter on each side
    ((0, 0, 40, 40), 0.25, (320, 240), (0, 0, 60, 60)),  # clamped at the top-left corner
    ((300, 220, 20, 20), 0.5, (320, 240), (280, 200, 320, 240)),  # clamped at the bottom-right corner
    ((10, 10, 300, 300), 0.25, (320, 240), (40, 0, 280, 240)),  # larger than the frame: the largest square, centred
    ((100, 50, 60, 30), 0.0, (320, 240), (100, 35, 160, 95)),  # a wide box gives a square on its long side
])
def test_square_crop_geometry(box, margin, size, expected):
    x0, y0, x1, y1 = square_crop_box(box, margin, *size)
    assert (x0, y0, x1, y1) == expected
    assert x1 - x0 == y1 - y0 and x0 >= 0 and y0 >= 0 and x1 <= size[0] and y1 <= size[1]


def test_no_face_is_recorded_not_dropped():
    blank = np.full((240, 320), 200, np.uint8)
    assert detect_face(blank, 320) is None


def test_png_roundtrip_is_lossless():
    img = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    assert (decode_png(encode_png(img)) == img).all()


def test_bad_videos_are_rejected_with_a_reason(clip, tmp_path):
    with pytest.raises(DecodeError, match="empty file"):
        list(sample_frames(b"", FrameParams()))
    with pytest.raises(DecodeError, match="cannot open video"):
        list(sample_frames(np.random.default_rng(0).bytes(20000), FrameParams()))
    audio_only = tmp_path / "a.mp4"
    with av.open(str(audio_only), "w") as out:
        s = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        frame.sample_rate = 48000
        for p in s.encode(frame):
            out.mux(p)
        for p in s.encode():
            out.mux(p)
    with pytest.raises(DecodeError, match="no video stream"):
        list(sample_frames(audio_only.read_bytes(), FrameParams()))
    with pytest.raises(DecodeError):
        list(sample_frames(clip[:600], FrameParams()))  # cut inside the header


def test_frame_params_are_validated_and_hashed():
    with pytest.raises(UsageError):
        FrameParams(every=0)
    assert FrameParams().hash() != FrameParams(face_crop=True).hash()
    assert FrameParams().key.startswith("full256-every20-") and FrameParams(face_crop=True).key.startswith("face256")


def test_a_frame_revision_renames_only_the_sets_of_the_kind_it_changed():
    # revision 2: frames are turned upright by the clip's display matrix; the sets of revision 1 (full256-every20-
    # 1df793fae8bb, face256-every20-a81a0eb018bb, Haar's face256-every20-b6d1fda3f2a5) are extracted again.
    # Revision 3 changed the mesh face crops only (a clip's face track tries full range for the face it follows before
    # it takes another face): their set of revision 2 (face256-every20-f2995e23dec8) is extracted again; whole frames
    # and Haar crops keep their revision-2 sets
    assert FrameParams().key == "full256-every20-df9365d83cbd" and FrameParams().stored_revision == 2
    assert FrameParams(face_crop=True).key == "face256-every20-5ac8334792cb" and FrameParams(face_crop=True).stored_revision == 3
    # the code's revision goes with the parameters: whole frames turned into face crops are the current crops
    assert replace(FrameParams(), face_crop=True) == FrameParams(face_crop=True)
    assert FrameParams(face_crop=True, detector="haar", margin=0.25).key == "face256-every20-3ace68c53eda"
    assert replace(FrameParams(face_crop=True), revision=2).key == "face256-every20-f2995e23dec8"
    assert replace(FrameParams(), revision=3) == replace(FrameParams(), revision=2)  # no change to whole frames in 3
    first_release = {"every": 20, "size": 256, "face_crop": True, "margin": 0.25, "detect_width": 320, "revision": 1}
    assert FrameParams.from_dict(first_release).key == "face256-every20-b6d1fda3f2a5"  # its records still read
    for p in (FrameParams(), FrameParams(face_crop=True), FrameParams(face_crop=True, detector="haar")):
        assert FrameParams.from_dict(p.to_dict()) == p  # a record reads back as the set it names
    # a revision this code does not know (a newer release's record) changes every kind
    assert set_revision("full", 7) == 7 and set_revision("haar", 3) == 2 and set_revision("mesh", 3) == 3


# Quadrants of a frame, upright: dark, light / mid, darker. Any turn or mirroring puts other values in the corners.
QUADRANTS = (30, 220, 130, 80)


def _quadrants(height: int = 96, width: int = 160) -> np.ndarray:
    gray = np.empty((height, width), np.uint8)
    h, w = height // 2, width // 2
    gray[:h, :w], gray[:h, w:], gray[h:, :w], gray[h:, w:] = QUADRANTS
    return np.repeat(gray[:, :, None], 3, axis=2)


def _quadrant_means(image: np.ndarray) -> list[int]:
    h, w = image.shape[0] // 2, image.shape[1] // 2
    return [round(float(q.mean())) for q in (image[:h, :w], image[:h, w:], image[h:, :w], image[h:, w:])]


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_frames_of_a_turned_phone_video_are_stored_upright(tmp_path, rotate):
    """A clip stored turned, with a display matrix that turns it back (as phones write them), gives upright frames:
    gray whole frames, and the whole frame the face front end keeps when it finds no face."""
    data = write_turned_clip(tmp_path / CLIP, [_quadrants()] * 3, rotate).read_bytes()
    for params in (FrameParams(every=1, size=64), FrameParams(every=1, size=64, face_crop=True),
                   FrameParams(every=1, size=64, face_crop=True, detector="haar")):
        frames = list(sample_frames(data, params))
        assert [f.index for f in frames] == [0, 1, 2]
        for f in frames:
            assert f.face_found in (None, False) and f.image.shape == (64, 64)
            assert _quadrant_means(f.image) == pytest.approx(QUADRANTS, abs=4), (params, rotate)


@pytest.fixture(scope="module")
def upright_face_frames():
    rid = parse_id(CLIP)
    params, rng = VideoSynthParams(width=320, height=240), np.random.default_rng(0)
    return [draw_face(rid, i / 30, params, rng) for i in range(3)]


@pytest.mark.parametrize("rotate", [90, 180, 270])
def test_a_face_in_a_turned_video_is_found_and_measured_as_upright(tmp_path, upright_face_frames, rotate):
    """The same crops, boxes and landmarks as from the clip stored upright (both lossless, so the same pixels).
    Left turned, the front end finds no drawn face upside down, and on its side one measured off, boxed in the
    turned frame."""
    params = FrameParams(every=1, size=96, face_crop=True)
    upright = list(sample_frames(write_turned_clip(tmp_path / "0.mp4", upright_face_frames, 0).read_bytes(), params))
    turned = list(sample_frames(write_turned_clip(tmp_path / f"{rotate}.mp4", upright_face_frames, rotate).read_bytes(),
                                params))
    assert all(f.face_found for f in upright) and all(f.face_found for f in turned)
    for a, b in zip(upright, turned, strict=True):
        assert b.face_box == a.face_box  # in the upright frame
        assert (b.image == a.image).all()
        assert np.array_equal(b.landmarks, a.landmarks)


@pytest.mark.real_data
def test_real_clips_turned_as_phones_store_them_give_the_upright_landmark_measures(tmp_path):
    """Each real clip's kept frames, stored turned each way (lossless) with the display matrix that turns them
    back, give the face measures of the clip itself (left turned: upside down mouth_height 1.11 read as 0.92)."""
    from emotion.video.frames import upright
    from emotion.video.landmarks import MEASURES, frame_measures

    params = FrameParams(size=96, face_crop=True)
    for f in real_video_files():
        data = f.read_bytes()
        measures = frame_measures(np.stack([fr.landmarks for fr in sample_frames(data, params)]))
        with av.open(f) as c:
            kept = [upright(fr, "rgb24") for i, fr in enumerate(c.decode(video=0)) if i % params.every == 0]
        for rotate in (90, 180, 270):
            clip = write_turned_clip(tmp_path / f"{rotate}-{f.name}", kept, rotate).read_bytes()
            frames = list(sample_frames(clip, replace(params, every=1)))
            assert all(fr.face_found for fr in frames), (f.name, rotate)
            turned = frame_measures(np.stack([fr.landmarks for fr in frames]))
            worst = np.unravel_index(np.abs(turned - measures).argmax(), measures.shape)
            assert np.abs(turned - measures).max() < 0.02, (f.name, rotate, MEASURES[worst[1]], turned[worst],
                                                             measures[worst])


def test_oversized_video_is_refused(tmp_path, monkeypatch):
    import emotion.video.frames as video

    p = tmp_path / CLIP
    write_clip(p, parse_id(CLIP), VideoSynthParams(duration=0.2))
    monkeypatch.setattr(video, "MAX_PIXELS", 100 * 100)
    with pytest.raises(RejectedInput, match="over the 4K limit"):
        list(sample_frames(p.read_bytes(), FrameParams()))


@pytest.mark.real_data
def test_real_clip_cut_off_mid_stream_is_rejected():
    data = real_video_files()[0].read_bytes()
    assert len(list(sample_frames(data, FrameParams()))) == 5
    with pytest.raises(DecodeError, match="video is cut off: .* of its 99 frames decode"):
        list(sample_frames(data[: len(data) // 2], FrameParams()))


@pytest.mark.real_data
def test_real_clip_damaged_anywhere_gets_a_reason_in_words():
    """Each way a real clip can be damaged is named as such, without FFmpeg's error numbers and C functions."""
    from emotion.audio.decode import load_audio

    data = real_video_files()[0].read_bytes()
    no_stream = "cannot open video: no audio or video stream in its 100 bytes (the file is cut off or not an MP4)"
    invalid = "cannot open video: invalid data (the file is damaged, cut off or not an MP4)"
    cases = {  # bytes -> (the reason of the frames, a pattern; the start of the reason of the audio track)
        data[:100]: (re.escape(no_stream), no_stream),
        data[:5000]: (r"video is cut off: none of its \d+ frames decode", "audio track is cut off: none of its"),
        data[-len(data) // 2:]: (re.escape(invalid), invalid),
    }
    for cut, (frames_reason, audio_reason) in cases.items():
        with pytest.raises(DecodeError) as frames_err:
            list(sample_frames(cut, FrameParams()))
        assert re.match(frames_reason, str(frames_err.value)), str(frames_err.value)
        with pytest.raises(DecodeError) as audio_err:  # a damaged track, not a clip "without audio" (NoAudioError)
            load_audio(cut, 22050, video=True)
        assert str(audio_err.value).startswith(audio_reason)
        assert "Errno" not in str(frames_err.value) + str(audio_err.value)


@pytest.mark.real_data
def test_real_clips_decode_to_gray_256_frames_with_faces():
    files = real_video_files()
    assert len(files) == 5
    found = total = 0
    for f in files:
        frames = list(sample_frames(f.read_bytes(), FrameParams(face_crop=True)))
        assert frames and all(fr.image.shape == (256, 256) and fr.image.dtype == np.uint8 for fr in frames)
        assert [fr.index for fr in frames] == list(range(0, 20 * len(frames), 20))
        found += sum(bool(fr.face_found) for fr in frames)
        total += len(frames)
    assert found / total >= 0.95, f"faces in {found}/{total} kept frames"
    with av.open(str(files[0])) as c:
        assert c.streams.video[0].codec_context.name == "h264"
