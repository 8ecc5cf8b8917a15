"""A trained audio run at prediction time: features as in training, speaker statistics as an argument.

The loaded model is never changed by a prediction: the statistics of a group
of one speaker's clips (``--same-speaker``) are a :class:`SpeakerGroup` the
caller passes to each call, so the same model gives the same answer however
often and in whatever order it is called.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from emotion.audio.decode import band_limited, load_audio_rate, unlike_speech
from emotion.audio.normalize import Stats, normalize_for_prediction
from emotion.core.errors import ModelIntegrityError, UsageError
from emotion.core.ids import EMOTION_LABELS
from emotion.core.provenance import origin_of
from emotion.featuresets import make_extractor, params_from_dict
from emotion.models.tuning import predict_copies
from emotion.predict.outcome import full_probabilities


@dataclass(frozen=True)
class SpeakerGroup:
    """The statistics of a group of one speaker's clips for a speaker-normalised model, and what to say about them.

    ``stats`` is None when the group was too small for its own statistics (the pooled training ones are used).
    """

    stats: Stats | None
    note: str


class AudioModel:
    """A trained audio run: its verified estimator and the feature parameters it was trained with.

    ``fallback``: for a speaker-normalised run, the pooled statistics of its
    raw training features (``normalization.json``), used for single files.
    """

    modality = "audio"

    def __init__(self, estimator: Any, info: dict[str, Any], run_dir: str, fallback: Stats | None = None) -> None:
        self.estimator = estimator
        self.info = info
        self.run_dir = run_dir
        self.data_origin = origin_of(info)
        self.speaker_norm = info.get("speaker_norm") not in (None, False, "", "none")
        if self.speaker_norm and fallback is None:
            raise UsageError(f"{run_dir}: the model uses speaker normalisation but its normalization.json "
                             "(pooled training statistics) is missing")
        self.fallback = fallback
        # memoised feature rows of files already read (a --same-speaker pass, then the predictions): never an answer
        self._raw: dict[tuple[bytes, bool], np.ndarray] = {}
        self._unusual: dict[tuple[bytes, bool], str | None] = {}
        self._band: dict[tuple[bytes, bool], str | None] = {}
        known = info.get("emotions") if isinstance(info.get("emotions"), list) else None
        self.known_note = (f"the model knows only {len(known)} emotions ({', '.join(map(str, known))}); the others "
                           "get probability 0" if known and len(known) < len(EMOTION_LABELS) else None)
        try:
            self.params = params_from_dict(info["feature_params"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{run_dir}: run.json records feature parameters this version cannot compute ({exc})") from None
        if info.get("feature_hash") and self.params.hash() != info["feature_hash"]:
            raise ModelIntegrityError(f"{run_dir}: the feature parameters in run.json do not match its feature hash")
        self.extractor = make_extractor(self.params)
        self.copies = self.params.copies
        classes = getattr(estimator, "classes_", None)
        self.classes = np.arange(len(EMOTION_LABELS)) if classes is None else np.asarray(classes, dtype=int)

    @property
    def name(self) -> str:
        return self.run_dir

    def raw_features(self, data: bytes, *, video: bool = False) -> np.ndarray:
        """The feature row of a file's audio, before any normalisation (kept, so a group pass computes it once)."""
        key = (hashlib.sha1(data).digest(), video)
        if key not in self._raw:
            samples, recorded = load_audio_rate(data, self.params.sample_rate, video=video)
            self._raw[key] = np.asarray(self.extractor(samples), dtype=np.float32)
            self._unusual[key] = unlike_speech(samples, self.params.sample_rate)
            self._band[key] = band_limited(recorded, self.params.sample_rate)
        return self._raw[key]

    def unusual(self, data: bytes, *, video: bool = False) -> str | None:
        """Why the file's audio looks unlike the speech the model learnt from, or None (after :meth:`raw_features`)."""
        return self._unusual.get((hashlib.sha1(data).digest(), video))

    def band_note(self, data: bytes, *, video: bool = False) -> str | None:
        """Why the file's audio lacks the upper band the features measure (recorded at a lower sample rate), or None
        (after :meth:`raw_features`)."""
        return self._band.get((hashlib.sha1(data).digest(), video))

    def speaker_group(self, rows: list[np.ndarray]) -> SpeakerGroup | None:
        """The statistics of ``rows``, clips of one speaker, to pass to the predictions of that speaker's files
        (None for a model without speaker normalisation); the model itself is left as it is.

        With too few clips (see :func:`normalize_for_prediction`) the pooled
        training statistics stay in use, and the group's note says why.
        """
        if self.fallback is None:
            return None
        X = np.stack(rows) if rows else np.empty((0, len(self.fallback.mean)), dtype=np.float32)
        _, mode = normalize_for_prediction(X, self.fallback, same_speaker=True) if len(X) else (X, "global-fallback")
        if mode == "speaker":
            return SpeakerGroup(Stats.of(X), f"speaker-normalised by the statistics of the {len(X)} given clips of one "
                                             "speaker (--same-speaker)")
        return SpeakerGroup(None, f"speaker-normalised model: only {len(X)} clip(s) of the speaker (distinct "
                                  "recordings) have a voice (8 needed for their own statistics), so the pooled training "
                                  "statistics were used (less accurate)")

    def predict_row(self, x: np.ndarray, group: SpeakerGroup | None = None) -> dict[str, float]:
        """Probabilities of the 8 emotions for one raw feature row (``group``: its speaker's statistics)."""
        x = np.asarray(x, dtype=np.float32)[None, :]
        if group is not None and group.stats is not None and self.fallback is not None:
            x = group.stats.apply(x)
        elif self.fallback is not None:  # no group of the speaker's clips: the pooled training statistics
            x, _ = normalize_for_prediction(x, self.fallback, same_speaker=False)
        # a row of several vectors (the clip and its augmented copies): probabilities averaged over them
        return full_probabilities(self.classes, predict_copies(self.estimator, x, self.copies)[0])

    def predict_samples(self, samples: np.ndarray, group: SpeakerGroup | None = None) -> dict[str, float]:
        """Probabilities of the 8 emotions for mono samples at ``self.params.sample_rate``."""
        return self.predict_row(self.extractor(samples), group)

    def note(self, group: SpeakerGroup | None = None) -> str | None:
        """What to say about predictions of this model with ``group``, if anything."""
        if self.fallback is None:
            return None
        if group is not None:
            return group.note
        return ("speaker-normalised model: a single file has no group of its speaker's clips, so the pooled training "
                "statistics were used (less accurate; give several clips of one speaker with --same-speaker)")

    def predict_bytes(self, data: bytes, *, video: bool = False, group: SpeakerGroup | None = None) -> dict[str, float]:
        return self.predict_row(self.raw_features(data, video=video), group)
