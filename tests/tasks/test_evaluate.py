"""``evaluate --loso --fixed-params``: the stored run is found by its parameters' key, not the set's name."""

from __future__ import annotations

import posixpath

import pytest

from emotion.audio.extended import ExtendedFeatureParams
from emotion.core.errors import StoreError
from emotion.core.splits import ActorSplit
from emotion.models.catalog import SearchParams, model_spec
from emotion.store.store import Store
from emotion.training.audio import split_data, train_and_evaluate
from tasks.evaluate import _stored_estimator
from tests.conftest import speaker_table

SPLIT = ActorSplit.parse("train=1-4,test=5")


def _train(store: Store, params: ExtendedFeatureParams) -> str:
    df = speaker_table(tuple(params.column_names()))
    data = split_data(df, params.column_names(), SPLIT, params.hash(), copies=params.copies)
    res = train_and_evaluate(model_spec("lr"), data, SPLIT, SearchParams(n_iter=1, refine=False), params.to_dict(),
                             params.hash())
    folder = store.run_dir(SPLIT.id, "lr", res.version)
    for name, blob in res.files().items():
        store.write_bytes(posixpath.join(folder, name), blob)
    return store.url_of(folder)


def test_fixed_params_use_the_run_of_the_same_feature_parameters_not_of_the_same_set_name(tmp_path):
    store = Store(str(tmp_path))
    plain, augmented = ExtendedFeatureParams(), ExtendedFeatureParams(speeds=(0.9, 1.1))
    plain_dir, aug_dir = _train(store, plain), _train(store, augmented)
    # summary.json as the training flow writes it: both runs are "extended"; the augmented one listed first
    rows = [{"model": "lr", "features": "extended", "feature_set": p.key, "augment": list(p.speeds),
             "speaker_norm": False, "run_dir": d, "accuracy": 0.5} for p, d in ((augmented, aug_dir), (plain, plain_dir))]
    store.write_json(store.path("runs", SPLIT.id, "summary.json"), {"all": rows})
    assert _stored_estimator(store, SPLIT, "lr", plain, False)[1] == plain_dir
    assert _stored_estimator(store, SPLIT, "lr", augmented, False)[1] == aug_dir
    with pytest.raises(StoreError, match="no stored lr run"):
        _stored_estimator(store, SPLIT, "lr", ExtendedFeatureParams(speeds=(0.8,)), False)
    with pytest.raises(StoreError, match="no stored lr run") as err:
        _stored_estimator(store, SPLIT, "lr", plain, True)
    assert str(err.value) == (
        f"no stored lr run with features {plain.key} --speaker-norm on train=01-04,test=05: run `emotion train "
        f"{store.url} --split train=01-04,test=05 --model lr --features extended --speaker-norm` first, or drop "
        "--fixed-params")  # the command line's, as before
    assert err.value.served_message() == (  # a served evaluate-loso run's: its mode "fixed", train-audio's parameters
        f"no stored lr run with features {plain.key} and speaker_norm on train=01-04,test=05: run the train-audio flow "
        f"with out={store.url}, split=train=01-04,test=05, models=[lr], features=extended, speaker_norm=true first, "
        "or set mode to nested")


def test_loso_results_of_other_settings_sit_beside_each_other(tmp_path, monkeypatch):
    """Nested runs with other search settings, and fixed runs copying another run's hyper-parameters, write their
    own files and keep their own rows in summary.json; the same settings again replace their row."""
    import logging

    import tasks.evaluate as ev
    from emotion.audio.seed import AudioFeatureParams

    fp = AudioFeatureParams()
    df = speaker_table(tuple(fp.column_names()))
    monkeypatch.setattr(ev, "read_feature_table", lambda store, features: df)
    monkeypatch.setattr(ev, "get_run_logger", lambda: logging.getLogger("test"))
    out = str(tmp_path)
    store = Store(out)
    a = ev.loso_model.fn(out, "lr", SPLIT, fp, SearchParams(n_iter=1, refine=False, seed=0), False, "nested", 1)
    b = ev.loso_model.fn(out, "lr", SPLIT, fp, SearchParams(n_iter=2, cv_folds=2, refine=False, seed=7), False, "nested", 1)
    a_again = ev.loso_model.fn(out, "lr", SPLIT, fp, SearchParams(n_iter=1, refine=False, seed=0), False, "nested", 1)
    assert a["path"] != b["path"] and a["path"] == a_again["path"]
    assert posixpath.basename(a["path"]).startswith("lr-nested-") and f"/{fp.key}/" in a["path"]
    # two stored lr runs on other splits, each the source of a fixed LOSO
    runs = {}
    for other in (ActorSplit.parse("train=1-3,test=4"), ActorSplit.parse("train=2-4,test=1")):
        data = split_data(df, fp.column_names(), other, fp.hash())
        res = train_and_evaluate(model_spec("lr"), data, other, SearchParams(n_iter=1, refine=False),
                                 fp.to_dict(), fp.hash())
        for name, blob in res.files().items():
            store.write_bytes(posixpath.join(store.run_dir(other.id, "lr", res.version), name), blob)
        runs[other.id] = ev.loso_model.fn(out, "lr", SPLIT, fp, SearchParams(), False, "fixed", 1, other)
    f1, f2 = runs.values()
    assert f1["path"] != f2["path"] and f1["settings"]["params_split"] != f2["settings"]["params_split"]
    ev.write_loso_summary.fn(out, SPLIT, [a, b])
    ev.write_loso_summary.fn(out, SPLIT, [a_again, f1, f2])
    rows = store.read_json(store.path("runs", SPLIT.id, "loso", "summary.json"))["all"]
    assert sorted((r["mode"], r["settings_hash"]) for r in rows) == sorted(
        (r["mode"], r["settings_hash"]) for r in (a, b, f1, f2))
    report = (tmp_path / "runs" / SPLIT.id / "loso" / "report.md").read_text()
    assert "n_iter 2, 2 folds, no refine, seed 7" in report and f"run {f1['settings']['params_run']} on " in report


def test_fixed_params_take_only_runs_of_the_model_s_current_training_revision(tmp_path, monkeypatch):
    """A run trained by an earlier revision of the model's training (melcnn's 1, now 2) never gives the "fixed"
    parameters, even when it is the newest; when only such runs are stored, the error says so."""
    import dataclasses
    import os

    from emotion.models.catalog import MODELS

    store = Store(str(tmp_path))
    plain = ExtendedFeatureParams()
    old_dir = _train(store, plain)  # lr at revision 1, as every stored lr run is
    monkeypatch.setitem(MODELS, "lr", dataclasses.replace(MODELS["lr"], revision=2))  # lr's training moves on
    with pytest.raises(StoreError, match=r"the stored lr runs .* were trained by revision 1 of lr \(this code's is 2\); "
                                         r"run `emotion train .*` again") as err:
        _stored_estimator(store, SPLIT, "lr", plain, False)
    assert "\n" not in str(err.value)
    new_dir = _train(store, plain)  # revision 2: another version, another folder
    assert new_dir != old_dir
    os.utime(tmp_path / "runs" / SPLIT.id / "lr" / posixpath.basename(old_dir) / "run.json", (4e9, 4e9))  # newest
    assert _stored_estimator(store, SPLIT, "lr", plain, False)[1] == new_dir


def test_fixed_params_never_take_an_augmented_run_tuned_on_the_clips_alone(tmp_path):
    """A review: an augmented run whose grouped CV ran on the clips alone (before each fold was fitted on the copies)
    records this code's revision; --fixed-params took its hyper-parameters as current. It is refused, saying why."""
    import json

    store = Store(str(tmp_path))
    augmented = ExtendedFeatureParams(speeds=(0.9, 1.1))
    aug_dir = _train(store, augmented)
    assert _stored_estimator(store, SPLIT, "lr", augmented, False)[1] == aug_dir
    run_json = tmp_path / "runs" / SPLIT.id / "lr" / posixpath.basename(aug_dir) / "run.json"
    info = json.loads(run_json.read_text())
    assert info.pop("copies_in_cv") is True
    run_json.write_text(json.dumps(info))  # as such a run wrote it
    with pytest.raises(StoreError, match=r"^the stored lr runs with features extended-\w+ on train=01-04,test=05 chose "
                                         r"their hyper-parameters by a grouped CV without the augmented copies .*; "
                                         r"run `emotion train .*` again, or drop --fixed-params$"):
        _stored_estimator(store, SPLIT, "lr", augmented, False)
