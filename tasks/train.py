"""Prefect tasks of the training flow: each reads the store, writes a run folder."""

from __future__ import annotations

import json
import posixpath
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from emotion.featuresets import FeatureParams
from emotion.models import SearchParams, model_spec
from emotion.report import merge_results, report_markdown
from emotion.splits import ActorSplit
from emotion.store import Store
from emotion.training import run_version, split_data, train_and_evaluate


@task(name="train-model", cache_policy=NO_CACHE, task_run_name="train-{model}")
def train_model(
    out: str, model: str, split: ActorSplit, features: FeatureParams, search: SearchParams,
    n_jobs: int = 1, force: bool = False, speaker_norm: bool = False,
) -> dict[str, Any]:
    """Tune, fit and evaluate ``model``; returns its metrics and run folder.

    A run whose version (model, split, search, features, data) is already
    complete in the store is reused unless ``force``.
    """
    log = get_run_logger()
    store = Store(out)
    df = store.read_features("audio", features.key)
    data = split_data(df, features.feature_names(), split, features.hash(), speaker_norm=speaker_norm)
    version = run_version(model, split, search, features.hash(), data.data_hash, speaker_norm)
    folder = store.run_dir(split.id, model, version)
    if store.run_complete(folder) and not force:
        log.info("%s: run %s is complete in the store; reusing it", model, version)
        metrics = store.read_json(posixpath.join(folder, "metrics.json"))
        return {"model": model, "version": version, "run_dir": store.url_of(folder), "reused": True,
                "feature_set": features.key, **_brief(metrics)}
    log.info("%s: tuning on %d clips of %d actors", model, len(data.y_train), len(set(data.groups)))
    result = train_and_evaluate(model_spec(model), data, split, search, features.to_dict(), features.hash(), n_jobs)
    for name, blob in result.files().items():  # run.json last: marks the folder complete
        store.write_bytes(posixpath.join(folder, name), blob)
    log.info("%s: test accuracy %.3f (grouped CV %.3f)", model, result.metrics["accuracy"], result.metrics["cv_accuracy"])
    return {"model": model, "version": version, "run_dir": store.url_of(folder), "reused": False,
            "feature_set": features.key, **_brief(result.metrics)}


@task(name="data-version", cache_policy=NO_CACHE)
def data_version(out: str, split: ActorSplit, features: FeatureParams) -> str:
    """The hash of the clips (paths and contents) the split trains and tests on."""
    df = Store(out).read_features("audio", features.key)
    return split_data(df, features.feature_names(), split, features.hash()).data_hash


def _brief(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("accuracy", "macro_f1", "uar", "cv_accuracy", "cv_std", "n_train", "n_test", "features", "speaker_norm",
            "confusion_matrix")
    return {k: metrics[k] for k in keys if k in metrics}


@task(name="write-summary", cache_policy=NO_CACHE)
def write_summary(out: str, split: ActorSplit, results: list[dict[str, Any]]) -> str:
    """``runs/<split>/summary.json``: this run's models best first (``models``), and the latest run of every
    feature set, normalisation and model on the split (``all``), also as ``runs/<split>/report.md``."""
    store = Store(out)
    ranked = sorted(results, key=lambda r: (-r["accuracy"], r["model"]))
    path = store.path("runs", split.id, "summary.json")
    previous = store.read_json(path).get("all", []) if store.exists(path) else []
    rows = merge_results(previous, [{k: v for k, v in r.items() if k != "confusion_matrix"} for r in ranked])
    store.write_json(path, {"split": str(split), "split_id": split.id, "best": ranked[0]["model"], "models": ranked,
                            "all": rows})
    store.write_bytes(store.path("runs", split.id, "report.md"), report_markdown(str(split), rows).encode())
    get_run_logger().info("summary: %s", json.dumps([(r["model"], round(r["accuracy"], 3)) for r in ranked]))
    return store.url_of(path)
