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


def test_advice_is_told_as_the_command_line_takes_it_and_as_a_deployments_parameters_set_it():
    from emotion.core.errors import Option, give, invocation, run_first

    folds = give(Option("--cv-folds", "search.cv_folds", "2"))
    assert (str(folds), folds.cli, folds.served) == ("give --cv-folds 2", "give --cv-folds 2",
                                                    "set search.cv_folds to 2")
    crop = Option("--face-crop", "frames.face_crop", parameter_value="true")
    assert (crop.cli, crop.served) == ("--face-crop", "frames.face_crop=true")
    first = run_first(invocation("emotion extract /d --out /o --face-crop", "extract",
                                 [("data", "/d"), ("out", "/o"), crop]))
    assert first.cli == "run `emotion extract /d --out /o --face-crop` first"
    assert first.served == "run the extract flow with data=/d, out=/o, frames.face_crop=true first"


def test_an_error_takes_the_advice_of_its_message_and_tells_it_served_while_its_text_stays_the_command_lines():
    import pickle

    from emotion.core.errors import Advice, Advised, UsageError, served_text

    fix = Advice("give --cv-folds 2", "set search.cv_folds to 2")
    exc = UsageError(Advised(f"too few actors: {fix}", fix))
    assert str(exc) == "too few actors: give --cv-folds 2"  # the command line's message, as before
    assert exc.served_message() == "too few actors: set search.cv_folds to 2"
    made = UsageError(f"{Advised(f'too few actors: {fix}', fix)} (under /d)", advice=fix)  # formatted: given again
    assert made.served_message() == "too few actors: set search.cv_folds to 2 (under /d)"
    assert UsageError("bad model 'x'").served_message() == "bad model 'x'"  # no advice: the message itself
    assert pickle.loads(pickle.dumps(exc)).served_message() == exc.served_message()  # across processes (Dask)
    quoted = Advice("run `emotion extract 'my data'` first", "run the extract flow with data=my data first")
    assert served_text(repr(UsageError(f"none: {quoted}")), [quoted]) == \
        "UsageError(\"none: run the extract flow with data=my data first\")"  # as Prefect quotes the exception


def test_a_message_that_is_no_error_tells_its_advice_served_too_and_keeps_it_across_processes():
    """A note (the pipeline's on skipped video models) gives advice as an error does: its text is the command
    line's, :meth:`Advised.served_message` a served run's."""
    import pickle

    from emotion.core.errors import Advice, Advised

    fix = Advice("give e.g. --split train=01,test=05", "set split to e.g. train=01,test=05")
    note = Advised(f"video models skipped: {fix}", fix)
    assert note == "video models skipped: give e.g. --split train=01,test=05"
    assert note.served_message() == "video models skipped: set split to e.g. train=01,test=05"
    assert pickle.loads(pickle.dumps(note)).served_message() == note.served_message()  # a flow's result, a Dask task's
    assert Advised("nothing to do").served_message() == "nothing to do"
