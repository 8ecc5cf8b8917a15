import av

from emotion.core.ids import parse_id
from emotion.video.synth import VideoSynthParams, video_ids, write_video_corpus


def test_corpus_is_ravdess_named_h264_with_aac(tmp_path):
    paths = write_video_corpus(tmp_path, VideoSynthParams(actors=(3,), modalities=(1, 2), duration=0.4))
    assert len(paths) == 2 * 30 and all(parse_id(p.name).actor == 3 for p in paths)
    full = next(p for p in paths if p.name.startswith("01-"))
    silent = next(p for p in paths if p.name.startswith("02-"))
    for p in (full, silent):
        with av.open(str(p)) as c:
            assert c.streams.video[0].codec_context.name == "h264"
            assert c.streams.audio[0].codec_context.name == "aac"
    import numpy as np

    def peak(p):
        with av.open(str(p)) as c:
            return max(float(np.abs(f.to_ndarray()).max()) for f in c.decode(audio=0))

    assert peak(full) > 0.05 and peak(silent) < 1e-4  # speech on 01, a silent track on 02


def test_ids_cover_both_modalities():
    ids = video_ids(VideoSynthParams(actors=(1, 2)))
    assert len(ids) == 2 * 2 * 30 and {int(i.modality) for i in ids} == {1, 2}
