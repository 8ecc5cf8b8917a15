"""What a prediction says about one file: the emotion, every emotion's probability, the models used, notes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from emotion.core.ids import EMOTION_LABELS


@dataclass(frozen=True)
class TimelinePoint:
    """One sampled video frame: its time and the two most likely emotions (none where no face was found in it)."""

    frame_index: int
    time: float
    top: tuple[tuple[str, float], ...]  # ((emotion, probability), (emotion, probability)); () without a face
    face: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"frame_index": self.frame_index, "time": self.time, "face": self.face,
                "top": [{"emotion": e, "probability": p} for e, p in self.top]}


@dataclass
class Prediction:
    """What ``emotion predict`` says about one file."""

    file: str
    emotion: str | None  # None when no model could read the file (e.g. audio absent and no video model)
    probabilities: dict[str, float] | None  # every one of the 8 emotions, summing to 1
    model: str | None  # the run folder of the model that gave the outcome
    modalities_used: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timeline: list[TimelinePoint] | None = None  # video: every sampled frame
    timeline_model: str | None = None  # the face model that read the frames (may differ from ``model``)
    timeline_outcome: dict[str, Any] | None = None  # that face model's own clip outcome: emotion and probability
    label: str | None = None  # the emotion in a RAVDESS file name, when there is one
    unlike_speech: str | None = None  # why the audio looks unlike the speech clips the model learnt from
    # where the outcome's model learnt (emotion.core.provenance: synthetic, recorded, unknown; None: pretrained elsewhere)
    data_origin: str | None = None
    timeline_data_origin: str | None = None  # the same for the face model of the timeline
    origin_warning: str | None = None  # said beside the answer when a model that gave it learnt from synthetic data

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["timeline"] = None if self.timeline is None else [t.to_dict() for t in self.timeline]
        return d


def top_two(probabilities: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(probabilities.items(), key=lambda kv: (-kv[1], kv[0]))[:2])


def full_probabilities(classes: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Scores over a model's classes (labels 0-7) as probabilities of all 8 emotions, summing to 1."""
    p = np.zeros(len(EMOTION_LABELS), dtype=np.float64)
    p[np.asarray(classes, dtype=int)] = np.clip(np.asarray(scores, dtype=np.float64), 0, None)
    total = p.sum()
    p = p / total if total > 0 else np.full(len(p), 1 / len(p))
    return {label: float(v) for label, v in zip(EMOTION_LABELS, p, strict=True)}
