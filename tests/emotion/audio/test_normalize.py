import numpy as np
import pytest

from emotion.audio.normalize import Stats, normalize_for_prediction, speaker_standardize
from emotion.core.errors import UsageError


def test_each_speaker_is_standardised_by_their_own_clips():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4)) * [1, 2, 3, 4] + [0, 10, 20, 30]
    speakers = np.repeat([7, 3, 9], 10)
    X[speakers == 3] = X[speakers == 3] * 5 + 100  # a very different speaker
    Z = speaker_standardize(X, speakers)
    for s in (7, 3, 9):
        np.testing.assert_allclose(Z[speakers == s].mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(Z[speakers == s].std(axis=0), 1, atol=1e-5)
    # a speaker's result depends only on that speaker's rows (no leak across speakers, no labels)
    Z2 = speaker_standardize(X[speakers == 9], speakers[speakers == 9])
    np.testing.assert_allclose(Z2, Z[speakers == 9], atol=1e-6)


def test_constant_feature_and_single_clip_are_centred_not_blown_up():
    X = np.array([[1.0, 5.0], [3.0, 5.0], [2.0, 5.0]])
    Z = speaker_standardize(X, np.array([1, 1, 2]))
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z[:, 1], 0)
    np.testing.assert_allclose(Z[2], 0)  # the only clip of speaker 2


def test_prediction_uses_the_speaker_group_or_says_it_fell_back():
    rng = np.random.default_rng(1)
    train = rng.standard_normal((50, 3))
    fallback = Stats.of(train)
    group = rng.standard_normal((10, 3)) + 4
    Z, mode = normalize_for_prediction(group, fallback, same_speaker=True)
    assert mode == "speaker"
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-5)
    Z, mode = normalize_for_prediction(group[:2], fallback, same_speaker=True)
    assert mode == "global-fallback"
    np.testing.assert_allclose(Z, fallback.apply(group[:2]))
    assert normalize_for_prediction(group, fallback, same_speaker=False)[1] == "global-fallback"
    again = Stats.from_dict(fallback.to_dict())
    np.testing.assert_allclose(again.apply(group), fallback.apply(group))


def test_bad_input():
    with pytest.raises(UsageError, match="2 speaker ids"):
        speaker_standardize(np.zeros((3, 2)), np.array([1, 2]))
    with pytest.raises(UsageError, match="non-empty"):
        Stats.of(np.zeros((0, 2)))
