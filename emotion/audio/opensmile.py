"""openSMILE feature sets (``egemaps``, ``compare``), where the optional ``opensmile`` package is installed.

openSMILE is released for research and education only, so it is an optional
extra (``pip install -e '.[opensmile]'``), never a core dependency. Both sets
are openSMILE's own utterance-level functionals: eGeMAPS v02 (88) and
ComParE 2016 (6373), computed on mono audio at ``sample_rate``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from emotion.core.errors import RejectedInput, UsageError
from emotion.core.params import HashedParams

OPENSMILE_SETS = {"egemaps": "eGeMAPSv02", "compare": "ComParE_2016"}
INSTALL_HINT = "install the optional extra: pip install -e '.[opensmile]' (openSMILE: research and education use only)"


def opensmile_available() -> bool:
    try:
        import opensmile  # noqa: F401
    except ImportError:
        return False
    return True


def _require() -> Any:
    try:
        import opensmile
    except ImportError:
        raise UsageError(f"feature sets {', '.join(OPENSMILE_SETS)} need the opensmile package; {INSTALL_HINT}") from None
    return opensmile


@dataclass(frozen=True)
class OpenSmileParams(HashedParams):
    name: str = "egemaps"
    sample_rate: int = 16000
    revision: int = 1

    def __post_init__(self) -> None:
        if self.name not in OPENSMILE_SETS:
            raise UsageError(f"unknown openSMILE set {self.name!r}; choose from {sorted(OPENSMILE_SETS)}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "opensmile_set": OPENSMILE_SETS[self.name]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OpenSmileParams:
        return cls(**{k: v for k, v in d.items() if k != "opensmile_set"})

    def feature_names(self) -> list[str]:
        return list(_smile(self.name).feature_names)


@lru_cache(maxsize=4)
def _smile(name: str) -> Any:
    opensmile = _require()
    return opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, OPENSMILE_SETS[name]),
                           feature_level=opensmile.FeatureLevel.Functionals)


class OpenSmileExtractor:
    def __init__(self, params: OpenSmileParams) -> None:
        self.params = params
        self.names = params.feature_names()
        self._smile = _smile(params.name)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        if len(y) < self.params.sample_rate // 10:
            raise RejectedInput(f"clip too short for openSMILE: {len(y) / self.params.sample_rate:.3f} s")
        out = np.asarray(self._smile.process_signal(y, self.params.sample_rate), dtype=np.float32).reshape(-1)
        if not np.isfinite(out).all():
            raise RejectedInput("features are not finite (NaN or inf)")
        return out
