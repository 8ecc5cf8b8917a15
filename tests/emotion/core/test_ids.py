import pytest

from emotion.core.errors import InvalidIdError
from emotion.core.ids import Emotion, Modality, RavdessId, VocalChannel, parse_id, video_only_twins


def test_parses_every_field_and_derives_gender():
    rid = parse_id("Actor_12/03-01-06-01-02-01-12.wav")
    assert rid == RavdessId(Modality.AUDIO_ONLY, VocalChannel.SPEECH, Emotion.FEARFUL, 1, 2, 1, 12)
    assert rid.gender == "female" and rid.stem == "03-01-06-01-02-01-12"
    assert parse_id("01-01-05-02-01-02-07.mp4").gender == "male"
    row = rid.labels()
    assert row["emotion_label"] == "fearful" and row["actor"] == 12 and row["emotion"] == 6


@pytest.mark.parametrize("name", [
    "03-01-01-01-01-01-01.flac", "01-01-08-02-02-02-24.mp4", "02-01-04-01-01-01-05.mp4",
    "03-02-06-02-01-01-03.wav", "a.zip/Actor_01/03-01-02-02-01-01-01.WAV",
])
def test_valid_ids(name):
    assert parse_id(name).actor >= 1


@pytest.mark.parametrize("name, reason", [
    ("hello.wav", "not a RAVDESS id"),
    ("03-01-06-01-02-01.wav", "not a RAVDESS id"),  # six fields
    ("03-01-06-01-02-01-12-01.wav", "not a RAVDESS id"),  # eight fields
    ("3-1-6-1-2-1-12.wav", "not a RAVDESS id"),  # not two digits
    ("04-01-06-01-02-01-12.wav", "modality 04"),
    ("00-01-06-01-02-01-12.wav", "modality 00"),
    ("03-03-06-01-02-01-12.wav", "vocal_channel 03"),
    ("03-01-09-01-02-01-12.wav", "emotion 09"),
    ("03-01-00-01-02-01-12.wav", "emotion 00"),
    ("03-01-06-03-02-01-12.wav", "intensity 03"),
    ("03-01-06-01-03-01-12.wav", "statement 03"),
    ("03-01-06-01-02-03-12.wav", "repetition 03"),
    ("03-01-06-01-02-01-25.wav", "actor 25"),
    ("03-01-06-01-02-01-00.wav", "actor 00"),
    ("03-01-01-02-01-01-01.wav", "neutral clips have no strong intensity"),
    ("03-02-07-01-01-01-01.wav", "song clips have no disgust"),
    ("03-02-08-01-01-01-01.wav", "song clips have no surprised"),
])
def test_invalid_ids_say_which_rule(name, reason):
    with pytest.raises(InvalidIdError, match=reason) as err:
        parse_id(name)
    assert "\n" not in str(err.value)


def test_max_actor_is_configurable_for_larger_corpora():
    assert parse_id("03-01-06-01-02-01-30.wav", max_actor=40).actor == 30


def test_a_video_only_clip_is_a_twin_only_where_its_audio_video_clip_is_there():
    paths = ["Actor_01/01-01-05-01-01-01-01.mp4", "Actor_01/02-01-05-01-01-01-01.mp4",  # one recording, twice
             "Actor_01/02-01-05-01-01-02-01.mp4",  # another repetition: its own recording
             "Actor_02/02-01-05-01-01-01-02.mp4",  # another actor
             "Actor_01/03-01-05-01-01-01-01.wav",  # the audio-only take: not a face clip's twin here
             "notes.mp4"]
    assert video_only_twins(paths) == {"Actor_01/02-01-05-01-01-01-01.mp4"}
    assert video_only_twins(p for p in paths if not p.startswith("Actor_01/01-")) == set()  # alone, 02 is kept
