"""What the extract summary prints."""

from __future__ import annotations

from flows.cli.render import extract_payload, print_extract


def _summary(rejects: list[dict]) -> dict:
    return {"processed": 1, "skipped": 0, "removed": 0, "rejected": len(rejects), "seconds": 0.1, "workers": [],
            "feature_set": "k", "no_audio": 0, "rejects": rejects, "no_audio_clips": []}


def test_a_file_both_modalities_reject_for_one_reason_is_named_once(capsys):
    empty = {"path": "Actor_01/01-01-03-01-01-02-01.mp4", "reason": "empty file (0 bytes)", "stage": "decode"}
    no_video = {"path": "Actor_02/01-01-06-01-01-02-02.mp4", "reason": "no video stream in the file", "stage": "decode"}
    payload = extract_payload({"audio": _summary([empty]), "video": _summary([empty, no_video])})
    assert len(payload["rejects"]) == 3  # the machine-readable summary keeps one row per modality
    print_extract(payload)
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("  rejected")]
    assert lines == [f"  rejected {empty['path']}: {empty['reason']}",
                     f"  rejected {no_video['path']}: {no_video['reason']}"]
