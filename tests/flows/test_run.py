"""flows.run: what the pipeline skips, and says so, rather than fail after training the rest."""

from __future__ import annotations

from flows.run import skip_video_note


def test_video_clips_without_the_splits_test_or_train_actors_are_named_for_skipping_with_a_split_they_allow():
    # the wording of emotion.core.splits.lacking_actors, the one that says what to give instead
    assert skip_video_note((1, 5), "train=1-16,test=17-20") == (
        "video and fused models skipped: no video clips of the test actors of train=01-16,test=17-20 in the store "
        "(actors present: 01,05); give e.g. --split train=01,test=05")
    assert skip_video_note((18, 19), "train=1-16,test=17-20") == (
        "video and fused models skipped: no video clips of the train actors of train=01-16,test=17-20 in the store "
        "(actors present: 18-19); give e.g. --split train=18,test=19")
    assert skip_video_note((1, 18), "train=1-16,test=17-20") is None  # both sides: trained as usual
    assert skip_video_note((), "train=1-16,test=17-20") is None  # not recorded: the training says what lacks
