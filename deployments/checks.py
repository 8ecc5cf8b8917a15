"""The values of a deployment's parameters, checked when registering as the command line checks its options: a
wrong value otherwise registers and fails only when the run fires (at 02:00), with a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emotion.core.errors import UsageError


class ParameterError(UsageError):
    """A parameter's value is wrong; ``parameter`` names it (``frames.every`` for a field of one)."""

    def __init__(self, parameter: str, message: str) -> None:
        self.parameter = parameter
        super().__init__(message)


def check_parameters(flow: Any, params: dict[str, Any]) -> None:
    """Refuse (:class:`ParameterError`) what ``flow`` would refuse when run with ``params``: types (Prefect's own
    validation of the flow's signature), then the checks its command runs before anything starts (modality, split,
    model and feature set names, numbers in range, a local data root that exists)."""
    from flows.cli.parser import NUMBER_RANGES

    values = _typed(flow, params)
    checks = {**_CHECKS, "models": _pipeline_models if flow.name == "emotion-pipeline" else _models}
    for name in params:  # in the file's order
        if name in checks:
            _on(name, checks[name], values[name], values)
    for (name, option), value in _numbers(values):
        lo, hi = NUMBER_RANGES[option]
        if value is not None and not isinstance(value, bool) and (not lo <= value <= hi or value != value):
            raise ParameterError(name, f"must be between {lo:g} and {hi:g}, got {value:g}")


def _on(name: str, check: Callable[[Any, dict[str, Any]], None], value: Any, values: dict[str, Any]) -> None:
    try:
        check(value, values)
    except ParameterError:
        raise
    except UsageError as exc:  # what to change, as the file's parameters give it (not --features: features)
        raise ParameterError(name, exc.served_message()) from None


def _typed(flow: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters as the flow's run gets them (Prefect's validation); a wrong type is one line naming it."""
    from prefect.exceptions import ParameterTypeError

    log = logging.getLogger("prefect.flows")  # which logs every refusal at ERROR, with the parameters
    disabled, log.disabled = log.disabled, True
    try:
        return dict(flow.validate_parameters(params))
    except ParameterTypeError as exc:
        # "Flow run received invalid parameters:\n - frames.every: Input should be a valid integer"
        first = next((ln.strip()[2:] for ln in str(exc).splitlines() if ln.strip().startswith("- ")), str(exc))
        name, _, why = first.partition(": ")
        raise ParameterError(name, why.removeprefix("Value error, ") or str(exc)) from None
    finally:
        log.disabled = disabled


def _modality(value: str, values: dict[str, Any]) -> None:
    from flows.extract import MODALITIES

    if value not in (*MODALITIES, "all"):  # as the extract and pipeline flows refuse it
        raise UsageError(f"unknown modality {value!r}; choose audio, video or all")


def _split(value: str, values: dict[str, Any]) -> None:
    from emotion.core.splits import ActorSplit

    ActorSplit.parse(value)


def _features(value: str, values: dict[str, Any]) -> None:
    from emotion.featuresets import feature_set

    feature_set(value)


def _augment(value: tuple[float, ...], values: dict[str, Any]) -> None:
    from emotion.featuresets import feature_params

    feature_params(values.get("features", "seed"), value, values.get("frames"))


def _models(value: tuple[str, ...], values: dict[str, Any]) -> None:
    """Training and evaluation: feature-set models, each able to read the feature set."""
    from flows.cli.options import check_feature_models

    check_feature_models(value, values.get("features", "seed"))


def _pipeline_models(value: tuple[str, ...], values: dict[str, Any]) -> None:
    """The pipeline: feature-set models, frame networks and fused models."""
    from emotion.core.names import split_models

    _models(split_models(value)[0], values)


def _mode(value: str, values: dict[str, Any]) -> None:
    from emotion.training.loso import MODES

    if value not in MODES:
        raise UsageError(f"unknown LOSO mode {value!r}; choose from {', '.join(MODES)}")


def _data(value: str, values: dict[str, Any]) -> None:
    """A local data root must exist here (the served runs read it from this machine); a URL is the storage's."""
    from flows.cli.options import existing_dir

    existing_dir(value, "data root")


def _out(value: str, values: dict[str, Any]) -> None:
    """Not created when registering (the first run does); a local path that is a file, or memory://, is refused."""
    from flows.cli.options import not_in_memory

    not_in_memory(value)
    if "://" not in value and Path(value).exists() and not Path(value).is_dir():
        raise UsageError(f"output {value!r} exists and is not a folder")


_CHECKS: dict[str, Callable[[Any, dict[str, Any]], None]] = {
    "modality": _modality, "split": _split, "params_from": _split, "features": _features, "augment": _augment,
    "mode": _mode, "data": _data, "out": _out,
}


def _numbers(values: dict[str, Any]) -> list[tuple[tuple[str, str], Any]]:
    """(parameter, the command-line option whose range it has), value: every number a flow takes."""
    found: list[tuple[tuple[str, str], Any]] = []
    for name, option in (("chunk_size", "chunk_size"), ("workers", "workers"), ("n_jobs", "jobs")):
        if name in values:
            found.append(((name, option), values[name]))
    if values.get("frames") is not None:
        found += [(("frames.every", "every"), values["frames"].every), (("frames.size", "frame_size"), values["frames"].size)]
    if "search" in values:
        found += [(("search.n_iter", "n_iter"), values["search"].n_iter),
                  (("search.cv_folds", "cv_folds"), values["search"].cv_folds)]
    for model, settings in (values.get("video_params") or {}).items():
        if "epochs" in settings:
            found.append(((f"video_params.{model}.epochs", "epochs"), settings["epochs"]))
    return found
