"""emotion.featuresets: the refusals that say which setting to change, as the command line and a served run say it."""

from __future__ import annotations

import pytest

from emotion.core.errors import UsageError
from emotion.featuresets import feature_params, feature_set, is_face_set, make_extractor


def test_a_face_set_asked_for_audio_names_the_modality_to_set():
    with pytest.raises(UsageError) as err:
        is_face_set(feature_set("landmarks"), "audio")
    assert str(err.value) == "the landmarks feature set is measured on video frames; use --modality video or all"
    # a served run (the extract flow, the pipeline): their parameter modality
    assert err.value.served_message() == "the landmarks feature set is measured on video frames; set modality to " \
                                         "video or all"


def test_the_landmarks_set_has_no_audio_extractor_and_names_the_extraction_that_measures_it():
    with pytest.raises(UsageError) as err:
        make_extractor(feature_set("landmarks"))
    assert str(err.value) == ("the landmarks feature set is measured on video frames (emotion extract --modality video "
                              "--face-crop), not computed from audio")
    assert err.value.served_message() == ("the landmarks feature set is measured on video frames (the extract flow "
                                          "with modality=video, frames.face_crop=true), not computed from audio")


def test_speed_copies_of_a_set_without_them_name_the_feature_set_to_set():
    with pytest.raises(UsageError) as err:
        feature_params("seed", (0.9, 1.1))
    assert str(err.value) == "--augment needs --features extended (the seed set has no augmented copies)"
    # every flow takes augment and features
    assert err.value.served_message() == "augment needs features set to extended (the seed set has no augmented copies)"
