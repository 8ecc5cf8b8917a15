"""Parameter objects that name and hash what changes a result.

Every feature set, frame sampler and model family describes itself by a
frozen dataclass; its dict is recorded beside every output and hashed into
the store key (``<name>-<hash>``) and run versions, so a change of any value
writes new outputs instead of mixing old and new.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any, Self


def stable_hash(obj: Any, length: int = 12) -> str:
    """A short hex digest of a JSON-able object, independent of key order."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


class HashedParams:
    """What every feature set's frozen parameter dataclass shares: its dict, hash and store key.

    ``to_dict`` is what is recorded beside every output and hashed; a
    subclass that records more (or other types) overrides it and
    ``from_dict`` together.
    """

    name: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload, no-any-return]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        return cls(**d)

    def hash(self) -> str:
        return stable_hash(self.to_dict())

    @property
    def key(self) -> str:
        """The store folder name of this feature set: ``<name>-<hash>``."""
        return f"{self.name}-{self.hash()}"

    def feature_names(self) -> list[str]:
        raise NotImplementedError

    def variant_names(self) -> list[list[str]]:
        """The columns of each augmented copy of a clip stored beside its own (none unless a set augments)."""
        return []

    def column_names(self) -> list[str]:
        """Every stored feature column: the clip's own vector, then those of its augmented copies."""
        return self.feature_names() + [n for v in self.variant_names() for n in v]

    def augment_speeds(self) -> tuple[float, ...]:
        """The speeds of the augmented copies stored beside each clip (none unless a set augments)."""
        return ()

    @property
    def copies(self) -> int:
        """Feature vectors per stored row: the clip's own, then one per augmented copy."""
        return len(self.variant_names()) + 1

    def without_copies(self) -> Self:
        """These parameters without augmented copies (the clip's own vector is the same)."""
        return self
