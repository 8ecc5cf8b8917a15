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

from prefect.context import FlowRunContext, TagsContext

from emotion.core.errors import EmotionError
from emotion.core.splits import ActorSplit, format_actors
from emotion.video.frames import FrameParams


def short_id(run_id: Any) -> str:
    """The last 6 hex digits of a run id (random in both UUID4 and the time-ordered UUID7)."""
    return str(run_id).replace("-", "")[-6:]


def split_label(split: str) -> str:
    """The split as given (``train=1-20,test=21-24``), without spaces."""
    return "".join(str(split).split())


def frames_label(frames: FrameParams) -> str:
    """``face224-every20``: a frame set by its settings, without its hash."""
    return frames.key.rsplit("-", 1)[0]


def split_used(split: str, actors: Iterable[int]) -> str:
    """The split as given, or, where the data lacks some of its actors, the actors it really has
    (``train=01-04,test=21`` for ``train=1-20,test=21-24`` on actors 1-4 and 21)."""
    present = set(actors)
    try:
        sp = ActorSplit.parse(split)
    except EmotionError:
        return split_label(split)  # the run itself stops with the reason
    train, test = tuple(a for a in sp.train if a in present), tuple(a for a in sp.test if a in present)
    if not present or (train, test) == (sp.train, sp.test):
        return split_label(split)
    return f"train={_actors(train)},test={_actors(test)}"


def _actors(actors: tuple[int, ...]) -> str:
    return format_actors(actors).replace(".", ",") if actors else "none"


def run_tags(*, modality: str | None = None, features: str | None = None, split: str | None = None,
             data_version: str | None = None, speaker_norm: bool | None = None,
             actors: Iterable[int] = ()) -> list[str]:
    """Tags of a run; ``actors`` (those the data has) adds ``actors:train=01-04,test=21`` where the split
    names actors the data lacks."""
    out = []
    if modality:
        out.append(f"modality:{modality}")
    if features:
        out.append(f"features:{features}")
    if split:
        out.append(f"split:{split_label(split)}")
    if split and actors and split_used(split, actors) != split_label(split):
        out.append(f"actors:{split_used(split, actors)}")
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


def _kind(tag: str) -> str:
    return tag.split(":", 1)[0] if ":" in tag else tag


def merge_tags(have: Iterable[str], labels: Iterable[str]) -> list[str]:
    """``have`` with ``labels`` added; a label replaces an inherited tag of its kind (``modality:all`` of the
    pipeline gives way to ``modality:audio`` of its extraction)."""
    labels = list(dict.fromkeys(labels))
    kinds = {_kind(t) for t in labels if ":" in t}
    return list(dict.fromkeys([*(t for t in have if _kind(t) not in kinds), *labels]))


@contextmanager
def task_tags(labels: Iterable[str]) -> Iterator[None]:
    """Add ``labels`` to the task and flow runs created inside the block, not to the running flow run (a step of
    a ``modality:all`` run: its tasks are ``modality:video``); a label replaces an inherited tag of its kind."""
    with TagsContext(current_tags=set(merge_tags(TagsContext.get().current_tags, labels))):
        yield


@contextmanager
def tagged(labels: Iterable[str]) -> Iterator[None]:
    """Add ``labels`` to the running flow run, and to the task and flow runs created inside the block."""
    ctx = FlowRunContext.get()
    if ctx is not None and ctx.flow_run is not None:
        have = list(ctx.flow_run.tags or [])
        new = merge_tags(have, labels)
        if new != have:
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                client.update_flow_run(flow_run_id=ctx.flow_run.id, tags=new)
            ctx.flow_run.tags = new
    with task_tags(labels):
        yield
