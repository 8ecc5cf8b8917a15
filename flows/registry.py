"""Every flow of the project by its Prefect name."""

from __future__ import annotations

from typing import Any

from flows.evaluate import evaluate_loso
from flows.extract import extract
from flows.run import run_pipeline
from flows.train import train_audio

FLOWS: dict[str, Any] = {f.name: f for f in (extract, train_audio, run_pipeline, evaluate_loso)}
