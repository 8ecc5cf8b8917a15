"""Names and tags of the flow runs, as the Prefect UI shows them.

A flow run is named when it begins, before its first log line, by the
``flow_run_name`` callable of its flow (never renamed afterwards), so the
name the terminal prints is the name the UI finds. Names say what the run
does and on what: the modality, the feature set, the split as given, the
data version (the same hash in the extraction that wrote the data and in the
runs that read it) and the run's own short id, so that two runs on the same
data never share a name. Tags carry the same facts, one per tag
(``split:...``, ``features:...``, ``modality:...``, ``data:...``,
``speaker-norm:yes|no``), for the UI's tag filter; runs started inside a flow
(tasks, subflows) inherit its tags.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prefect import tags
from prefect.context import FlowRunContext


def short_id(run_id: Any) -> str:
    """The last 6 hex digits of a run id (random in both UUID4 and the time-ordered UUID7)."""
    return str(run_id).replace("-", "")[-6:]


def split_label(split: str) -> str:
    """The split as given (``train=1-20,test=21-24``), without spaces."""
    return "".join(str(split).split())


def run_tags(*, modality: str | None = None, features: str | None = None, split: str | None = None,
             data_version: str | None = None, speaker_norm: bool | None = None) -> list[str]:
    out = []
    if modality:
        out.append(f"modality:{modality}")
    if features:
        out.append(f"features:{features}")
    if split:
        out.append(f"split:{split_label(split)}")
    if data_version:
        out.append(f"data:{data_version}")
    if speaker_norm is not None:
        out.append(f"speaker-norm:{'yes' if speaker_norm else 'no'}")
    return out


def current_run() -> tuple[str, dict[str, Any]]:
    """The short id and the parameters of the flow run being named (inside a ``flow_run_name`` callable)."""
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return "local", {}
    return short_id(ctx.flow_run.id), dict(ctx.parameters or {})


def name(*parts: str | None) -> str:
    return "-".join(p for p in parts if p)


@contextmanager
def tagged(labels: Iterable[str]) -> Iterator[None]:
    """Add ``labels`` to the running flow run, and to the task and flow runs created inside the block."""
    labels = list(dict.fromkeys(labels))
    ctx = FlowRunContext.get()
    if ctx is not None and ctx.flow_run is not None:
        have = list(ctx.flow_run.tags or [])
        new = list(dict.fromkeys([*have, *labels]))
        if new != have:
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                client.update_flow_run(flow_run_id=ctx.flow_run.id, tags=new)
            ctx.flow_run.tags = new
    with tags(*labels):
        yield
