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
    two_folds = (", or one with 2 and --cv-folds 2", ", or one with 2 and search.cv_folds to 2") if cv_folds > 2 else ("", "")
    fix = (Advice(f"give --cv-folds {n_actors}, or a split with more train actors",
                  f"set search.cv_folds to {n_actors}, or split to one with more train actors") if n_actors >= 2 else
           Advice(f"give a split with at least {cv_folds} train actors{two_folds[0]}",  # both at once: not one, then the other
                  f"set split to one with at least {cv_folds} train actors{two_folds[1]}"))
    which = f" ({actor_text(named)})" if named else ""
    return Advised(f"grouped CV needs at least {cv_folds} training actors, got {n_actors}{which}: {fix}", fix)
