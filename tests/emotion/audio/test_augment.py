"""Rows of several vectors (a clip and its augmented copies): training rows and averaged predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from emotion.audio.augment import copies_of, stack_copies
from emotion.core.errors import UsageError
from emotion.core.splits import ActorSplit
from emotion.models.catalog import SearchParams, model_spec
from emotion.models.tuning import predict_copies
from emotion.training.audio import split_data, train_and_evaluate
from tests.conftest import speaker_table


def test_copies_are_column_blocks_in_order():
    X = np.arange(12).reshape(2, 6)  # 2 rows of 3 copies of 2 values
    c = copies_of(X, 3)
    assert c.shape == (3, 2, 2)
    np.testing.assert_array_equal(c[1], [[2, 3], [8, 9]])
    Xs, ys = stack_copies(X, np.array([5, 6]), 3)
    np.testing.assert_array_equal(Xs, [[0, 1], [6, 7], [2, 3], [8, 9], [4, 5], [10, 11]])
    assert ys.tolist() == [5, 6] * 3
    np.testing.assert_array_equal(copies_of(X, 1)[0], X)
    with pytest.raises(UsageError, match="does not hold 4 copies"):
        copies_of(X, 4)


def test_predictions_average_the_copies():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 2)), np.arange(40) % 2
    est = LogisticRegression().fit(X, y)
    wide = np.hstack([X, X + 1.0])
    expected = (est.predict_proba(X) + est.predict_proba(X + 1.0)) / 2
    np.testing.assert_allclose(predict_copies(est, wide, 2), expected)


SPLIT = ActorSplit.parse("train=1-4,test=5")
NAMES = ["f1", "f2"]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """Five actors, eight emotions on a circle (f1, f2); each clip has two copies (columns c2_*, c3_*): scaled and
    shifted."""
    df = speaker_table(tuple(NAMES))
    return df.assign(c2_f1=3 * df["f1"] + 7, c2_f2=3 * df["f2"] - 2, c3_f1=0.5 * df["f1"], c3_f2=0.5 * df["f2"] + 1)


def test_split_with_copies_trains_on_every_copy_and_normalises_each_kind(table):
    cols = NAMES + ["c2_f1", "c2_f2", "c3_f1", "c3_f2"]
    d = split_data(table, cols, SPLIT, "fh", speaker_norm=True, copies=3)
    assert d.X_train.shape == (192, 6) and d.X_test.shape == (48, 6)  # a row: the clip and its 2 copies
    X, y = stack_copies(d.X_train, d.y_train, 3)
    assert X.shape == (576, 2) and y.tolist() == d.y_train.tolist() * 3
    # each copy is standardised over its own kind for each actor: a scaled, shifted copy becomes the clip again
    np.testing.assert_allclose(X[192:384], X[:192], atol=1e-4)
    np.testing.assert_allclose(d.X_test[:, 2:4], d.X_test[:, :2], atol=1e-4)
    assert len(d.fallback.mean) == 6  # pooled statistics of every column (prediction without a speaker group)

    out = train_and_evaluate(model_spec("lr"), d, SPLIT, SearchParams(n_iter=3, refine=False),
                             {"name": "extended", "speeds": [0.9, 1.1]}, "fh")
    assert out.params["augmentation"]["speeds"] == [0.9, 1.1]
    assert ("- augmentation: copies of every clip played at 0.9x, 1.1x speed, added to the training clips in every "
            "fold of the grouped CV and in the final fit;") in out.files()["model_card.md"].decode()
    assert out.metrics["n_train"] == 192 and out.metrics["accuracy"] > 0.9


def test_without_normalisation_the_distorted_copies_are_further_examples(table):
    d = split_data(table, NAMES + ["c2_f1", "c2_f2", "c3_f1", "c3_f2"], SPLIT, "fh", copies=3)
    X, _ = stack_copies(d.X_train, d.y_train, 3)
    assert not np.allclose(X[192:384], X[:192])
    with pytest.raises(UsageError, match="does not hold 4 copies"):
        split_data(table, NAMES + ["c2_f1", "c2_f2", "c3_f1", "c3_f2"], SPLIT, "fh", copies=4)


def test_loso_trains_on_the_copies_of_the_other_actors_and_averages_over_the_held_out_ones(table):
    from emotion.training.loso import loso, loso_data

    cols = NAMES + ["c2_f1", "c2_f2", "c3_f1", "c3_f2"]
    split = ActorSplit.parse("train=1-5,test=21")
    data = loso_data(table, cols, split, "fh", speaker_norm=True, copies=3)
    assert data.copies == 3 and data.X.shape == (240, 6)
    r = loso(model_spec("lr"), data, SearchParams(n_iter=2, cv_folds=2, refine=False))
    assert r["augmented_copies"] == 2 and set(r["per_actor"]) == {"01", "02", "03", "04", "05"}
    assert r["mean"] > 0.9


def test_the_grouped_cv_of_an_augmented_run_is_that_of_the_model_fitted_on_the_copies(table):
    """A review: the search was run on the clips alone and its score recorded as the augmented model's, so every
    augmented run had the CV score and hyper-parameters of the run without copies, and choosing augmentation or not
    was never made by grouped CV (the tie fell to the feature set's hash). Now each fold is fitted on its clips and
    their copies and scored as at test time: copies that are noise lower the CV score, as they lower LOSO's."""
    from emotion.models.tuning import tune
    from emotion.training.loso import loso, loso_data

    rng = np.random.default_rng(0)
    noisy = table.assign(**{c: rng.normal(scale=5.0, size=len(table)) for c in ["c2_f1", "c2_f2", "c3_f1", "c3_f2"]})
    cols, search = NAMES + ["c2_f1", "c2_f2", "c3_f1", "c3_f2"], SearchParams(n_iter=3, cv_folds=2, refine=False)
    plain = split_data(noisy, NAMES, SPLIT, "fh", speaker_norm=True)
    aug = split_data(noisy, cols, SPLIT, "fh", speaker_norm=True, copies=3)
    spec = model_spec("lr")
    alone = tune(spec, plain.X_train, plain.y_train, plain.groups, search)
    with_copies = tune(spec, aug.X_train, aug.y_train, aug.groups, search, copies=3)
    assert with_copies.cv_accuracy < alone.cv_accuracy - 0.1, (with_copies.cv_accuracy, alone.cv_accuracy)
    # the score is that of fits on the copies: the same folds by hand give it
    from sklearn.base import clone
    from sklearn.model_selection import GroupKFold

    est = clone(spec.build(search.seed)).set_params(**with_copies.best_params)
    right = 0
    for tr, te in GroupKFold(n_splits=2).split(aug.X_train, aug.y_train, aug.groups):
        fitted = clone(est).fit(*stack_copies(aug.X_train[tr], aug.y_train[tr], 3))
        right += int(np.sum(np.argmax(predict_copies(fitted, aug.X_train[te], 3), axis=1) == aug.y_train[te]))
    folds = [len(te) for _, te in GroupKFold(n_splits=2).split(aug.X_train, aug.y_train, aug.groups)]
    assert folds[0] == folds[1] and with_copies.cv_accuracy == pytest.approx(right / sum(folds))
    # the model kept is fitted on every clip and copy: 3 training rows a clip
    assert with_copies.estimator.n_features_in_ == 2
    out = train_and_evaluate(spec, aug, SPLIT, search, {"name": "extended", "speeds": [0.9, 1.1]}, "fh")
    assert out.metrics["cv_accuracy"] == with_copies.cv_accuracy
    # nested LOSO tunes the same way inside each fold
    r = loso(spec, loso_data(noisy, cols, ActorSplit.parse("train=1-5,test=21"), "fh", speaker_norm=True, copies=3),
             search)
    assert r["augmented_copies"] == 2
