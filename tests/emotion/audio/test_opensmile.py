import sys

import numpy as np
import pytest

from emotion.audio.opensmile import OpenSmileParams, opensmile_available
from emotion.core.errors import UsageError
from emotion.featuresets import feature_set, make_extractor


def test_missing_package_is_a_usage_error_naming_the_extra(monkeypatch):
    import emotion.audio.opensmile as fo

    fo._smile.cache_clear()
    monkeypatch.setitem(sys.modules, "opensmile", None)  # import opensmile -> ImportError
    for name in ("egemaps", "compare"):
        with pytest.raises(UsageError, match=r"pip install -e '\.\[opensmile\]'"):
            feature_set(name)
    assert not opensmile_available()
    fo._smile.cache_clear()


@pytest.mark.skipif(not opensmile_available(), reason="the optional opensmile package is not installed")
def test_egemaps_values_and_key():
    p = feature_set("egemaps")
    assert isinstance(p, OpenSmileParams) and p.key.startswith("egemaps-") and p.key != feature_set("compare").key
    assert OpenSmileParams.from_dict(p.to_dict()) == p
    t = np.arange(16000 * 2) / 16000
    y = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    ex = make_extractor(p)
    v = ex(y)
    assert len(v) == len(ex.names) == 88 and np.isfinite(v).all()
    d = dict(zip(ex.names, v, strict=True))
    # 220 Hz is 12 * log2(220 / 27.5) = 36 semitones above openSMILE's 27.5 Hz reference
    assert d["F0semitoneFrom27.5Hz_sma3nz_amean"] == pytest.approx(36, abs=0.5)
