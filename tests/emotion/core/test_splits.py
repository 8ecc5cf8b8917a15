import pytest

from emotion.core.errors import UsageError
from emotion.core.splits import ActorSplit, format_actors, parse_actors


def test_default_split_and_id():
    s = ActorSplit.parse("train=1-20,test=21-24")
    assert s.train == tuple(range(1, 21)) and s.test == (21, 22, 23, 24)
    assert s.id == "train01-20_test21-24"
    assert ActorSplit.parse(str(s)) == s


def test_lists_and_ranges():
    assert parse_actors("1-3,5,7-8") == (1, 2, 3, 5, 7, 8)
    assert format_actors((1, 2, 3, 5, 7, 8)) == "01-03.05.07-08"
    assert ActorSplit.parse("train=1-10,12,test=21-24").train[-1] == 12


@pytest.mark.parametrize("text, msg", [
    ("train=1-20,test=20-24", "both train and test"),
    ("train=1-20", "bad split"),
    ("test=1-2,train=3-4", "bad split"),
    ("train=5-1,test=21", "bad actor range"),
])
def test_bad_splits(text, msg):
    with pytest.raises(UsageError, match=msg):
        ActorSplit.parse(text)


def test_a_split_the_actors_allow_holds_out_the_last_fifth():
    from emotion.core.splits import suggest_split

    assert str(suggest_split(range(1, 21))) == "train=01-16,test=17-20"  # RAVDESS without 21-24: the proxy split
    assert str(suggest_split([1, 2, 3, 21])) == "train=01-03,test=21"
    assert str(suggest_split([4, 9])) == "train=04,test=09"
    assert suggest_split([7]) is None and suggest_split([]) is None


def test_actors_that_lack_a_side_of_the_split_are_told_with_a_split_they_allow():
    from emotion.core.splits import DEFAULT_SPLIT, lacking_actors

    split = ActorSplit.parse(DEFAULT_SPLIT)
    assert lacking_actors(split, range(1, 21), "clips", "under /data") == (
        "no clips of the test actors of train=01-20,test=21-24 under /data (actors present: 01-20); "
        "give e.g. --split train=01-16,test=17-20")
    assert lacking_actors(split, [22, 23], "frames", "in the store") == (
        "no frames of the train actors of train=01-20,test=21-24 in the store (actors present: 22-23); "
        "give e.g. --split train=22,test=23")
    assert lacking_actors(split, [21], "clips", "in the store").endswith(
        "(actors present: 21); a split needs clips of at least two actors, one to train and one to test")
    assert lacking_actors(split, [1, 24], "clips", "in the store") is None


def test_a_split_they_allow_is_told_as_a_served_run_sets_it():
    from emotion.core.errors import StoreError
    from emotion.core.splits import DEFAULT_SPLIT, lacking_actors

    exc = StoreError(lacking_actors(ActorSplit.parse(DEFAULT_SPLIT), range(1, 21), "clips", "in the store"))
    assert str(exc).endswith("(actors present: 01-20); give e.g. --split train=01-16,test=17-20")  # as before
    assert exc.served_message() == ("no clips of the test actors of train=01-20,test=21-24 in the store (actors "
                                    "present: 01-20); set split to e.g. train=01-16,test=17-20")


def test_too_few_train_actors_for_grouped_cv_names_the_folds_they_allow():
    from emotion.models.search import too_few_cv_actors

    assert too_few_cv_actors(2, 3) == ("grouped CV needs at least 3 training actors, got 2: give --cv-folds 2, or a "
                                       "split with more train actors")
    assert too_few_cv_actors(1, 3) == ("grouped CV needs at least 3 training actors, got 1: give a split with at "
                                       "least 3 train actors, or one with 2 and --cv-folds 2")
    assert too_few_cv_actors([2, 3], 3) == ("grouped CV needs at least 3 training actors, got 2 (02-03): give "
                                            "--cv-folds 2, or a split with more train actors")  # named where known
    assert too_few_cv_actors(3, 3) is None and too_few_cv_actors(20, 5) is None


def test_too_few_train_actors_for_grouped_cv_are_told_as_a_served_run_sets_the_folds():
    from emotion.core.errors import UsageError
    from emotion.models.search import too_few_cv_actors

    assert UsageError(too_few_cv_actors([1, 2], 3)).served_message() == (
        "grouped CV needs at least 3 training actors, got 2 (01-02): set search.cv_folds to 2, or split to one "
        "with more train actors")
    # both ways out at once (a walkthrough: "at least 2 train actors", then with 2, "give --cv-folds 2")
    assert UsageError(too_few_cv_actors(1, 3)).served_message() == (
        "grouped CV needs at least 3 training actors, got 1: set split to one with at least 3 train actors, or one "
        "with 2 and search.cv_folds to 2")
    assert str(too_few_cv_actors([1], 3)) == (
        "grouped CV needs at least 3 training actors, got 1 (01): give a split with at least 3 train actors, or one "
        "with 2 and --cv-folds 2")
    assert str(too_few_cv_actors([1], 2)) == (
        "grouped CV needs at least 2 training actors, got 1 (01): give a split with at least 2 train actors")


@pytest.mark.parametrize("text, msg", [
    ("train=0-6,test=7-8", "bad actor range '0-6' in split 'train=0-6,test=7-8'"),
    ("train=1-6,test=8-7", "bad actor range '8-7' in split 'train=1-6,test=8-7'"),
    ("train=1-2-3,test=4", "bad actor list '1-2-3' in split 'train=1-2-3,test=4': '1-2-3' is not a number or a range"),
    ("train00-06_test07-08", "bad actor range '00-06' in split 'train00-06_test07-08'"),
])
def test_a_bad_actor_range_of_a_split_quotes_the_whole_split(text, msg):
    """It said "bad actor range '0-6' in '0-6'": the side of the split, not the split the user gave."""
    with pytest.raises(UsageError) as err:
        ActorSplit.parse_given(text)
    assert str(err.value).startswith(msg), err.value
    with pytest.raises(UsageError, match=r"^bad actor range '0-6' in '0-6'$"):  # an actor list alone: as before
        parse_actors("0-6")
