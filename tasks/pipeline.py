"""The steps of the whole pipeline as task runs of its flow run."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE

T = TypeVar("T")


@task(name="pipeline-step", cache_policy=NO_CACHE, task_run_name="{step}")
def pipeline_step(step: str, run: Callable[[], T]) -> T:
    """Run one step of the pipeline (an extraction or a training flow) inside a task run of the pipeline.

    The step's flow run becomes a child of this task run, so the pipeline's
    run lists its steps as task runs while they work (instead of "0 Task
    runs") and the UI's graph nests each step's flow run under it.
    """
    return run()
