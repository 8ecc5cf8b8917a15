"""Whether a stored run was trained on the data its store holds now.

A run's ``data_hash`` covers the clips (paths and contents) it was trained and
tested on. The same hash of the store's current data tells whether the data
changed since: a selected run that was not trained again (``emotion train``
with other models) is still what ``emotion predict`` uses.
"""

from __future__ import annotations

from emotion.core.errors import EmotionError
from emotion.core.splits import ActorSplit
from emotion.featuresets import params_from_dict, read_faceless_clips, read_feature_table
from emotion.store.catalog import RunRecord
from emotion.store.store import Store
from emotion.training.audio import split_data
from emotion.training.video import split_frames
from emotion.video.frames import FrameParams


def current_data_hash(store: Store, rec: RunRecord, split: ActorSplit) -> str | None:
    """The ``data_hash`` a run like ``rec`` (its features or frames) would get on ``split`` from the store's data
    now; None where it is not worked out: fused runs, runs that record no parameters, data that cannot be read."""
    try:
        if rec.modality != "fusion" and rec.feature_params:
            params = params_from_dict(rec.feature_params)
            df = read_feature_table(store, params)
            return split_data(df, params.column_names(), split, rec.feature_hash or params.hash(),
                              copies=params.copies, faceless=read_faceless_clips(store, params, df)).data_hash
        if rec.modality == "video" and rec.frame_params:
            return split_frames(store, FrameParams.from_dict(rec.frame_params), split).data_hash
    except (EmotionError, OSError, KeyError, TypeError, ValueError):  # not readable as it was (or now): not known
        return None
    return None


def trained_on_older_data(store: Store, rec: RunRecord, split: ActorSplit) -> bool:
    """Whether ``rec`` was trained on other clips (or other contents) than the store's current data of ``split``."""
    now = current_data_hash(store, rec, split)
    return now is not None and rec.data_hash is not None and now != rec.data_hash
