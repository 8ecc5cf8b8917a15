"""The settings of a hyper-parameter search, apart from the search itself (no scikit-learn here): the command
line and the flows build them without loading the model stack."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SearchParams:
    """Result-changing settings of the hyper-parameter search."""

    n_iter: int = 50
    cv_folds: int = 3
    refine: bool = True
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
