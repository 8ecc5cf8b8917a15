"""emotion.core.errors: what was done before an error travels with it."""

from __future__ import annotations

from emotion.core.errors import StoreError, done_before, note_done


def test_what_was_done_before_an_error_is_read_back_from_it_and_added_to():
    exc = StoreError("no clips of the train actors")
    assert done_before(exc) == {}
    note_done(exc, extract={"audio": {"processed": 3}}, notes=["a note"])
    note_done(exc, extract={"rejected": 1})  # a caller may replace one part (the flow's summaries by the payload)
    assert done_before(exc) == {"extract": {"rejected": 1}, "notes": ["a note"]}
    assert str(exc) == "no clips of the train actors"  # the message is untouched
