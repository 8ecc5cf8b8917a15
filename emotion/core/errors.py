"""The project's exception types.

Every error raised for bad input carries a one-line message that names the
problem; errors about a specific file name that file.
"""

from __future__ import annotations

from typing import Any


class EmotionError(Exception):
    """Base class of every error this package raises on purpose."""


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
