"""One file's outcome from the models at hand: fused voice+face, the face, the voice, and the notes that say which."""

from __future__ import annotations

import itertools
import os
from collections import Counter
from pathlib import Path

from emotion.core.errors import NoAudioError, NoFaceError, NoVideoError, RejectedInput
from emotion.core.ids import EMOTION_LABELS, try_parse_id
from emotion.core.provenance import warning_for
from emotion.predict.audio import SpeakerGroup
from emotion.predict.face import ZeroShotFaceModel
from emotion.predict.outcome import Prediction
from emotion.predict.runs import Predictors
from emotion.store.sources import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, extension, max_file_bytes, read_local_file

SUPPORTED_EXTENSIONS = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS


def read_file(path: str) -> bytes:
    if "://" in path:  # (the store may be on object storage; the files to predict are read here)
        raise RejectedInput(f"{path.split('://', 1)[0]}:// files are not read: predict reads files of this machine "
                            "(copy it here first)")
    p = Path(path)
    ext = extension(p.name)
    if p.is_dir():  # e.g. a shell glob that caught the actor folders
        raise RejectedInput(f"a folder, not a file: {_files_of(path)}")
    if ext not in SUPPORTED_EXTENSIONS:
        raise RejectedInput(f"unsupported file type {ext or '(none)'!r}: expected .wav, .flac or .mp4")
    return read_local_file(str(p), max_file_bytes(p.name), missing="file not found")


def _files_of(folder: str, look_at: int = 10_000) -> str:
    """What to give instead of ``folder``: a pattern of the kind of file it holds most of (a folder of FLAC files
    was told ``*.mp4``), or that it holds none directly."""
    kinds: Counter[str] = Counter()
    try:
        with os.scandir(folder) as entries:
            for entry in itertools.islice(entries, look_at):
                if extension(entry.name) in SUPPORTED_EXTENSIONS and entry.is_file():
                    kinds[extension(entry.name)] += 1
    except OSError:
        pass
    if not kinds:
        return "give .wav, .flac or .mp4 files (it holds none directly)"
    return f"give its .wav, .flac or .mp4 files (e.g. {folder.rstrip('/')}/*{kinds.most_common(1)[0][0]})"


def _note_band(pred: Prediction, band: str | None) -> None:
    """The note for a voice recorded below the features' sample rate (once, whichever model read it)."""
    note = f"note: the voice was {band}: the answer may be less sure"
    if band and note not in pred.notes:
        pred.notes.append(note)


def predict_file(path: str, predictors: Predictors, speaker: SpeakerGroup | None = None) -> Prediction:
    """The emotion of one file; raises :class:`RejectedInput` (one-line reason) for a file that cannot be read.

    ``speaker``: the statistics of a group of the file's speaker's clips, for a speaker-normalised audio model.
    """
    data = read_file(path)
    rid = try_parse_id(Path(path).name)
    pred = Prediction(file=path, emotion=None, probabilities=None, model=None,
                      label=rid.emotion.label if rid else None)
    video = extension(path) in VIDEO_EXTENSIONS
    audio_p: dict[str, float] | None = None
    audio_absent: str | None = None
    if predictors.audio is not None:
        try:
            audio_p = predictors.audio.predict_bytes(data, video=video, group=speaker)
        except NoAudioError as exc:
            audio_absent = exc.reason
        else:
            pred.unlike_speech = predictors.audio.unusual(data, video=video)
            if pred.unlike_speech:
                pred.notes.append(f"warning: input unlike the training speech: {pred.unlike_speech}; the answer "
                                  "means little")
            _note_band(pred, predictors.audio.band_note(data, video=video))
            if predictors.audio.known_note:
                pred.notes.append(predictors.audio.known_note)
    video_p: dict[str, float] | None = None
    no_face: str | None = None
    if video and predictors.video is not None:
        try:
            video_p, pred.timeline = predictors.video.predict_video(data)
        except (NoFaceError, NoVideoError) as exc:  # an audio-only mp4: its voice is still used
            no_face = _face_unused(exc)
        else:
            pred.timeline_model = predictors.video.name
            faceless = sum(not t.face for t in pred.timeline or ())
            if faceless:
                n = len(pred.timeline or ())
                pred.notes.append(f"face found in {n - faceless} of the {n} kept frames: the face's outcome is from "
                                  "those")
            if pred.timeline is None:  # a feature model on the landmarks' statistics over the clip
                pred.notes.append(f"the face model {predictors.video.name.split(' (')[0]} reads the clip's landmark "
                                  "statistics as a whole: no per-frame timeline (a frame model's, cnn or fer, gives "
                                  "one: give its run folder as --model)")
            top = max(video_p.items(), key=lambda kv: (kv[1], -EMOTION_LABELS.index(kv[0])))
            pred.timeline_outcome = {"emotion": top[0], "probability": top[1]}
            if isinstance(predictors.video, ZeroShotFaceModel):
                pred.notes.append("face read by the pretrained FER2013 model, zero-shot: no face model was trained "
                                  "on RAVDESS here (calm is never predicted)")
    fused = band = None
    if video and predictors.fusion is not None and no_face is None:
        try:
            fused, absent, band = predictors.fusion.predict_data(data)
        except (NoFaceError, NoVideoError) as exc:  # no face model ran before it: the fused model finds it out
            no_face = _face_unused(exc)
    if fused is not None:
        pred.probabilities, pred.model = fused, predictors.fusion.name  # type: ignore[union-attr]
        if absent is None:
            pred.modalities_used = ["audio", "video"]
            _note_band(pred, band)
        else:
            audio_absent = audio_absent or absent
            pred.modalities_used = ["video"]
            pred.notes.append("fused model without a voice: predicted from the face alone")
    elif audio_p is not None and video_p is not None and isinstance(predictors.video, ZeroShotFaceModel):
        # a trained voice model beats an untrained face model: the outcome is the voice's, the face's is in the timeline
        pred.probabilities, pred.model, pred.modalities_used = audio_p, predictors.audio.name, ["audio"]  # type: ignore[union-attr]
        if predictors.audio is not None and (note := predictors.audio.note(speaker)):
            pred.notes.append(note)
        top_face = max(video_p.items(), key=lambda kv: kv[1])
        pred.notes.append(f"outcome from the trained voice model; the zero-shot face alone says {top_face[0]} "
                          f"({top_face[1]:.2f})")
    elif audio_p is not None and video_p is not None:
        # no fused model: the outcome is the face model's, and the voice model's verdict is reported in the notes
        pred.probabilities, pred.model, pred.modalities_used = video_p, predictors.video.name, ["video"]  # type: ignore[union-attr]
        top_audio = max(audio_p.items(), key=lambda kv: kv[1])
        pred.notes.append(f"no fused model: outcome from the face; the voice alone says {top_audio[0]} ({top_audio[1]:.2f})")
    elif audio_p is not None:
        pred.probabilities, pred.model, pred.modalities_used = audio_p, predictors.audio.name, ["audio"]  # type: ignore[union-attr]
        if predictors.audio is not None and (note := predictors.audio.note(speaker)):
            pred.notes.append(note)
    elif video_p is not None:
        pred.probabilities, pred.model, pred.modalities_used = video_p, predictors.video.name, ["video"]  # type: ignore[union-attr]
    if audio_absent is not None:
        pred.notes.insert(0, f"audio absent: {audio_absent}")
    if predictors.audio is None and predictors.fusion is None:
        where = predictors.elsewhere.get("audio")
        pred.notes.append("no audio model: the voice is not used" + (f" ({where})" if where else ""))
    if no_face is not None:
        pred.notes.append(no_face)
    elif video and predictors.video is None and predictors.fusion is None:
        pred.notes.append("no video model: the face is not used")
    if pred.probabilities is None:
        pred.notes.append("no prediction: no model could read this file")
    if pred.probabilities is not None:
        pred.emotion = max(pred.probabilities.items(), key=lambda kv: (kv[1], -EMOTION_LABELS.index(kv[0])))[0]
    _origins(pred, predictors)
    return pred


def _face_unused(exc: NoFaceError | NoVideoError) -> str:
    """Why the face of an mp4 is not used (no face in its frames, or no video stream at all)."""
    return exc.reason if isinstance(exc, NoFaceError) else f"{exc.reason}: the face is not used"


def _origins(pred: Prediction, predictors: Predictors) -> None:
    """Where the models behind ``pred`` learnt, and the warning when one of them learnt from synthetic data."""
    models = [m for m in (predictors.fusion, predictors.audio, predictors.video) if m is not None]
    by_name = {m.name: m for m in reversed(models)}
    if pred.model in by_name:
        pred.data_origin = getattr(by_name[pred.model], "data_origin", None)
    if pred.timeline_model in by_name:
        pred.timeline_data_origin = getattr(by_name[pred.timeline_model], "data_origin", None)
    # the outcome, the timeline and the voice's own verdict in the notes are all answers
    used = [m for m in models if m.name in (pred.model, pred.timeline_model)
            or (m is predictors.audio and any("voice alone says" in n for n in pred.notes))]
    pred.origin_warning = next((w for m in used if (w := warning_for(getattr(m, "data_origin", None)))), None)
