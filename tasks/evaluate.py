"""Prefect tasks of the LOSO evaluation flow."""

from __future__ import annotations

import posixpath
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sklearn.base import BaseEstimator

from emotion.core.errors import Advice, Option, StoreError, invocation, run_first
from emotion.core.splits import ActorSplit
from emotion.featuresets import FeatureParams, read_faceless_clips, read_feature_table
from emotion.models.catalog import SearchParams, model_spec
from emotion.models.persist import load_run
from emotion.reporting.report import loso_markdown, merge_loso
from emotion.reporting.report_html import write_reports
from emotion.store import catalog
from emotion.store.store import Store
from emotion.training.loso import fixed_note, loso, loso_data
from tasks import progress as console


def loso_dir(store: Store, split: ActorSplit) -> str:
    return catalog.loso_dir(store, split.id)


def _stored_estimator(store: Store, split: ActorSplit, model: str, features: FeatureParams, speaker_norm: bool) -> tuple[
        BaseEstimator, str, catalog.RunRecord]:
    """The model of the latest stored run of ``model`` on ``split`` with these feature parameters (the set's key:
    name and hash of every parameter, augmentation included) and normalisation, trained by the model's current
    training revision, its folder's URL and its record."""
    revision = model_spec(model).revision
    runs = catalog.find_runs(store, split.id, model, features.key, speaker_norm)
    # a run of another revision is not this code's, nor an augmented run tuned on the clips alone
    this_code = [r for r in runs if catalog.feature_run_revision(r) == revision]
    found = next((r for r in this_code if catalog.tuned_as_trained(r)), None)
    if found is not None:
        est, _ = load_run(store, catalog.folder_of(store, found))
        return est, store.url_of(catalog.folder_of(store, found)), found
    norm = " --speaker-norm" if speaker_norm else ""
    train = _train_run(store, split, model, features, speaker_norm)
    # the run's features as a served run names them (the evaluate-loso flow's speaker_norm is the command's option)
    told = (Advice(f"{features.key}{norm} on", f"{features.key} and speaker_norm on"),) if norm else ()
    if this_code:  # augmented runs whose grouped CV ran on the clips alone
        fix = run_first(train, again=True)
        raise StoreError(f"the stored {model} runs with features {features.key}{norm} on {split} chose their "
                         f"hyper-parameters by a grouped CV without the augmented copies (before each fold was "
                         f"fitted on them); {fix}, {_DROP_FIXED}", advice=(fix, _DROP_FIXED, *told))
    others = sorted({catalog.feature_run_revision(r) for r in runs})
    if others:
        which = " and ".join(str(r) for r in others)
        fix = run_first(train, again=True)
        raise StoreError(f"the stored {model} runs with features {features.key}{norm} on {split} were trained by "
                         f"revision {which} of {model} (this code's is {revision}); {fix}, {_DROP_FIXED}",
                         advice=(fix, _DROP_FIXED, *told))
    fix = run_first(train)
    raise StoreError(f"no stored {model} run with features {features.key}{norm} on {split}: {fix}, {_DROP_FIXED}",
                     advice=(fix, _DROP_FIXED, *told))


# the evaluate-loso flow's mode "fixed" is the command's --fixed-params
_DROP_FIXED = Advice("or drop --fixed-params", "or set mode to nested")


def _train_run(store: Store, split: ActorSplit, model: str, features: FeatureParams, speaker_norm: bool) -> Advice:
    """The training that stores the run ``--fixed-params`` reads: ``emotion train``, or the train-audio flow."""
    speeds = features.augment_speeds()
    options: list[Option | tuple[str, str]] = [
        ("out", store.url), Option("--split", "split", str(split)), Option("--model", "models", model, f"[{model}]"),
        Option("--features", "features", features.name)]
    if speeds:
        options.append(Option("--augment", "augment", ",".join(f"{s:g}" for s in speeds),
                              "[" + ", ".join(f"{s:g}" for s in speeds) + "]"))
    if speaker_norm:
        options.append(Option("--speaker-norm", "speaker_norm", parameter_value="true"))
    command = " ".join(["emotion train", store.url, *(o.cli for o in options if isinstance(o, Option))])
    return invocation(command, "train-audio", options)


@task(name="loso-model", cache_policy=NO_CACHE, task_run_name="loso-{model}")
def loso_model(out: str, model: str, split: ActorSplit, features: FeatureParams, search: SearchParams,
               speaker_norm: bool, mode: str, n_jobs: int, params_from: ActorSplit | None = None) -> dict[str, Any]:
    log = get_run_logger()
    store = Store(out)
    df = read_feature_table(store, features)
    data = loso_data(df, features.column_names(), split, features.hash(), speaker_norm=speaker_norm,
                     copies=features.copies, faceless=read_faceless_clips(store, features, df))
    fixed, source = (None, None)
    if mode == "fixed":
        fixed, source, run = _stored_estimator(store, params_from or split, model, features, speaker_norm)
        settings = catalog.loso_settings(mode, params_split=run.split_id, params_run=run.version)
    else:
        settings = catalog.loso_settings(mode, search.to_dict(), revision=model_spec(model).revision,
                                         copies=features.copies)
    actors = sorted(set(int(a) for a in data.groups) | set(int(a) for a in data.faceless))
    done: list[int] = []

    def actor_done(a: int, acc: float) -> None:
        done.append(a)
        log.info("%s: actor %02d held out: accuracy %.3f", model, a, acc)
        console.tick(f"{model} LOSO", len(done), len(actors), "actors", f"actor {a:02d} held out: accuracy {acc:.3f}")

    console.tick(f"{model} LOSO", 0, len(actors), "actors")
    r = loso(model_spec(model), data, search, mode=mode, fixed=fixed, n_jobs=n_jobs, progress=actor_done,
             fits=console.sink())
    r.update({"features": features.name, "feature_hash": features.hash(), "speaker_norm": speaker_norm,
              "augment": list(features.augment_speeds()),
              "split": str(split), "actors": actors, "params_from": source,
              "settings": settings, "settings_hash": catalog.loso_settings_hash(settings)})
    if mode == "fixed":  # the run may come from another split (--params-from): say whose actors chose them
        r["note"] = fixed_note(params_from or split, r["actors"])
    # the set's key (name and parameters hash) and a hash of the search settings or source run: two
    # parameterisations of a set (e.g. with --augment) or two --n-iter never collide
    path = catalog.loso_file(store, split.id, features.key, speaker_norm, model, settings)
    store.write_json(path, r)
    log.info("%s: LOSO accuracy %.3f ± %.3f over %d actors", model, r["mean"], r["std"], r["n_actors"])
    return {**r, "path": store.url_of(path)}


@task(name="write-loso-summary", cache_policy=NO_CACHE, task_run_name="write-loso-summary-{split.id}")
def write_loso_summary(out: str, split: ActorSplit, results: list[dict[str, Any]]) -> str:
    store = Store(out)
    path = posixpath.join(loso_dir(store, split), "summary.json")
    previous = store.read_json(path).get("all", []) if store.exists(path) else []
    rows = merge_loso(previous, results)
    store.write_json(path, {"split": str(split), "all": rows})
    store.write_bytes(posixpath.join(loso_dir(store, split), "report.md"), loso_markdown(str(split), rows).encode())
    write_reports(store, split.id)  # the split's report links the LOSO one
    return store.url_of(path)
