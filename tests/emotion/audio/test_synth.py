from emotion.audio.synth import SynthParams, all_ids, synth_clip, write_corpus
from emotion.core.ids import parse_id


def test_corpus_names_are_valid_ravdess_ids(tmp_path):
    paths = write_corpus(tmp_path, SynthParams(actors=(1, 22), repetitions=1, duration=0.5))
    assert len(paths) == 2 * 30
    assert {p.suffix for p in paths} == {".wav", ".flac"}
    assert all(parse_id(p.name).actor in (1, 22) for p in paths)


def test_clips_are_deterministic_and_vary_by_actor():
    rid = all_ids(SynthParams(actors=(5,)))[0]
    a, sr = synth_clip(rid, SynthParams())
    b, _ = synth_clip(rid, SynthParams())
    assert (a == b).all() and a.shape[1] == 2  # actor 5 records in stereo
    assert len(all_ids(SynthParams(actors=(1, 2)))) == 120
