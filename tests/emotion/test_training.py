"""Splitting the feature table for training: one row per recording."""

from __future__ import annotations

import pandas as pd

from emotion.ids import parse_id
from emotion.training import one_row_per_recording


def _table(stems: list[str]) -> pd.DataFrame:
    return pd.DataFrame([{"path": f"{s}.x", **parse_id(f"{s}.wav").labels()} for s in stems])


def test_speech_track_of_an_av_clip_is_dropped_when_its_audio_only_twin_is_there():
    df = _table(["03-01-05-01-01-01-12", "01-01-05-01-01-01-12",  # the same recording twice
                 "01-01-06-01-01-01-12",  # an audio-video clip without an audio-only twin: kept
                 "03-01-05-01-01-01-13"])
    out = one_row_per_recording(df)
    assert sorted(out["path"]) == ["01-01-06-01-01-01-12.x", "03-01-05-01-01-01-12.x", "03-01-05-01-01-01-13.x"]


def test_tables_without_av_clips_are_unchanged():
    df = _table(["03-01-05-01-01-01-12", "03-01-05-01-01-02-12"])
    assert one_row_per_recording(df) is df
