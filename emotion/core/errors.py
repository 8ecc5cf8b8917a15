"""The project's exception types.

Every error raised for bad input carries a one-line message that names the
problem; errors about a specific file name that file.

An error that tells what to do instead (give a setting, run something first) carries that advice as data too
(:class:`Advice`): its message gives it as the command line takes it (``give --cv-folds 2``), and
:meth:`EmotionError.served_message` as a served run's user sets it, by the deployment's parameters
(``set search.cv_folds to 2``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """One setting, as the command line takes it (``--cv-folds 2``) and as a flow's parameter a deployment or the
    Prefect UI sets (``search.cv_folds``: a field of the ``search`` object)."""

    flag: str  # "--cv-folds"
    parameter: str  # "search.cv_folds"
    value: str = ""  # "2"; "" for a switch (``--face-crop``) or a flag whose bare form gives the value (``--augment``)
    parameter_value: str = ""  # the parameter's value where it is not ``value``: "true" for a switch, "[0.9, 1.1]"

    @property
    def cli(self) -> str:
        """``--cv-folds 2``."""
        return f"{self.flag} {self.value}" if self.value else self.flag

    @property
    def served(self) -> str:
        """``search.cv_folds=2``."""
        return f"{self.parameter}={self.parameter_value or self.value}"


@dataclass(frozen=True)
class Advice:
    """What to do instead, as part of an error's message: ``cli`` as the command line's user does it (the text the
    message holds), ``served`` as a served run's user does it, by the parameters of a deployment or a flow."""

    cli: str  # "give --cv-folds 2"
    served: str  # "set search.cv_folds to 2"

    def __str__(self) -> str:
        return self.cli


def give(option: Option, example: bool = False) -> Advice:
    """``give --cv-folds 2`` / ``set search.cv_folds to 2`` (``example``: ``give e.g. --split ...``)."""
    eg = "e.g. " if example else ""
    return Advice(f"give {eg}{option.cli}", f"set {option.parameter} to {eg}{option.parameter_value or option.value}")


def invocation(command: str, flow: str, options: Iterable[Option | tuple[str, str]]) -> Advice:
    """```emotion extract DATA --out OUT --modality audio``` / ``the extract flow with data=DATA, out=OUT,
    modality=audio``: ``options`` are the flow's parameters (an :class:`Option`, or a parameter and its value)."""
    given = ", ".join(o.served if isinstance(o, Option) else f"{o[0]}={o[1]}" for o in options)
    return Advice(f"`{command}`", f"the {flow} flow with {given}")


def run_first(run: Advice, again: bool = False) -> Advice:
    """``run `emotion extract ...` first`` / ``run the extract flow with ... first`` (``run``: an
    :func:`invocation`); ``again``: "run ... again" (it ran, and what it wrote is not what is needed)."""
    when = "again" if again else "first"
    return Advice(f"run {run.cli} {when}", f"run {run.served} {when}")


class Advised(str):
    """A one-line message (a ``str``, equal to its text) with the advice it gives as data: an error raised with it
    takes the advice along (``raise UsageError(few)``); a message made from it by formatting does not, and is raised
    with ``advice=few.advice``. A message that is no error (a note a flow logs) tells its advice served by
    :meth:`served_message`, as an error does."""

    advice: tuple[Advice, ...]

    def __new__(cls, text: str, *advice: Advice) -> Advised:
        made = super().__new__(cls, text)
        made.advice = advice
        return made

    def served_message(self) -> str:
        """The message with each advice in a deployment's terms (:meth:`EmotionError.served_message`)."""
        return served_text(str(self), self.advice)


class EmotionError(Exception):
    """Base class of every error this package raises on purpose.

    ``advice``: what its message tells to do instead (with that of any :class:`Advised` message it is given), for
    :meth:`served_message`; ``str(exc)`` is the command line's message."""

    advice: tuple[Advice, ...] = ()

    def __init__(self, *args: Any, advice: Advice | Iterable[Advice] = ()) -> None:
        super().__init__(*args)
        given = (advice,) if isinstance(advice, Advice) else tuple(advice)
        found = tuple(a for arg in args if isinstance(arg, Advised) for a in arg.advice)
        if given or found:
            self.advice = tuple(dict.fromkeys((*found, *given)))

    def served_message(self) -> str:
        """The message as a served run tells it: each advice in a deployment's terms (``set search.cv_folds to 2``,
        not ``give --cv-folds 2``); the message itself where it gives none."""
        return served_text(str(self), self.advice)


def served_text(text: str, advice: Iterable[Advice]) -> str:
    """``text`` with the command line's wording of each ``advice`` replaced by its served wording (also where
    ``text`` quotes it as ``repr`` does, as Prefect's lines about a failed task show the exception)."""
    for a in advice:
        text = text.replace(a.cli, a.served)
        quoted = repr(a.cli)[1:-1]
        if quoted != a.cli:
            text = text.replace(quoted, repr(a.served)[1:-1])
    return text


class UsageError(EmotionError, ValueError):
    """A parameter given by the user is malformed (a split, a model name...)."""


class InvalidIdError(EmotionError, ValueError):
    """A file name is not a valid RAVDESS-style 7-part identifier."""


class RejectedInput(EmotionError):
    """An input file cannot be used; ``reason`` is the one-line why.

    Raised by decoding and feature code; the pipeline turns it into a row of
    the rejects table and goes on with the other files.
    """

    def __init__(self, reason: str, path: str | None = None) -> None:
        self.reason = " ".join(str(reason).split())  # one line, always
        self.path = path
        super().__init__(f"{path}: {self.reason}" if path else self.reason)


class DecodeError(RejectedInput):
    """The bytes of a file cannot be decoded as audio or video."""


class StorageReadError(DecodeError):
    """A clip that could not be read because its storage failed (an endpoint down, a connection lost), after the
    retries: not the file's fault. Its stored rows are kept, and the next run reads it again.

    ``retried``: the failure may pass and the read was tried again, and waited for (an endpoint down); False for a
    refusal given at once (the object store's permission denied), which costs a run no time.
    """

    def __init__(self, reason: str, path: str | None = None, *, retried: bool = True) -> None:
        super().__init__(reason, path)
        self.retried = retried


class NoVideoError(DecodeError):
    """An mp4 has no video stream (an audio-only recording): no face can be read (its voice may still be used)."""


class NoAudioError(RejectedInput):
    """A video clip carries no usable audio: no audio track, or a silent one (video-only clips).

    Not a fault of the file: the clip has no audio features, and its video is used as usual.
    """


class NoFaceError(RejectedInput):
    """No face was found in any kept frame of a video: face models cannot read it (its voice may still be used)."""


class UnsafeArchiveError(RejectedInput):
    """A zip member would escape its folder, is a link, or is too large."""


class StoreError(EmotionError):
    """The output store is missing, unreadable, or holds no usable data."""


class DamagedPartError(StoreError):
    """A stored part whose bytes do not read back as written (a page's checksum fails, or it does not parse); a part
    the storage failed to deliver (access denied, a timeout) is a plain :class:`StoreError`, never this."""


class ModelIntegrityError(EmotionError):
    """A saved model does not match its recorded hash or uses unsafe types."""


_DONE = "emotion_done"


def note_done(exc: BaseException, **done: Any) -> None:
    """Record on ``exc`` what was done before it was raised, for the command to report beside the error (e.g.
    ``extract=``: the summary of the extraction of a run whose training then failed; its features are stored).
    Read back by :func:`done_before`; a second call adds to the first."""
    setattr(exc, _DONE, {**done_before(exc), **done})


def done_before(exc: BaseException) -> dict[str, Any]:
    """What :func:`note_done` recorded on ``exc`` (``{}`` if nothing)."""
    return dict(getattr(exc, _DONE, None) or {})


def storage_errors() -> tuple[type[BaseException], ...]:
    """What reading or writing storage raises: ``OSError`` (files; s3fs turns a missing bucket or a refused key into
    ``FileNotFoundError`` or ``PermissionError``), and the object-storage clients' own errors that are not
    ``OSError`` (botocore's ``EndpointConnectionError`` when the endpoint is down, aiohttp's client errors). A client
    not loaded cannot have raised: its module is not imported here."""
    import sys

    found: list[type[BaseException]] = [OSError]
    if (boto := sys.modules.get("botocore.exceptions")) is not None:
        found.append(boto.BotoCoreError)  # EndpointConnectionError, NoCredentialsError, ...
    if (aiohttp := sys.modules.get("aiohttp")) is not None:
        found.append(aiohttp.ClientError)
    return tuple(found)


def storage_reason(exc: BaseException) -> str:
    """A storage error in one line: its OS reason, else its message, with the error's type where it says more."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())[:300]
    name = type(exc).__name__
    return f"{name}: {text}" if text and not isinstance(exc, OSError) else (text or name)
