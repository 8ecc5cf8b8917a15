import pytest

from deployments import DEFAULT_FILE, build, load_specs
from emotion.core.errors import UsageError


def test_default_file_declares_extract_train_and_pipeline(monkeypatch):
    monkeypatch.setenv("EMOTION_DATA", "/srv/ravdess")
    monkeypatch.delenv("EMOTION_DASK_ADDRESS", raising=False)
    specs = {s.name: s for s in load_specs(DEFAULT_FILE)}
    assert {s.flow for s in specs.values()} == {"extract", "train-audio", "emotion-pipeline"}
    assert specs["nightly-extract"].cron == "0 2 * * *"
    # the empty Dask address is dropped
    assert specs["nightly-extract"].parameters == {"data": "/srv/ravdess", "out": "/data/emotion-store", "modality": "all"}
    deps = build(list(specs.values()))
    assert [d.name for d in deps] == list(specs)
    assert deps[1].schedules[0].schedule.cron == "0 4 * * 0"


@pytest.mark.parametrize("body, message", [
    ("deployments:\n  - name: a\n    flow: nope\n    cron: '0 1 * * *'\n", "unknown flow"),
    ("deployments:\n  - name: a\n    flow: train-audio\n    cron: 'daily'\n", "expected 5 fields"),
    ("deployments:\n  - name: a\n    flow: train-audio\n", "lacks cron"),
    ("deployments: []\n", "no deployments"),
])
def test_bad_files_are_refused_with_a_reason(tmp_path, body, message):
    p = tmp_path / "d.yaml"
    p.write_text(body)
    with pytest.raises(UsageError, match=message):
        load_specs(p)
