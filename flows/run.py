"""The whole pipeline: extract, then train and evaluate."""

from __future__ import annotations

from typing import Any

from prefect import flow

from emotion.features import AudioFeatureParams
from emotion.featuresets import FeatureParams
from emotion.models import SearchParams
from emotion.splits import DEFAULT_SPLIT
from flows.extract import extract
from flows.train import DEFAULT_MODELS, train_audio


@flow(name="emotion-pipeline", flow_run_name="pipeline-{split}")
def run_pipeline(
    data: str,
    out: str,
    split: str = DEFAULT_SPLIT,
    models: tuple[str, ...] = DEFAULT_MODELS,
    features: FeatureParams = AudioFeatureParams(),
    search: SearchParams = SearchParams(),
    full: bool = False,
    dask_address: str | None = None,
    workers: int | None = None,
    n_jobs: int | None = None,
    speaker_norm: bool = False,
) -> dict[str, Any]:
    extracted = extract(data, out, "audio", features, full=full, dask_address=dask_address, workers=workers)
    trained = train_audio(out, split, models, features, search, n_jobs=n_jobs, force=full, speaker_norm=speaker_norm)
    return {"extract": {m: s.to_dict() for m, s in extracted.items()}, "train": trained}
