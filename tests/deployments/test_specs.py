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


def test_defaults_give_data_and_out_to_the_flows_that_take_them(tmp_path):
    # defaults: data and out were read for nothing: deployments without them registered, and each run failed
    p = tmp_path / "d.yaml"
    p.write_text("defaults:\n  data: /srv/ravdess\n  out: /srv/store\n  timezone: Europe/Paris\n"
                 "deployments:\n  - {name: e, flow: extract, cron: '0 2 * * *'}\n"
                 "  - {name: t, flow: train-audio, cron: '0 4 * * 0', parameters: {out: /srv/other}}\n")
    e, t = load_specs(p)
    assert e.parameters == {"data": "/srv/ravdess", "out": "/srv/store"} and e.timezone == "Europe/Paris"
    assert t.parameters == {"out": "/srv/other"}  # its own value wins; train-audio takes no data


@pytest.mark.parametrize("body, message", [
    ("deployments:\n  - {name: a, flow: extract, cron: '0 1 * * *', parameters: {data: /d}}\n",
     "deployment 'a' lacks out, which flow 'extract' needs"),
    ("deployments:\n  - {name: a, flow: extract, cron: '0 1 * * *', parameters: {data: '${NOT_SET_ANYWHERE}', out: /o}}\n",
     "lacks data"),
    ("deployments:\n  - {name: a, flow: train-audio, cron: '0 1 * * *', parameters: {out: /o, dask-address: x}}\n",
     "gives dask-address, which flow 'train-audio' does not take"),
])
def test_parameters_a_flow_lacks_or_does_not_take_are_refused_when_registering(tmp_path, body, message):
    p = tmp_path / "d.yaml"
    p.write_text(body)
    with pytest.raises(UsageError, match=message):
        load_specs(p)


@pytest.mark.parametrize("body, message", [
    ("deployments: [\n", r"d\.yaml: not valid YAML at line 2: expected the node content"),
    ("deployments:\n  - name: a\n    flow: extract\n   cron: '0 1 * * *'\n", r"d\.yaml: not valid YAML at line 4"),
    ("- name: a\n", r"d\.yaml: expected a mapping with a deployments: list .*found a list"),
    ("deployments: {name: a}\n", r"d\.yaml: deployments is not a list"),
    ("deployments:\n  - a\n", r"d\.yaml: deployment 1 is not a mapping"),
    ("deployments:\n  - {name: a, flow: extract, cron: '0 1 * * *', parameters: [data, out]}\n",
     r"d\.yaml: deployment 'a': parameters is not a mapping"),
    ("defaults: [data]\ndeployments:\n  - {name: a, flow: extract, cron: '0 1 * * *'}\n", r"d\.yaml: defaults is not"),
])
def test_a_malformed_file_is_one_line_naming_it(tmp_path, body, message):
    # a YAML syntax error was 59 lines of traceback ending in yaml.parser.ParserError
    p = tmp_path / "d.yaml"
    p.write_text(body)
    with pytest.raises(UsageError, match=message) as caught:
        load_specs(p)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("schedule, message", [
    ("cron: '61 * * * *'", r"d\.yaml: deployment 'a' has cron '61 \* \* \* \*', which is not a valid cron expression"),
    ("cron: 'H 2 * * *'", r"d\.yaml: deployment 'a' has cron 'H 2 \* \* \*', which is not a valid cron expression"),
    ("cron: '0 1 * * *'\n    timezone: Mars/Olympus",
     r"d\.yaml: deployment 'a' has timezone 'Mars/Olympus', which is not an IANA time zone"),
])
def test_a_bad_schedule_is_refused_when_registering(tmp_path, schedule, message):
    # was a raw ValueError ("Invalid cron string") or a pydantic ValidationError from build(), 25 and 40 lines long
    p = tmp_path / "d.yaml"
    p.write_text(f"deployments:\n  - name: a\n    flow: train-audio\n    {schedule}\n    parameters: {{out: /o}}\n")
    with pytest.raises(UsageError, match=message) as caught:
        load_specs(p)
    assert "\n" not in str(caught.value)


def test_a_timezone_under_defaults_is_checked_too(tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text("defaults: {timezone: Europe/Pariss}\n"
                 "deployments:\n  - {name: b, flow: train-audio, cron: '0 1 * * *', parameters: {out: /o}}\n")
    with pytest.raises(UsageError, match="deployment 'b' has timezone 'Europe/Pariss'"):
        load_specs(p)
