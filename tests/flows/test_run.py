"""flows.run: what the pipeline skips, and says so, rather than fail after training the rest."""

from __future__ import annotations

from flows.run import lacks_split


def test_video_clips_without_the_splits_test_or_train_actors_are_named_for_skipping():
    assert lacks_split((1, 5), "train=1-16,test=17-20", "video") == (
        "no video clips of the test actors of train=01-16,test=17-20 (actors with video: 1, 5)")
    assert lacks_split((18,), "train=1-16,test=17-20", "video").startswith("no video clips of the train actors")
    assert lacks_split((1, 18), "train=1-16,test=17-20", "video") is None  # both sides: trained as usual
    assert lacks_split((), "train=1-16,test=17-20", "video") is None  # not recorded: the training says what lacks
