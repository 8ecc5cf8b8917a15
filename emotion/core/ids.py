"""RAVDESS-style identifiers: parse, validate, and label.

A RAVDESS file name carries seven two-digit fields,
``modality-channel-emotion-intensity-statement-repetition-actor``, for
example ``03-01-06-01-02-01-12.wav``. :func:`parse_id` checks every rule and
raises :class:`~emotion.core.errors.InvalidIdError` with the first one broken.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import IntEnum
from pathlib import PurePosixPath

from emotion.core.errors import InvalidIdError


class Emotion(IntEnum):
    NEUTRAL = 1
    CALM = 2
    HAPPY = 3
    SAD = 4
    ANGRY = 5
    FEARFUL = 6
    DISGUST = 7
    SURPRISED = 8

    @property
    def label(self) -> str:
        return self.name.lower()


EMOTIONS: tuple[Emotion, ...] = tuple(Emotion)
EMOTION_LABELS: tuple[str, ...] = tuple(e.label for e in Emotion)


class Modality(IntEnum):
    AUDIO_VIDEO = 1
    VIDEO_ONLY = 2
    AUDIO_ONLY = 3


class VocalChannel(IntEnum):
    SPEECH = 1
    SONG = 2


MAX_ACTOR = 24
_FIELDS = ("modality", "vocal_channel", "emotion", "intensity", "statement", "repetition", "actor")
_PATTERN = re.compile(r"^\d{2}(-\d{2}){6}$")
# Song recordings in RAVDESS have no disgust or surprised clips.
_SONG_EMOTIONS = frozenset({Emotion.NEUTRAL, Emotion.CALM, Emotion.HAPPY, Emotion.SAD, Emotion.ANGRY, Emotion.FEARFUL})


@dataclass(frozen=True, order=True)
class RavdessId:
    """The seven fields of a RAVDESS identifier, validated."""

    modality: Modality
    vocal_channel: VocalChannel
    emotion: Emotion
    intensity: int  # 1 normal, 2 strong
    statement: int  # 1 "Kids are talking by the door", 2 "Dogs are sitting by the door"
    repetition: int
    actor: int

    @property
    def gender(self) -> str:
        """RAVDESS actors with odd numbers are male, even numbers female."""
        return "male" if self.actor % 2 else "female"

    @property
    def stem(self) -> str:
        return "-".join(f"{int(v):02d}" for v in self.fields())

    def fields(self) -> tuple[int, ...]:
        return tuple(int(getattr(self, f)) for f in _FIELDS)

    @property
    def recording(self) -> tuple[int, ...]:
        """The fields but the modality: what the 01, 02 and 03 files of one performance share."""
        return self.fields()[1:]

    def labels(self) -> dict[str, int | str]:
        """The id as a flat row of plain values (for tables)."""
        row: dict[str, int | str] = {k: int(v) for k, v in asdict(self).items()}
        row["emotion_label"] = self.emotion.label
        row["gender"] = self.gender
        return row


def parse_id(name: str, *, max_actor: int = MAX_ACTOR) -> RavdessId:
    """Parse a file name or path (any extension) into a :class:`RavdessId`.

    Raises :class:`InvalidIdError` naming the first rule that is broken.
    """
    stem = PurePosixPath(str(name).replace("\\", "/")).name.split(".", 1)[0]
    if not _PATTERN.match(stem):
        raise InvalidIdError(
            f"file name {stem!r} is not a RAVDESS id (expected 7 two-digit fields like 03-01-06-01-02-01-12)"
        )
    values = dict(zip(_FIELDS, (int(p) for p in stem.split("-")), strict=True))

    def check(field: str, lo: int, hi: int) -> int:
        v = values[field]
        if not lo <= v <= hi:
            raise InvalidIdError(f"{field} {v:02d} in {stem!r} is out of range {lo:02d}-{hi:02d}")
        return v

    modality = Modality(check("modality", 1, 3))
    channel = VocalChannel(check("vocal_channel", 1, 2))
    emotion = Emotion(check("emotion", 1, 8))
    intensity = check("intensity", 1, 2)
    statement = check("statement", 1, 2)
    repetition = check("repetition", 1, 2)
    actor = check("actor", 1, max_actor)
    if emotion is Emotion.NEUTRAL and intensity == 2:
        raise InvalidIdError(f"neutral clips have no strong intensity (intensity 02 in {stem!r})")
    if channel is VocalChannel.SONG and emotion not in _SONG_EMOTIONS:
        raise InvalidIdError(f"song clips have no {emotion.label} emotion ({stem!r})")
    return RavdessId(modality, channel, emotion, intensity, statement, repetition, actor)


def try_parse_id(name: str) -> RavdessId | None:
    try:
        return parse_id(name)
    except InvalidIdError:
        return None


def video_only_twins(paths: Iterable[str]) -> set[str]:
    """The video-only clips (modality 02) among ``paths`` whose audio-video clip (01) of the same recording is
    among them too.

    RAVDESS's ``02-...`` file is its ``01-...`` file without the sound: the same performance, the same frames. A
    face model that kept both would count one recording twice, in training, in validation and in the test
    metrics. The 01 clip is the one kept (it has the voice as well). Paths that are no RAVDESS id are ignored.
    """
    ids = {p: try_parse_id(p) for p in dict.fromkeys(paths)}  # each path once (a frame index has a row per frame)
    audio_video = {i.recording for i in ids.values() if i is not None and i.modality is Modality.AUDIO_VIDEO}
    return {p for p, i in ids.items()
            if i is not None and i.modality is Modality.VIDEO_ONLY and i.recording in audio_video}
