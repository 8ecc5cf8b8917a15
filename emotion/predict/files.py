"""Predicting a list of files: each one's outcome or its one-line error; the others go on."""

from __future__ import annotations

import hashlib
from pathlib import Path

from emotion.core.errors import EmotionError, RejectedInput
from emotion.core.ids import Modality, try_parse_id
from emotion.core.progress import ProgressFn, report
from emotion.predict.combine import predict_file, read_file
from emotion.predict.outcome import Prediction
from emotion.predict.runs import Predictors
from emotion.store.sources import VIDEO_EXTENSIONS, extension


def predict_files(paths: list[str], predictors: Predictors, *, same_speaker: bool = False,
                  progress: ProgressFn | None = None) -> list[Prediction | tuple[str, str]]:
    """Every file's prediction, or ``(file, error)`` for a file that cannot be used; the others go on.

    ``same_speaker``: the files are clips of one speaker, so a
    speaker-normalised audio model standardises them by their own statistics.
    ``progress`` hears of the start, then of every file done.
    """
    report(progress, "predict", 0, len(paths), "files")  # the clock of the display starts here, not at the first file
    speaker = None
    if same_speaker and predictors.audio is not None:
        rows = []
        # one recording given twice counts once (its statistics would shrink to nothing): the same bytes, or the same
        # RAVDESS recording under two files (an audio-video clip's track is its audio-only clip: the 03 file counts,
        # as in training; where it cannot be read, the recording's other clip counts instead)
        seen: set[bytes] = set()
        ids = {p: try_parse_id(Path(p).name) for p in paths}
        later = {p: not (i is not None and i.modality is Modality.AUDIO_ONLY) for p, i in ids.items()}
        counted: set[tuple[int, ...]] = set()
        for p in sorted(paths, key=later.__getitem__):  # the 03 files first, each kind in the order given
            rid = ids[p]
            recording = rid.recording if rid is not None else None
            if recording is not None and recording in counted:
                continue
            try:
                data = read_file(p)
                digest = hashlib.sha256(data).digest()
                if digest in seen:
                    continue
                rows.append(predictors.audio.raw_features(data, video=extension(p) in VIDEO_EXTENSIONS))
                seen.add(digest)
                if recording is not None:
                    counted.add(recording)
            except EmotionError:  # unreadable or without a voice: reported by the pass below
                continue
        speaker = predictors.audio.speaker_group(rows)  # an argument of each prediction: the model is unchanged
    out: list[Prediction | tuple[str, str]] = []
    for i, p in enumerate(paths):
        try:
            out.append(predict_file(p, predictors, speaker))
        except RejectedInput as exc:
            out.append((p, exc.reason))
        except EmotionError as exc:
            out.append((p, " ".join(str(exc).split())))
        report(progress, "predict", i + 1, len(paths), "files")
    return out
