"""Scheduled deployments of the flows, declared in ``deployments.yaml``."""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deployments.checks import ParameterError, check_parameters
from emotion.core.errors import UsageError

DEFAULT_FILE = Path(__file__).with_name("deployments.yaml")
_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    flow: str
    cron: str
    timezone: str = "UTC"
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


def _expand(value: Any) -> Any:
    if isinstance(value, str):
        return _VAR.sub(lambda m: os.environ.get(m[1], m[2] or ""), value)
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    return value


def _unset(value: Any) -> list[str]:
    """The variables ``value`` names without a default (``${VAR}``) that the environment does not set."""
    if isinstance(value, str):
        return list(dict.fromkeys(m[1] for m in _VAR.finditer(value) if m[2] is None and m[1] not in os.environ))
    if isinstance(value, list):
        return list(dict.fromkeys(n for v in value for n in _unset(v)))
    if isinstance(value, dict):
        return list(dict.fromkeys(n for v in value.values() for n in _unset(v)))
    return []


def _origin(value: Any) -> str:
    """`` (from ${EMOTION_DATA:-/data/ravdess}; EMOTION_DATA is not set)`` where ``value`` came from the environment."""
    if not isinstance(value, str) or not _VAR.search(value):
        return ""
    unset = [m[1] for m in _VAR.finditer(value) if m[1] not in os.environ]
    return f" (from {value}" + (f"; {', '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set" if unset else "") + ")"


# the cron shorthands Prefect's schedules take (croniter's; @reboot is not a time)
CRON_ALIASES = ("@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight")


def schedule_problem(cron: str, timezone: str) -> str | None:
    """What is wrong with a cron schedule in ``timezone``, by Prefect's own checks of a schedule (which raised a
    ValueError or a pydantic ValidationError from :func:`build`, or from the deployment's registration); ``None``
    where nothing is."""
    from prefect.client.schemas.schedules import CronSchedule

    def refused(tz: str) -> bool:
        try:
            CronSchedule(cron=cron, timezone=tz)
        except ValueError:  # pydantic's ValidationError is one
            return True
        return False

    if refused("UTC"):
        return (f"cron {cron!r}, which is not a valid cron expression (minute 0-59, hour 0-23, day of month 1-31, "
                "month 1-12, day of week 0-6; e.g. '0 2 * * *')")
    if refused(timezone):
        return f"timezone {timezone!r}, which is not an IANA time zone name (e.g. UTC, Europe/Paris, America/New_York)"
    return None


def _read(p: Path) -> dict[str, Any]:
    """The file's top-level mapping; a YAML mistake is one line with the line number YAML gives."""
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        why = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{p}: not valid YAML{where}: {why}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{p}: cannot read the deployments file: {getattr(exc, 'strerror', None) or exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise UsageError(f"{p}: expected a mapping with a deployments: list (and optional defaults:), "
                         f"found a {type(doc).__name__}")
    return doc


def load_specs(path: str | Path = DEFAULT_FILE) -> list[DeploymentSpec]:
    """Read and validate a deployments file (see ``deployments.yaml``)."""
    from flows.registry import FLOWS

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"deployments file {p} does not exist")
    doc = _read(p)
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise UsageError(f"{p}: defaults is not a mapping (data:, out:, timezone:)")
    listed = doc.get("deployments") or []
    if not isinstance(listed, list):
        raise UsageError(f"{p}: deployments is not a list (each item: - name:, flow:, cron:, parameters:)")
    specs = []
    for i, d in enumerate(listed):
        if not isinstance(d, dict):
            raise UsageError(f"{p}: deployment {i + 1} is not a mapping (name:, flow:, cron:, parameters:)")
        if not isinstance(d.get("parameters") or {}, dict):
            raise UsageError(f"{p}: deployment {d.get('name', i + 1)!r}: parameters is not a mapping (name: value)")
        which = f"deployment {d['name']!r}" if d.get("name") else f"deployment {i + 1}"
        missing = [k for k in ("name", "flow", "cron") if d.get(k) in (None, "")]
        if missing:
            empty = [k for k in missing if k in d]  # given, but empty ("cron: ''")
            raise UsageError(f"{p}: {which} lacks {', '.join(missing)}" + (f" ({', '.join(empty)} given empty)"
                                                                              if empty else ""))
        if d["flow"] not in FLOWS:
            raise UsageError(f"{p}: deployment {d['name']!r} names unknown flow {d['flow']!r}; choose from {sorted(FLOWS)}")
        cron = str(d["cron"])
        fields = cron.split()
        if not (len(fields) == 5 or (len(fields) == 1 and fields[0].lower() in CRON_ALIASES)):
            raise UsageError(f"{p}: deployment {d['name']!r} has cron {cron!r}: expected 5 fields (minute, hour, day "
                             f"of month, month, day of week; e.g. '0 2 * * *') or one of {', '.join(CRON_ALIASES)}")
        timezone = str(d.get("timezone") or defaults.get("timezone") or "UTC")
        problem = schedule_problem(str(d["cron"]), timezone)
        if problem:
            raise UsageError(f"{p}: deployment {d['name']!r} has {problem}")
        # defaults: apply to every deployment whose flow takes them (data and out, not the training's data)
        takes = inspect.signature(FLOWS[d["flow"]].fn).parameters
        given = {**{k: v for k, v in defaults.items() if k in takes}, **(d.get("parameters") or {})}
        params = {k: v for k, v in _expand(given).items() if v not in ("", None)}
        unknown = sorted(set(params) - set(takes))
        if unknown:
            raise UsageError(f"{p}: deployment {d['name']!r} gives {', '.join(unknown)}, which flow {d['flow']!r} does "
                             f"not take; it takes {', '.join(takes)}")
        lacking = [k for k, v in takes.items() if v.default is inspect.Parameter.empty and k not in params]
        if lacking:
            unset = [n for k in lacking for n in _unset(given.get(k))]
            why = f"; {', '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set in the environment" if unset else ""
            raise UsageError(f"{p}: deployment {d['name']!r} lacks {', '.join(lacking)}, which flow {d['flow']!r} "
                             f"needs (set it under its parameters, or under defaults){why}")
        # a variable left unset inside a longer value would leave half a path ("${EMOTION_DATA}/ravdess": /ravdess)
        for k, v in given.items():
            if k in params and _unset(v):
                var = _unset(v)[0]
                raise UsageError(f"{p}: deployment {d['name']!r} parameter {k}: {v!r} uses {var}, which is not set in "
                                 f"the environment (set it, or give a default: ${{{var}:-...}})")
        try:
            check_parameters(FLOWS[d["flow"]], params)  # what the run would refuse at 02:00, refused now
        except ParameterError as exc:
            raise UsageError(f"{p}: deployment {d['name']!r} parameter {exc.parameter}: {exc}"
                             f"{_origin(given.get(exc.parameter.split('.')[0]))}") from None
        specs.append(DeploymentSpec(d["name"], d["flow"], str(d["cron"]), timezone, d.get("description", ""), params))
    if not specs:
        raise UsageError(f"{p}: no deployments declared")
    return specs


# The flow runs `emotion deploy` runs at once, across its deployments. Runs that come due while one runs (the backlog
# an `emotion deploy` finds after a while down, a nightly extraction and a monthly pipeline due the same night) wait
# their turn, oldest first: together they all started at once, and all but one failed on the store's lock. Prefect's
# runner holds them in its own process; a deployment concurrency limit would hold them on the server, with leases
# that a server restart loses (killing the run in flight) and that a reboot mid-run leaves taken.
RUNS_AT_ONCE = 1


def build(specs: list[DeploymentSpec]) -> list[Any]:
    """Prefect ``RunnerDeployment`` objects for ``prefect.serve`` (which runs them one at a time: :data:`RUNS_AT_ONCE`),
    of the flows as served (:mod:`deployments.served`: a run failing on our errors says so in one line)."""
    from prefect.schedules import Cron

    from deployments.served import SERVED

    return [
        SERVED[s.flow].to_deployment(name=s.name, schedule=Cron(s.cron, timezone=s.timezone), parameters=s.parameters,
                                     description=s.description, tags=["emotion"])
        for s in specs
    ]
