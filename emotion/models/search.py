"""The settings of a hyper-parameter search, apart from the search itself (no scikit-learn here): the command
line and the flows build them without loading the model stack."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from emotion.core.errors import Advice, Advised
from emotion.core.splits import actor_text


@dataclass(frozen=True)
class SearchParams:
    """Result-changing settings of the hyper-parameter search."""

    n_iter: int = 50
    cv_folds: int = 3
    refine: bool = True
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def too_few_cv_actors(actors: int | Iterable[int], cv_folds: int) -> Advised | None:
    """Why actor-grouped CV of ``cv_folds`` folds cannot run on the training ``actors`` (or their number), with what
    would let it (a smaller ``--cv-folds``, or a split with more train actors; as a deployment's parameters:
    ``search.cv_folds``, ``split``), in one line; ``None`` when it can."""
    if isinstance(actors, int):
        named, n_actors = None, actors
    else:
        named = sorted({int(a) for a in actors})
        n_actors = len(named)
    if n_actors >= cv_folds:
        return None
    fix = (Advice(f"give --cv-folds {n_actors}, or a split with more train actors",
                  f"set search.cv_folds to {n_actors}, or split to one with more train actors") if n_actors >= 2 else
           Advice("give a split with at least 2 train actors", "set split to one with at least 2 train actors"))
    which = f" ({actor_text(named)})" if named else ""
    return Advised(f"grouped CV needs at least {cv_folds} training actors, got {n_actors}{which}: {fix}", fix)
