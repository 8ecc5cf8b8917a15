"""flows.cli.render: what the summaries print (the extract lines, the training table and how it is ordered)."""

from __future__ import annotations

import pytest

from emotion.store.catalog import rank_rows
from flows.cli.render import extract_payload, print_extract, print_train


def _row(model: str, accuracy: float, cv: float) -> dict:
    return {"model": model, "modality": "audio", "accuracy": accuracy, "macro_f1": accuracy, "uar": accuracy,
            "cv_accuracy": cv, "cv_std": 0.01, "n_train": 959, "n_test": 240, "run_dir": f"runs/{model}"}


def test_the_table_is_said_to_be_ranked_by_validation_as_it_is_not_by_test_accuracy(capsys):
    # as on the real proxy split: svc scored higher on the test actors, lr higher in grouped CV (and is chosen)
    models = rank_rows([_row("svc", 0.517, 0.456), _row("lr", 0.496, 0.465)])
    print_train({"split": "train=01-16,test=17-20", "features": "seed", "summary": "S", "models": models})
    lines = capsys.readouterr().out.splitlines()
    assert "models ranked by validation accuracy (never by the test actors)" in lines[0]
    assert "ranked by per-clip accuracy" not in lines[0]
    assert [ln.split()[0] for ln in lines[2:4]] == ["lr", "svc"]


def test_loso_names_the_speed_copies_and_whose_actors_chose_fixed_hyper_parameters(capsys):
    from flows.cli.render import print_loso

    note = "hyper-parameters fixed from the stored run on train=01-16,test=17-20, chosen by grouped CV over its ..."
    row = {"model": "lr", "mean": 0.751, "std": 0.091, "min": 0.567, "max": 0.9, "n_actors": 20, "seconds": 287,
           "per_actor": {"01": 0.83}, "note": note}
    print_loso({"split": "train=01-20,test=21-24", "features": "extended", "augment": [0.9, 1.1], "speaker_norm": True,
                "mode": "fixed", "summary": "S", "models": [row]})
    out = capsys.readouterr().out
    assert "(features extended + copies at 0.9x, 1.1x, speaker-normalised; hyper-parameters fixed)" in out
    assert f"  note: {note}\n" in out and "chosen with these actors" not in out


def test_the_table_names_the_actors_the_data_has_where_the_split_names_more(capsys):
    model = {"model": "lr", "modality": "audio", "accuracy": 0.8, "macro_f1": 0.8, "uar": 0.8, "cv_accuracy": 0.7,
             "cv_std": 0.1, "n_train": 180, "n_test": 60, "run_dir": "RUN"}
    t = {"split": "train=01-20,test=21-24", "split_used": "train=01-06,test=21-22", "summary": "X", "models": [model]}
    print_train(t)
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("split train=01-20,test=21-24 (actors in the data: train=01-06,test=21-22): models ranked by")
    print_train({**t, "split_used": t["split"]})  # the data has every actor of the split: said once
    assert capsys.readouterr().out.splitlines()[0].startswith("split train=01-20,test=21-24: models ranked by")


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


def test_past_twenty_rejects_the_summary_says_where_the_rest_are(capsys):
    rejects = [{"path": f"Actor_01/03-01-0{1 + i % 8}-01-01-0{1 + i // 8 % 2}-01.wav", "reason": f"r{i}",
                "stage": "decode"} for i in range(25)]
    print_extract(extract_payload({"audio": _summary(rejects)}))
    out = capsys.readouterr().out
    assert out.count("  rejected ") == 20 and "OUT" not in out
    assert "  ... and 5 more rejected (--json lists them all; so does the store's rejects/<modality>.parquet)" in out


def test_the_clips_removed_are_named_once_and_listed_in_full_by_json(capsys):
    """The summary said "1 removed" and named no clip (a new user had to read the manifest to find which)."""
    gone = [f"Actor_01/01-01-03-01-01-{i:02d}-01.mp4" for i in range(1, 13)]
    # a clip still there but rejected now: its rows are dropped too, and its reject line says why
    there = {"path": "Actor_01/01-01-03-01-01-13-01.mp4", "reason": "empty file (0 bytes)", "stage": "decode"}
    payload = extract_payload({"audio": {**_summary([there]), "removed": 13, "removed_clips": [*gone, there["path"]]},
                               "video": {**_summary([]), "removed": 12, "removed_clips": gone}})
    assert payload["removed_clips"] == [*gone, there["path"]] and "removed_clips" not in payload["modalities"]["video"]
    print_extract(payload)
    lines = [x for x in capsys.readouterr().out.splitlines() if "removed" in x and not x.startswith("extract")]
    assert lines == [f"  removed {p}: no longer under the data root, its rows dropped" for p in gone[:10]] + [
        "  ... and 2 more removed (--json lists them)"]


def test_clips_recorded_below_the_features_rate_are_noted_with_their_rate(capsys):
    band = [{"path": f"Actor_01/03-01-0{i}-01-01-01-01.wav", "sample_rate": 8000, "features_rate": 22050,
             "note": "recorded at 8000 Hz, ..."} for i in range(1, 8)]
    payload = extract_payload({"audio": {**_summary([]), "band_limited": band}})
    assert payload["band_limited"] == band and "band_limited" not in payload["modalities"]["audio"]
    print_extract(payload)
    notes = [x for x in capsys.readouterr().out.splitlines() if "Hz" in x]
    assert notes == ["  note: 7 clip(s) were recorded at 8000 Hz, below the 22050 Hz their features are computed at: "
                     "nothing above 4000 Hz, unlike full-band recordings (e.g. Actor_01/03-01-01-01-01-01-01.wav; "
                     "--json lists them)"]  # one line, however many clips
    print_extract(extract_payload({"audio": _summary([])}))  # full-band clips: nothing said
    assert "note:" not in capsys.readouterr().out


def test_test_clips_without_a_face_are_named_under_the_table(capsys):
    cnn = {**_row("cnn", 0.4, 0.5), "modality": "video", "n_test": 8, "n_test_clips_without_face": 3}
    print_train({"split": "train=01-16,test=17-20", "summary": "S", "models": [cnn, _row("lr", 0.5, 0.4)]})
    out = capsys.readouterr().out
    assert "cnn: no face in 3 of its 8 test clips (no prediction: counted as wrong)" in out
    assert out.count("no face") == 1


def test_the_selected_model_is_marked_and_one_trained_earlier_is_shown_too(tmp_path, capsys):
    """Audit: `train --model svc,rf` with lr trained earlier listed svc and rf only, none marked; lr (the best grouped
    CV) is what predict uses: shown in its rank, marked selected and trained earlier."""
    from emotion.store.catalog import best_per_modality, collect_runs
    from emotion.store.store import Store
    from flows.run import with_selection
    from tests.emotion.reporting.test_report_html import SPLIT, write_run

    out = tmp_path / "store"
    seed = {"features": "seed", "feature_hash": "4bd90a733487", "feature_params": {"name": "seed"}}
    write_run(out, "lr", "a00000000002", 0.575, cv=0.72, mtime=1000, metrics={"accuracy_single_clip": 0.5},
              **seed)  # trained earlier
    write_run(out, "svc", "a00000000001", 0.65, cv=0.70, mtime=2000, **seed)
    write_run(out, "rf", "a00000000003", 0.70, cv=0.60, mtime=2000, **seed)
    assert best_per_modality(collect_runs(Store(str(out)), SPLIT))["audio"].model == "lr"
    svc = {**_row("svc", 0.65, 0.70), "version": "a00000000001", "accuracy_single_clip": 0.6}
    rf = {**_row("rf", 0.70, 0.60), "version": "a00000000003", "accuracy_single_clip": 0.7}
    t = with_selection(str(out), {"split": "train=01-20,test=21-24", "split_id": SPLIT, "summary": "S",
                                  "models": rank_rows([rf, svc])})
    assert [(r["model"], r["selected"]) for r in t["models"]] == [("svc", False), ("rf", False)]
    assert [(r["model"], r["modality"], r["selected"], r["trained_earlier"]) for r in t["selected_earlier"]] == [
        ("lr", "audio", True, True)]
    assert t["selected_earlier"][0]["run_dir"].endswith(f"runs/{SPLIT}/lr/a00000000002")
    print_train(t)
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[:2] for ln in lines[2:5]] == [["*", "lr"], ["svc", "audio"], ["rf", "audio"]]
    assert lines[2].endswith("lr/a00000000002 (selected, trained earlier)") and "0.575" in lines[2]
    assert lines[5].startswith("  *: selected")
    from emotion.audio.extended import ExtendedFeatureParams
    from flows.run import recipe

    print_train({**t, "recipe": recipe(ExtendedFeatureParams(), True)})
    assert "one clip at a time: lr 0.500, svc 0.600, rf 0.700\n" in capsys.readouterr().out  # the table's order
    # trained here and selected: marked, nothing added
    t = with_selection(str(out), {**t, "models": [{**_row("lr", 0.575, 0.72), "version": "a00000000002"}, svc]})
    assert [r["selected"] for r in t["models"]] == [True, False] and t["selected_earlier"] == []
    print_train(t)
    assert capsys.readouterr().out.splitlines()[2].startswith("* lr ")


def test_train_prints_the_single_clip_accuracy_beside_what_speaker_normalisation_assumes(capsys):
    """Audit: only `run` printed the assumption and accuracy_single_clip; `train` (and `evaluate --speaker-norm`)
    printed neither."""
    from emotion.audio.extended import ExtendedFeatureParams
    from flows.cli.render import print_loso
    from flows.run import recipe

    lr = {**_row("lr", 0.654, 0.715), "accuracy_single_clip": 0.521, "selected": True}
    t = {"split": "train=01-16,test=17-20", "features": "extended", "speaker_norm": True, "summary": "S",
         "models": [lr], "recipe": recipe(ExtendedFeatureParams(speeds=(0.9, 1.1)), True)}
    print_train(t)
    out = capsys.readouterr().out
    assert "  recipe:  extended features + augmentation (0.9x, 1.1x speed copies) + speaker normalisation" in out
    note = next(line for line in out.splitlines() if line.startswith("  note:"))
    assert "each test speaker's clips are normalised together" in note and note.endswith("one clip at a time: lr 0.521")
    print_train({**t, "recipe": recipe(ExtendedFeatureParams(), False)})  # no normalisation: nothing assumed
    assert "note:" not in capsys.readouterr().out
    row = {"model": "lr", "mean": 0.751, "std": 0.091, "min": 0.567, "max": 0.9, "n_actors": 20, "seconds": 287,
           "per_actor": {"01": 0.83}}
    loso = {"split": "train=01-20,test=21-24", "features": "extended", "speaker_norm": True, "mode": "nested",
            "summary": "S", "models": [row]}
    print_loso(loso)
    assert "each test speaker's clips are normalised together" in capsys.readouterr().out
    print_loso({**loso, "speaker_norm": False})
    assert "normalised together" not in capsys.readouterr().out


def _faces(**extra) -> dict:
    return {"feature_set": "landmarks-k", "frames": 30, "frames_with_face": 30, "face_rate": 1.0,
            "clips_without_face": [], "n_clips_with_several_faces": 0, "clips_with_several_faces": [],
            "n_clips_faces_unknown": 0, "n_clips_track_switched": 0, "clips_track_switched": [],
            "n_clips_track_unknown": 0, **extra}


def test_clips_whose_face_track_switched_person_are_named_with_a_request_to_check_their_crops(capsys):
    switched = [f"Actor_01/02-01-0{i}-01-01-01-01.mp4" for i in range(1, 8)] + [
        f"Actor_02/02-01-0{i}-01-01-01-02.mp4" for i in range(1, 6)]
    print_extract(extract_payload({"video": {**_summary([]), "faces": _faces(
        n_clips_track_switched=len(switched), clips_track_switched=switched)}}))
    lines = capsys.readouterr().out.splitlines()
    i = lines.index("  faces: 12 clip(s) lose the face they follow in a kept frame and go on with another; check "
                    "their crops, which may show someone other than the speaker from there on")
    assert lines[i + 1 : i + 12] == [f"    track switched person in {p}" for p in switched[:10]] + [
        "    ... and 2 more (--json lists them)"]
    print_extract(extract_payload({"video": {**_summary([]), "faces": _faces(n_clips_track_unknown=3)}}))
    out = capsys.readouterr().out
    assert ("  faces: 3 clip(s) were stored without a record of whether their face track switched person "
            "(`emotion extract --full` records it)\n") in out
    assert "lose the face" not in out
    # a store from before both records: one line, not two with the same advice
    print_extract(extract_payload({"video": {**_summary([]), "faces": _faces(n_clips_faces_unknown=3,
                                                                            n_clips_track_unknown=3)}}))
    out = capsys.readouterr().out
    assert out.count("`emotion extract --full`") == 1 and ("  faces: 3 clip(s) were stored without the number of "
                                                          "faces in their frames or a record of whether their face "
                                                          "track switched person (`emotion extract --full` adds both)"
                                                          "\n") in out, out
    print_extract(extract_payload({"video": {**_summary([]), "faces": _faces()}}))  # no switch, all recorded
    assert "switch" not in capsys.readouterr().out


def test_the_header_of_a_landmarks_training_calls_its_features_video_as_its_rows_do(capsys):
    """`emotion train --features landmarks` printed "(audio features landmarks)" above a row "lr/landmarks video"."""
    row = {**_row("lr", 0.9, 0.8), "modality": "video", "features": "landmarks"}
    print_train({"split": "train=01-20,test=21-24", "features": "landmarks", "speaker_norm": False, "summary": "S",
                 "models": [row]})
    lines = capsys.readouterr().out.splitlines()
    assert "(video features landmarks)" in lines[0] and "audio" not in lines[0]
    assert lines[2].split()[:2] == ["lr/landmarks", "video"]
    print_train({"split": "train=01-20,test=21-24", "features": "seed", "summary": "S", "models": [_row("lr", 0.9, 0.8)]})
    assert "(audio features seed)" in capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize("workers, chunks, threads, line", [
    (1, 1, 1, "  on 1 Dask worker, up to 1 chunk in flight (1 worker thread)"),
    (2, 6, 4, "  on 2 Dask workers, up to 6 chunks in flight (4 worker threads)"),
])
def test_the_cluster_line_of_extract_has_its_singulars_and_plurals_right(workers, chunks, threads, line, capsys):
    """It said "up to 1 chunks in flight (1 worker threads)"."""
    s = {**_summary([]), "n_workers": workers, "max_in_flight": chunks, "cluster_threads": threads}
    print_extract(extract_payload({"audio": s}))
    assert line in capsys.readouterr().out.splitlines()


def test_a_selected_run_trained_on_older_data_is_marked_and_said_to_be_what_predict_uses(capsys):
    """A walkthrough: `emotion train --model svc` after clips changed listed lr (trained before, on the old clips) as
    selected, and nothing said predict would use a model of the old data."""
    lr = {**_row("lr", 0.9, 0.675), "version": "v1", "selected": True, "trained_earlier": True, "older_data": True,
          "features": "seed", "feature_set": "seed-4bd90a733487"}
    print_train({"split": "train=01-03,test=21", "summary": "S", "models": [_row("svc", 0.897, 0.633)],
                 "selected_earlier": [lr]})
    out = capsys.readouterr().out
    assert "runs/lr (selected, trained earlier on older data)\n" in out
    assert ("  note: the selected audio model lr was not trained on the store's current clips of this split; `emotion "
            "predict` uses it as it is until it is trained again (`emotion train` with --model lr --features seed, and "
            "the search settings it had)\n") in out
    print_train({"split": "train=01-03,test=21", "summary": "S", "models": [_row("svc", 0.897, 0.633)],
                 "selected_earlier": [{**lr, "older_data": False}]})
    out = capsys.readouterr().out
    assert "runs/lr (selected, trained earlier)\n" in out and "note:" not in out


def test_a_selected_run_of_another_feature_set_is_named_with_its_set_in_the_table_and_notes(capsys):
    """A walkthrough: extended lr (trained earlier, selected) beside this call's seed lr: two rows read `lr`, and so
    did the one-clip-at-a-time note."""
    ext = {**_row("lr", 0.658, 0.717), "version": "e", "selected": True, "trained_earlier": True,
           "features": "extended", "speaker_norm": True, "accuracy_single_clip": 0.617}
    seed = {**_row("lr", 0.5, 0.5), "features": "seed", "speaker_norm": True, "accuracy_single_clip": 0.479}
    plain = {**_row("svc", 0.46, 0.45), "features": "seed", "speaker_norm": False, "accuracy_single_clip": 0.463}
    t = {"split": "train=01-16,test=17-20", "features": "seed", "speaker_norm": True, "summary": "S",
         "models": [seed, plain], "selected_earlier": [ext],
         "recipe": {"description": "seed", "assumes": "each test speaker's clips are normalised together"}}
    print_train(t)
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[:2] for ln in lines[2:5]] == [["*", "lr/extended"], ["lr", "audio"], ["svc/seed-norm", "audio"]]
    assert "one clip at a time: lr/extended 0.617, lr 0.479, svc/seed-norm 0.463" in "\n".join(lines)


def test_a_selected_run_with_other_copies_is_told_apart_and_its_retraining_names_them(capsys):
    """A review: an extended lr with augmentation (selected, trained earlier) beside this call's plain extended lr:
    both read `lr`, and the note's command lacked --augment and --speaker-norm."""
    from flows.cli.render import retrain_options

    aug = {**_row("lr", 0.66, 0.72), "version": "e", "selected": True, "trained_earlier": True, "older_data": True,
           "features": "extended", "feature_set": "extended-1", "augment": [0.9, 1.1], "speaker_norm": True}
    plain = {**_row("lr", 0.6, 0.6), "features": "extended", "feature_set": "extended-1", "augment": [],
             "speaker_norm": True}
    print_train({"split": "train=01-16,test=17-20", "features": "extended", "speaker_norm": True, "summary": "S",
                 "models": [plain], "selected_earlier": [aug]})
    out = capsys.readouterr().out
    assert [ln.split()[:2] for ln in out.splitlines()[2:4]] == [["*", "lr/extended+aug"], ["lr", "audio"]]
    assert "(`emotion train` with --model lr --features extended --augment 0.9,1.1 --speaker-norm, and" in out
    assert retrain_options({"model": "cnn", "modality": "video", "features": "face96"}) == "--model cnn"
    assert retrain_options({"model": "lr", "modality": "video", "features": "landmarks"}) == (
        "--model lr --features landmarks")


def test_clips_without_audio_are_called_video_only_only_where_their_names_say_so(capsys):
    """A review: a clip named 01 (audio and video) whose mp4 has no audio track was counted as video-only."""
    video_only = [{"path": f"Actor_01/02-01-0{i}-01-01-01-01.mp4", "reason": "a video-only clip (modality 02)",
                   "stage": "id"} for i in (1, 2)]
    silent = {"path": "Actor_01/01-01-03-01-01-01-01.mp4", "reason": "no audio track in the file", "stage": "decode"}
    print_extract(extract_payload({"audio": {**_summary([]), "no_audio": 3, "no_audio_clips": [*video_only, silent]}}))
    out = capsys.readouterr().out.splitlines()
    assert ", 3 without audio (2 video-only, 1 listed below) in" in out[0]
    assert f"  no audio features for {silent['path']}: {silent['reason']}" in out
    print_extract(extract_payload({"audio": {**_summary([]), "no_audio": 2, "no_audio_clips": video_only}}))
    assert ", 2 without audio (video-only) in" in capsys.readouterr().out
    print_extract(extract_payload({"audio": _summary([])}))
    assert ", 0 without audio in" in capsys.readouterr().out
