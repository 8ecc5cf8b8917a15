"""The training flow: tune, fit and evaluate models on one actor split."""

from __future__ import annotations

from typing import Any

from prefect import flow

from emotion.features import AudioFeatureParams
from emotion.featuresets import FeatureParams
from emotion.models import SearchParams, model_spec
from emotion.splits import DEFAULT_SPLIT, ActorSplit
from tasks.artifacts import name_flow_run, publish_metrics
from tasks.cluster import default_workers
from tasks.train import data_version, train_model, write_summary

DEFAULT_MODELS = ("rf", "svc", "xgb")


@flow(name="train-audio", flow_run_name="train-audio-{split}")
def train_audio(
    out: str,
    split: str = DEFAULT_SPLIT,
    models: tuple[str, ...] = DEFAULT_MODELS,
    features: FeatureParams = AudioFeatureParams(),
    search: SearchParams = SearchParams(),
    n_jobs: int | None = None,
    force: bool = False,
    speaker_norm: bool = False,
) -> dict[str, Any]:
    """Train every model in ``models`` on ``split``; returns the summary, best first."""
    sp = ActorSplit.parse(split)
    for m in models:
        model_spec(m)  # fail fast on an unknown name
    jobs = n_jobs or default_workers()
    name_flow_run(f"train-audio-{sp.id}-data-{data_version(out, sp, features)[:8]}")
    results = [train_model(out, m, sp, features, search, jobs, force, speaker_norm) for m in models]
    path = write_summary(out, sp, results)
    ranked = sorted(results, key=lambda r: (-r["accuracy"], r["model"]))
    publish_metrics(str(sp), ranked, {r["model"]: r.pop("confusion_matrix") for r in ranked})
    return {"split": str(sp), "split_id": sp.id, "summary": path, "features": features.name,
            "speaker_norm": speaker_norm, "models": ranked}
