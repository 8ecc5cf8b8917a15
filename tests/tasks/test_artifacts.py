"""tasks.artifacts: what the extraction publishes to the Prefect UI (artifact calls captured, no server)."""

from __future__ import annotations

import tasks.artifacts as artifacts


def test_the_video_counts_say_how_many_clips_show_several_faces_and_how_many_tracks_switched(monkeypatch):
    tables: dict[str, list[dict]] = {}
    monkeypatch.setattr(artifacts, "create_table_artifact", lambda rows, key, description: tables.update({key: rows}))
    monkeypatch.setattr(artifacts, "create_markdown_artifact", lambda *a, **k: None)
    faces = {"n_clips_with_several_faces": 3, "n_clips_track_switched": 1, "clips_track_switched": ["Actor_01/a.mp4"]}
    summary = {"processed": 5, "skipped": 0, "removed": 0, "rejected": 0, "rejects": [], "feature_set": "face256-k",
               "seconds": 1.0, "faces": faces}
    artifacts.publish_extract("video", summary, "DATA")
    [row] = tables["video-extract-counts"]
    assert row["clips with more than one face"] == 3 and row["clips whose face track switched person"] == 1
    artifacts.publish_extract("video", {**summary, "faces": {}}, "DATA")  # whole frames or Haar crops: no such rows
    assert not {"clips with more than one face", "clips whose face track switched person"} & set(
        tables["video-extract-counts"][0])
