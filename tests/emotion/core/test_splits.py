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
