"""The evaluation flow: leave-one-actor-out over the training actors of a split."""

from __future__ import annotations

from typing import Any

from prefect import flow

from emotion.core.errors import UsageError
from emotion.core.splits import DEFAULT_SPLIT, ActorSplit
from emotion.featuresets import feature_params
from emotion.models.catalog import SearchParams, check_features
from emotion.store.store import Store
from emotion.training.loso import MODES
from flows.naming import current_run, name, run_tags, split_used, tagged
from tasks.cluster import default_workers
from tasks.evaluate import loso_model, write_loso_summary
from tasks.extract import stored_extraction


def loso_run_name() -> str:
    """``loso-lr-extended-speakernorm-train=1-20,test=21-24-data-1a2b3c4d-9f8e7d``."""
    rid, p = current_run()
    features = feature_params(p.get("features", "seed"), p.get("augment"))
    norm = "speakernorm" if p.get("speaker_norm") else None
    version, actors = stored_extraction(p["out"], "features/audio", features.key)
    return name("loso", ",".join(p.get("models", ("lr",))), features.name, norm,
                split_used(p.get("split", DEFAULT_SPLIT), actors), f"data-{version}" if version else None, rid)


@flow(name="evaluate-loso", flow_run_name=loso_run_name)
def evaluate_loso(
    out: str,
    split: str = DEFAULT_SPLIT,
    models: tuple[str, ...] = ("lr",),
    features: str = "seed",
    search: SearchParams = SearchParams(),
    speaker_norm: bool = False,
    mode: str = "nested",
    n_jobs: int | None = None,
    params_from: str | None = None,
    augment: tuple[float, ...] = (),
) -> dict[str, Any]:
    """LOSO over the training actors of ``split`` for every model; ``mode`` "fixed" copies the hyper-parameters
    of the stored run on ``params_from`` (default: ``split``) with the same feature parameters.

    ``features``: the feature set's name; ``augment``: the speeds of its augmented copies (``extended`` only).
    """
    sp = ActorSplit.parse(split)
    fp = feature_params(features, augment)
    source = ActorSplit.parse(params_from) if params_from else None
    if mode not in MODES:
        raise UsageError(f"unknown LOSO mode {mode!r}; choose from {', '.join(MODES)}")
    for m in models:
        check_features(m, fp.name)
    Store(out).check_writable()  # a read-only store stops here, not after every fold (the summary)
    jobs = n_jobs or default_workers()
    version, actors = stored_extraction(out, "features/audio", fp.key)
    labels = run_tags(modality="audio", features=fp.name, split=split, speaker_norm=speaker_norm,
                      data_version=version, actors=actors)
    with tagged(labels):
        results = [loso_model(out, m, sp, fp, search, speaker_norm, mode, jobs, source) for m in models]
        summary = write_loso_summary(out, sp, results)
    held_out = sorted({int(a) for r in results for a in r["actors"]})  # the train actors the data holds, not the split's
    return {"split": str(sp), "actors": held_out, "features": fp.name, "speaker_norm": speaker_norm,
            "augment": list(fp.augment_speeds()),
            "mode": mode, "summary": summary, "models": sorted(results, key=lambda r: (-r["mean"], r["model"]))}
