"""Predicting the emotion of new files with a trained model (no Prefect, no Dask).

``.wav``, ``.flac`` and ``.mp4`` files are read whatever their name (a RAVDESS
name is not needed; when there is one, its emotion is reported as ``label``).
The audio of an mp4 is its speech track, decoded like in extraction; a
video-only clip (silent or missing track) gets the note ``audio absent``.

Which model: :func:`load_predictors` takes either a run folder (or the model
file inside it, beside its ``run.json``) or a store. In a store, the split is
the one asked for, else the default split (``train01-20_test21-24``) when it
has runs, else the split with the newest run; within it, the newest run per
model (as in the report) with the best grouped-CV accuracy on the train
actors (:func:`emotion.store.catalog.best_per_modality`, the rule of the summary and the report).
A model is loaded only
after its file's SHA-256 matches the one recorded in ``run.json``; features
are computed with the parameters recorded there, of whichever feature set
(``seed``, ``extended``, openSMILE). A speaker-normalised audio model needs a
group of clips of the speaker: with ``same_speaker`` (the files given are one
speaker's clips) and at least 8 of them with a voice, their features are
standardised by their own statistics; otherwise (one file, or too few) with
the pooled training statistics saved beside the run (``normalization.json``,
:func:`emotion.audio.normalize.normalize_for_prediction`), and the notes say so:
such predictions are less accurate.

For an mp4, the outcome comes from the fused voice+face model when the store
has one (from the face alone when the clip has no voice, and the notes say
so), else from the face model, else from the voice model; the face model, when
there is one, gives the per-frame timeline (time, top two emotions).
:data:`LOADERS` maps a run's ``modality`` to the function that loads it.

Modules: :mod:`.runs` (choosing and loading runs), :mod:`.audio` and :mod:`.face` (the models of each modality),
:mod:`.combine` (one file's outcome from them), :mod:`.files` (the loop over files), :mod:`.outcome` (what is said).
"""

from emotion.predict.audio import AudioModel, SpeakerGroup
from emotion.predict.combine import SUPPORTED_EXTENSIONS, predict_file, read_file
from emotion.predict.face import FusionRunModel, LandmarkRunModel, VideoModel, VideoRunModel, ZeroShotFaceModel
from emotion.predict.files import predict_files
from emotion.predict.outcome import Prediction, TimelinePoint, full_probabilities, top_two
from emotion.predict.runs import (
    DEFAULT_SPLIT_ID,
    LOADERS,
    Predictors,
    choose_runs,
    load_audio_run,
    load_model_path,
    load_predictors,
    load_video_run,
    run_modality,
)

__all__ = [
    "DEFAULT_SPLIT_ID", "LOADERS", "SUPPORTED_EXTENSIONS", "AudioModel", "FusionRunModel", "LandmarkRunModel",
    "Prediction", "Predictors", "SpeakerGroup", "TimelinePoint", "VideoModel", "VideoRunModel", "ZeroShotFaceModel",
    "choose_runs", "full_probabilities", "load_audio_run", "load_model_path", "load_predictors", "load_video_run",
    "predict_file", "predict_files", "read_file", "run_modality", "top_two",
]
