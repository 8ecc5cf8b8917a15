"""emotion.training.loso: what LOSO with fixed hyper-parameters says it assumes."""

from __future__ import annotations

from emotion.core.splits import ActorSplit
from emotion.training.loso import fixed_note


def test_the_fixed_params_note_counts_the_held_out_actors_that_chose_them():
    actors = list(range(1, 21))
    other = fixed_note(ActorSplit.parse("train=1-16,test=17-20"), actors)  # --params-from another split
    assert other.startswith("hyper-parameters fixed from the stored run on train=01-16,test=17-20")
    assert "16 of the 20 held-out actors took part in that choice (mildly optimistic)" in other
    same = fixed_note(ActorSplit.parse("train=1-20,test=21-24"), actors)
    assert "20 of the 20 held-out actors took part" in same
    clean = fixed_note(ActorSplit.parse("train=1-16,test=17-20"), [17, 18, 19, 20])
    assert "0 of the 4 held-out actors" in clean and "optimistic" not in clean
