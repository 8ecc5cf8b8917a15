"""The run catalog: versions as earlier releases computed them, the typed record, the selection rule."""

from __future__ import annotations

import json
import math

from emotion.core.splits import ActorSplit
from emotion.models.catalog import MODELS, SearchParams
from emotion.store import catalog
from emotion.store.catalog import SELECTION_RULE, RunRecord, best_per_modality, ranked
from emotion.training.audio import run_version
from emotion.training.fusion import fusion_version
from emotion.training.video import video_run_version

SPLIT = ActorSplit.parse("train=1-20,test=21-24")


def test_run_versions_are_those_earlier_releases_computed():
    """Computed by the code before the run catalog (commit 9ccc2ca): existing stores' runs are reused, not retrained."""
    assert run_version("svc", SPLIT, SearchParams(), "abc123", "data456") == "676111b6b1d2"
    assert run_version("svc", SPLIT, SearchParams(), "abc123", "data456", True) == "4c99bdb6e276"
    assert run_version("lr", SPLIT, SearchParams(), "abc123", "data456", True) == "9cad23e5d3a7"
    # the spectrogram CNN: one revision up since its augmentation draws each random value apart (before:
    # 1ce692b6b10e); its runs of the first revision are trained again, those of the other audio models are reused
    assert run_version("melcnn", SPLIT, SearchParams(), "abc123", "data456", True) == "b12aaf37ac78"
    # frame models: one revision up since their training is repeatable (before: 2f96460fda21); runs of the first
    # revision depended on the machine, the process and the store's layout, and are retrained once
    assert video_run_version("cnn", {"epochs": 3, "seed": 0}, SPLIT, "face96-every20-1a2b", "data456") == "4f618cbca41d"
    # fused runs: one revision up since their CV score is the whole model's nested grouped CV (before: ee9a44baeb3f,
    # 94e8dac29b24); runs scored the old way are retrained rather than compared with the new ones
    assert fusion_version("late", {"n_audio": 5}, SPLIT, "seed-abc", "face96-x", "data456") == "cac006d147cf"
    assert fusion_version("late", {"n_audio": 5}, SPLIT, "seed-abc", "face96-x", "data456", True) == "744b7ef24c03"


def test_only_melcnn_runs_have_a_new_revision():
    """The other audio models' versions are those without a revision (1): their stored runs stay valid."""
    for model in MODELS:
        for norm in (False, True):
            before = catalog.run_version(model, SPLIT.id, search=SearchParams().to_dict(), feature_hash="abc123",
                                         data_hash="data456", **({"speaker_norm": True} if norm else {}))
            now = run_version(model, SPLIT, SearchParams(), "abc123", "data456", norm)
            assert (now != before) == (model == "melcnn"), model


def test_a_run_json_of_an_earlier_release_reads_with_absent_fields_none():
    first = RunRecord.from_dict({"model": "svc", "version": "abc", "feature_params": {"n_mfcc": 40}},
                                {"accuracy": 0.5})
    assert (first.modality, first.features, first.speaker_norm, first.cv_accuracy, first.model_sha256) == (
        "audio", None, None, None, None)
    assert first.accuracy == 0.5 and first.augment == ()
    # a fused run.json as the release before the catalog wrote it (its metrics.json: cv_accuracy NaN)
    info = {"model": "fusion-late", "modality": "fusion", "method": "late", "version": "ee9a44baeb3f",
            "split": str(SPLIT), "split_id": SPLIT.id, "feature_params": {"name": "seed"}, "feature_hash": "abc",
            "frame_params": {"every": 20}, "frames_key": "face96-x", "data_hash": "d",
            "estimator_params": {"n_audio": 5}, "fit_seconds": 1.0, "classes": [],
            "model_file": {"file": "model.skops", "format": "skops", "sha256": "17c3"}}
    metrics = json.loads('{"accuracy": 0.9, "cv_accuracy": NaN, "cv_std": 0.0, "n_train": 10}')
    fused = RunRecord.from_dict(info, metrics)
    assert (fused.modality, fused.model_file, fused.model_sha256, fused.params) == (
        "fusion", "model.skops", "17c3", {"n_audio": 5})
    assert fused.cv_accuracy is None and fused.accuracy == 0.9 and fused.speaker_norm is None and fused.uar is None
    assert RunRecord.from_dict(fused.to_dict()).to_dict() == fused.to_dict()


def _run(model: str, modality: str, cv: float | None, acc: float, version: str = "v") -> RunRecord:
    return RunRecord.from_dict({"model": model, "version": version, "modality": modality},
                               {"accuracy": acc, "cv_accuracy": cv, "cv_std": 0.0})


def test_selection_is_by_grouped_cv_and_runs_without_a_score_never_win():
    svc, rf = _run("svc", "audio", 0.90, 0.96), _run("rf", "audio", 0.94, 0.90)
    early, late = _run("fusion-early", "fusion", math.nan, 0.99), _run("fusion-late", "fusion", 0.80, 0.70)
    stack = _run("fusion-stack", "fusion", None, 0.98)
    best = best_per_modality([svc, early, rf, stack, late])
    assert best["audio"] is rf and best["fusion"] is late
    assert math.isnan(early.metrics["cv_accuracy"]) and early.cv_accuracy is None
    # without any score, the order is by name, whatever order the runs come in (never a NaN comparison)
    assert [r.model for r in ranked([stack, early])] == [r.model for r in ranked([early, stack])] == [
        "fusion-early", "fusion-stack"]
    assert "grouped-CV" in SELECTION_RULE


def test_scores_written_as_null_read_back_as_nan_as_training_computed_them(tmp_path):
    """metrics.json is strict JSON (no score: null); a run read back from the store has NaN there, as the training
    code computed it and as every formatter of the metrics expects (a fused run's summary once failed on None)."""
    from emotion.store.catalog import read_run, split_dir
    from emotion.store.store import Store

    store = Store(str(tmp_path))
    folder = f"{split_dir(store, SPLIT.id)}/fusion-late/f00000000001"
    metrics = {"accuracy": 0.9, "cv_accuracy": math.nan, "cv_std": math.nan, "n_train": 10, "note": None,
               "audio_visual_clips": {"fused": math.nan, "audio_only": 0.5, "n": 3}}
    store.write_json(f"{folder}/metrics.json", metrics)
    assert store.read_json(f"{folder}/metrics.json")["cv_accuracy"] is None  # on disk: null
    store.write_json(f"{folder}/run.json", {"model": "fusion-late", "modality": "fusion", "version": "f00000000001"})
    r = read_run(store, SPLIT.id, "fusion-late/f00000000001")
    assert r is not None and r.cv_accuracy is None and r.accuracy == 0.9
    assert math.isnan(r.metrics["cv_accuracy"]) and math.isnan(r.metrics["cv_std"]) and r.metrics["note"] is None
    assert math.isnan(r.metrics["audio_visual_clips"]["fused"]) and r.metrics["audio_visual_clips"]["n"] == 3


def test_a_nested_loso_result_of_another_training_revision_is_kept_apart():
    """melcnn's training moved to revision 2: its nested LOSO results of revision 1 sat at the same path and showed as
    current. The first revision's settings (every other model's) hash as before."""
    from emotion.store.catalog import loso_settings, loso_settings_hash

    search = {"n_iter": 10, "cv_folds": 3, "refine": True, "seed": 0}
    assert loso_settings("nested", search) == {"mode": "nested", **search}  # as written before revisions existed
    assert loso_settings_hash(loso_settings("nested", search, revision=1)) == loso_settings_hash(
        {"mode": "nested", **search})
    assert loso_settings_hash(loso_settings("nested", search, revision=2)) != loso_settings_hash(
        loso_settings("nested", search))


def test_a_feature_run_s_training_revision_is_the_one_its_version_was_computed_with():
    """A run.json written before runs recorded their revision: it is read off the version (melcnn's as revision 1 and 2
    computed them)."""
    info = {"model": "melcnn", "split_id": SPLIT.id, "search": SearchParams().to_dict(), "feature_hash": "abc123",
            "data_hash": "data456", "speaker_norm": True}
    for version, revision in (("1ce692b6b10e", 1), ("b12aaf37ac78", 2), ("000000000000", 1)):
        record = RunRecord.from_dict({**info, "version": version}, split_id=SPLIT.id)
        assert catalog.feature_run_revision(record) == revision, version
    lr = RunRecord.from_dict({**info, "model": "lr", "version": "9cad23e5d3a7"}, split_id=SPLIT.id)
    assert catalog.feature_run_revision(lr) == 1


def test_a_run_s_recorded_training_revision_is_taken_as_it_is() -> None:
    info = {"model": "melcnn", "split_id": SPLIT.id, "search": SearchParams().to_dict(), "feature_hash": "abc123",
            "data_hash": "data456", "speaker_norm": True, "revision": 3}
    # the version is that of revision 1, but a run that records its revision is read by the record
    record = RunRecord.from_dict({**info, "version": "1ce692b6b10e"}, split_id=SPLIT.id)
    assert catalog.feature_run_revision(record) == 3


def test_a_recorded_revision_that_is_no_integer_is_not_taken():
    # true is an int to isinstance: it must not read as revision 1; the version (melcnn's revision 2) tells
    info = {"model": "melcnn", "split_id": SPLIT.id, "search": SearchParams().to_dict(), "feature_hash": "abc123",
            "data_hash": "data456", "speaker_norm": True, "version": "b12aaf37ac78"}
    for bad in (True, "3", 3.0, None):
        assert catalog.feature_run_revision(RunRecord.from_dict({**info, "revision": bad}, split_id=SPLIT.id)) == 2


def test_a_reused_run_is_the_newest_of_its_kind_again(tmp_path):
    """A review: lr trained on edited clips (run B), the clips put back, lr asked for again reused run A, yet predict
    kept taking B (the newest run.json) and the note told to train again what had just been reused."""
    from emotion.store.catalog import collect_runs, reuse_or_train
    from emotion.store.store import Store
    from tests.emotion.reporting.test_report_html import SPLIT, write_run

    seed = {"features": "seed", "feature_hash": "4bd90a733487", "feature_params": {"name": "seed"},
            "model_file": {"file": "model.skops"}}
    for version, mtime in (("a00000000001", 1000), ("b00000000002", 2000)):
        (write_run(tmp_path, "lr", version, 0.5, cv=0.5, mtime=mtime, **seed) / "model.skops").write_bytes(b"m")
    store = Store(str(tmp_path))
    assert [r.version for r in collect_runs(store, SPLIT)] == ["b00000000002"]

    def never():
        raise AssertionError("a complete run was trained again")

    done = reuse_or_train(store, SPLIT, "lr", "a00000000001", never)
    assert done.reused and done.record.version == "a00000000001"
    assert [r.version for r in collect_runs(store, SPLIT)] == ["a00000000001"]  # what predict and the summary take
    assert json.loads((tmp_path / "runs" / SPLIT / "lr" / "a00000000001" / "run.json").read_text())["model"] == "lr"
