"""Speaker-independent splits: which actors train, which test.

A split is written ``train=1-20,test=21-24`` (ranges and lists, e.g.
``train=1-10,12,test=21-24``) and named by an id such as
``train01-20_test21-24`` that keys its output folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from emotion.core.errors import Advice, Advised, Option, UsageError, give

DEFAULT_SPLIT = "train=1-20,test=21-24"


def parse_actors(text: str, split: str | None = None) -> tuple[int, ...]:
    """``1-3,5`` -> (1, 2, 3, 5); ``split``: the whole split ``text`` is a side of, which a bad one's message quotes."""
    where = f" in split {split!r}" if split is not None else ""
    actors: set[int] = set()
    for token in filter(None, (t.strip() for t in text.split(","))):
        m = re.fullmatch(r"(\d{1,2})(?:-(\d{1,2}))?", token)
        if not m:
            raise UsageError(f"bad actor list {text!r}{where}: {token!r} is not a number or a range like 1-20")
        lo, hi = int(m[1]), int(m[2] or m[1])
        if not 1 <= lo <= hi <= 99:
            raise UsageError(f"bad actor range {token!r} in {f'split {split!r}' if split is not None else repr(text)}")
        actors.update(range(lo, hi + 1))
    if not actors:
        raise UsageError(f"actor list {text!r}{where} is empty")
    return tuple(sorted(actors))


def format_actors(actors: tuple[int, ...]) -> str:
    """``(1,2,3,5)`` -> ``"01-03.05"`` (compact, sortable, path-safe)."""
    out, run = [], [actors[0]]
    for a in actors[1:]:
        if a == run[-1] + 1:
            run.append(a)
            continue
        out.append(run)
        run = [a]
    out.append(run)
    return ".".join(f"{r[0]:02d}-{r[-1]:02d}" if len(r) > 1 else f"{r[0]:02d}" for r in out)


@dataclass(frozen=True)
class ActorSplit:
    train: tuple[int, ...]
    test: tuple[int, ...]

    def __post_init__(self) -> None:
        overlap = set(self.train) & set(self.test)
        if overlap:
            raise UsageError(f"actors {sorted(overlap)} are in both train and test: a split must not share speakers")
        if not self.train or not self.test:
            raise UsageError("a split needs at least one train and one test actor")

    @classmethod
    def parse(cls, text: str) -> ActorSplit:
        m = re.fullmatch(r"\s*train=([\d,\s-]+?),\s*test=([\d,\s-]+)\s*", text)
        if not m:
            raise UsageError(f"bad split {text!r}: write it like {DEFAULT_SPLIT}")
        return cls(parse_actors(m[1], text), parse_actors(m[2], text))

    @classmethod
    def parse_given(cls, text: str) -> ActorSplit:
        """A split as written (``train=1-20,test=21-24``) or by its id (``train01-20_test21-24``, the folder of
        its runs); anything else a one-line :class:`UsageError`."""
        m = re.fullmatch(r"\s*train([\d.-]+)_test([\d.-]+)\s*", text)
        if m:
            return cls(parse_actors(m[1].replace(".", ","), text), parse_actors(m[2].replace(".", ","), text))
        if "=" not in text:
            raise UsageError(f"bad split {text!r}: write it like {DEFAULT_SPLIT} (or by its id, like "
                             f"{cls.parse(DEFAULT_SPLIT).id})")
        return cls.parse(text)

    @property
    def id(self) -> str:
        return f"train{format_actors(self.train)}_test{format_actors(self.test)}"

    def __str__(self) -> str:
        return f"train={format_actors(self.train).replace('.', ',')},test={format_actors(self.test).replace('.', ',')}"


def actor_text(actors: Iterable[int]) -> str:
    """``(1, 2, 3, 5)`` -> ``"01-03,05"``: actors as a split writes them."""
    found = tuple(sorted(set(actors)))
    return format_actors(found).replace(".", ",") if found else "none"


def suggest_split(actors: Iterable[int], test_share: float = 0.2) -> ActorSplit | None:
    """A split the ``actors`` allow: the last ``test_share`` of them (at least one) held out as test actors, the
    others to train (``train=01-16,test=17-20`` for actors 1-20); ``None`` for fewer than two actors."""
    found = sorted(set(actors))
    if len(found) < 2:
        return None
    n_test = max(1, round(len(found) * test_share))
    return ActorSplit(tuple(found[:-n_test]), tuple(found[-n_test:]))


def split_hint(actors: Iterable[int]) -> Advice | str:
    """``give e.g. --split train=01-16,test=17-20`` (a split the ``actors`` allow; as a deployment's parameter:
    ``set split to e.g. ...``), or what is missing for one."""
    found = suggest_split(actors)
    if found is None:
        return "a split needs clips of at least two actors, one to train and one to test"
    return give(Option("--split", "split", str(found)), example=True)


def lacking_actors(split: ActorSplit, actors: Iterable[int], what: str, where: str) -> Advised | None:
    """Why clips of ``actors`` cannot serve ``split`` (none of its train or none of its test actors), with a split
    they allow (its :class:`Advice`), in one line; ``None`` when they can. ``what``: "clips", "frames"; ``where``:
    "in the store"..."""
    present = set(actors)
    for side, wanted in (("test", split.test), ("train", split.train)):
        if not set(wanted) & present:
            hint = split_hint(present)
            return Advised(f"no {what} of the {side} actors of {split} {where} (actors present: "
                           f"{actor_text(present)}); {hint}", *([hint] if isinstance(hint, Advice) else []))
    return None
