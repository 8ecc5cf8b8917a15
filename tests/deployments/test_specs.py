from pathlib import Path

import pytest

from deployments import DEFAULT_FILE, build, load_specs
from emotion.core.errors import UsageError


def test_default_file_declares_extract_train_and_pipeline(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOTION_DATA", str(tmp_path))  # a data root that exists: it is checked when registering
    monkeypatch.delenv("EMOTION_OUT", raising=False)
    monkeypatch.delenv("EMOTION_DASK_ADDRESS", raising=False)
    specs = {s.name: s for s in load_specs(DEFAULT_FILE)}
    assert {s.flow for s in specs.values()} == {"extract", "train-audio", "emotion-pipeline"}
    assert specs["nightly-extract"].cron == "0 2 * * *"
    # the empty Dask address is dropped
    assert specs["nightly-extract"].parameters == {"data": str(tmp_path), "out": "/data/emotion-store", "modality": "all"}
    deps = build(list(specs.values()))
    assert [d.name for d in deps] == list(specs)
    assert deps[1].schedules[0].schedule.cron == "0 4 * * 0"


@pytest.mark.parametrize("body, message", [
    ("deployments:\n  - name: a\n    flow: nope\n    cron: '0 1 * * *'\n", "unknown flow"),
    ("deployments:\n  - name: a\n    flow: train-audio\n    cron: 'daily'\n", "expected 5 fields"),
    ("deployments:\n  - name: a\n    flow: train-audio\n", "deployment 'a' lacks cron$"),
    # a walkthrough: "has cron 5; expected 5 fields", and an empty cron named the deployment by its position
    ("deployments:\n  - name: a\n    flow: train-audio\n    cron: 5\n",
     r"deployment 'a' has cron '5': expected 5 fields \(minute, hour, day of month, month, day of week; e.g. "
     r"'0 2 \* \* \*'\) or one of @hourly, @daily"),
    ("deployments:\n  - name: a\n    flow: train-audio\n    cron: ''\n", r"deployment 'a' lacks cron \(cron given empty\)"),
    ("deployments:\n  - name: a\n    flow: train-audio\n    cron: '  '\n", "expected 5 fields"),
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
    p.write_text(f"defaults:\n  data: {tmp_path}\n  out: /srv/store\n  timezone: Europe/Paris\n"
                 "deployments:\n  - {name: e, flow: extract, cron: '0 2 * * *'}\n"
                 "  - {name: t, flow: train-audio, cron: '0 4 * * 0', parameters: {out: /srv/other}}\n")
    e, t = load_specs(p)
    assert e.parameters == {"data": str(tmp_path), "out": "/srv/store"} and e.timezone == "Europe/Paris"
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


def test_prefects_cron_shorthands_are_taken(tmp_path):
    """A walkthrough: '@daily', which Prefect's schedules take, was refused as not having 5 fields."""
    p = tmp_path / "d.yaml"
    p.write_text("deployments:\n  - {name: a, flow: train-audio, cron: '@daily', parameters: {out: /o}}\n")
    (spec,) = load_specs(p)
    assert spec.cron == "@daily" and build([spec])[0].schedules[0].schedule.cron == "@daily"


def test_a_timezone_under_defaults_is_checked_too(tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text("defaults: {timezone: Europe/Pariss}\n"
                 "deployments:\n  - {name: b, flow: train-audio, cron: '0 1 * * *', parameters: {out: /o}}\n")
    with pytest.raises(UsageError, match="deployment 'b' has timezone 'Europe/Pariss'"):
        load_specs(p)


def _deployment(tmp_path, flow: str, parameters: str) -> Path:
    p = tmp_path / "d.yaml"
    p.write_text(f"deployments:\n  - {{name: a, flow: {flow}, cron: '0 2 * * *', parameters: {parameters}}}\n")
    return p


@pytest.mark.parametrize("flow, parameters, message", [
    # what the audit registered (rc 0) and saw fail only when the run fired
    ("extract", "{data: /nonexistent, out: OUT}", "parameter data: data root '/nonexistent' does not exist"),
    ("extract", "{data: DATA, out: OUT, modality: sound}", "parameter modality: unknown modality 'sound'"),
    ("extract", "{data: DATA, out: OUT, chunk_size: -5}", "parameter chunk_size: must be between 1 and 100000, got -5"),
    ("train-audio", "{out: OUT, split: 'train=1-2'}", "parameter split: "),
    ("train-audio", "{out: OUT, models: [nosuch]}", "parameter models: unknown model 'nosuch'"),
    # the other checks the command line runs
    ("train-audio", "{out: OUT, models: [cnn]}", "parameter models: unknown model 'cnn'; choose from rf"),
    ("train-audio", "{out: OUT, models: [melcnn]}",
     "parameter models: model 'melcnn' reads the logmel feature set, not 'seed'; set features to logmel$"),
    ("train-audio", "{out: OUT, features: nosuch}", "parameter features: unknown feature set 'nosuch'"),
    # what to change as the file's parameters give it, not as the command line's options (--features)
    ("train-audio", "{out: OUT, augment: [0.9]}", "parameter augment: augment needs features set to extended "
                                                 r"\(the seed set has no augmented copies\)$"),
    ("train-audio", "{out: OUT, search: {n_iter: 0}}", "parameter search.n_iter: must be between 1 and"),
    ("train-audio", "{out: OUT, search: {cv_folds: 1}}", "parameter search.cv_folds: must be between 2 and"),
    ("train-audio", "{out: OUT, n_jobs: 0}", "parameter n_jobs: must be between 1 and"),
    ("train-audio", "{out: OUT, n_jobs: many}", "parameter n_jobs: Input should be a valid integer"),
    ("extract", "{data: DATA, out: OUT, frames: {every: 0}}", "parameter frames: frame parameters out of range"),
    ("extract", "{data: DATA, out: OUT, frames: {size: 10}}", "parameter frames.size: must be between 16 and"),
    ("extract", "{data: DATA, out: OUT, workers: 0}", "parameter workers: must be between 1 and"),
    ("extract", "{data: DATA, out: 'memory://x'}", "parameter out: 'memory://x': a memory:// store"),
    ("extract", "{data: DATA, out: DATA/clip.wav}", "parameter out: output '.*clip.wav' exists and is not a folder"),
    ("emotion-pipeline", "{data: DATA, out: OUT, models: [rf, nosuch]}", "parameter models: unknown model 'nosuch'"),
    ("emotion-pipeline", "{data: DATA, out: OUT, modality: face}", "parameter modality: unknown modality 'face'"),
    ("emotion-pipeline", "{data: DATA, out: OUT, video_params: {cnn: {epochs: 0}}}",
     r"parameter video_params.cnn.epochs: must be between 1 and"),
    ("evaluate-loso", "{out: OUT, mode: fast}", "parameter mode: unknown LOSO mode 'fast'"),
    ("evaluate-loso", "{out: OUT, params_from: 'train=1-3,test=3'}", "parameter params_from: "),
])
def test_a_bad_parameter_value_is_refused_when_registering(tmp_path, flow, parameters, message):
    data = tmp_path / "data"
    data.mkdir()
    (data / "clip.wav").write_bytes(b"")
    p = _deployment(tmp_path, flow, parameters.replace("DATA", str(data)).replace("OUT", str(tmp_path / "out")))
    with pytest.raises(UsageError, match=rf"d\.yaml: deployment 'a' {message}") as caught:
        load_specs(p)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()  # nothing is created when registering


def test_good_values_pass_and_urls_are_not_looked_up(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    p = tmp_path / "d.yaml"
    p.write_text("deployments:\n"
                 f"  - {{name: e, flow: extract, cron: '0 2 * * *', parameters: {{data: {data}, out: {tmp_path}/o, "
                 "modality: audio, chunk_size: 10, features: extended, augment: [0.9, 1.1], frames: {every: 5}}}\n"
                 "  - {name: s, flow: extract, cron: '0 2 * * *', parameters: {data: 's3://bucket/ravdess', "
                 "out: 's3://bucket/store'}}\n"
                 "  - {name: t, flow: train-audio, cron: '0 4 * * 0', parameters: {out: /nonexistent/store, "
                 "split: 'train=1-20,test=21-24', models: [rf, lr], search: {n_iter: 5}}}\n"
                 "  - {name: p, flow: emotion-pipeline, cron: '0 5 1 * *', parameters: {data: s3://b/d, out: s3://b/s, "
                 "models: [lr, cnn, fusion-late], modality: all}}\n")
    specs = load_specs(p)
    assert [s.name for s in specs] == ["e", "s", "t", "p"]
    assert specs[0].parameters["augment"] == [0.9, 1.1]  # registered as given; the run's validation types them
    assert not (tmp_path / "o").exists()


def test_a_variable_left_unset_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("EMOTION_TEST_UNSET", raising=False)
    p = tmp_path / "d.yaml"
    # wholly unset and needed: "lacks data" said only that, not why
    p.write_text("deployments:\n  - {name: a, flow: extract, cron: '0 1 * * *', "
                 "parameters: {data: '${EMOTION_TEST_UNSET}', out: /o}}\n")
    with pytest.raises(UsageError, match=r"deployment 'a' lacks data, .*; EMOTION_TEST_UNSET is not set in the env"):
        load_specs(p)
    # inside a longer value: was checked (or registered, for a URL) as the half path left, "/ravdess" or "s3:///x"
    for value in ("${EMOTION_TEST_UNSET}/ravdess", "s3://${EMOTION_TEST_UNSET}/ravdess"):
        p.write_text(f"deployments:\n  - {{name: a, flow: extract, cron: '0 1 * * *', parameters: {{data: '{value}', "
                     "out: /o}}\n")
        with pytest.raises(UsageError, match=r"deployment 'a' parameter data: '.*' uses EMOTION_TEST_UNSET, which is "
                                             r"not set in the environment \(set it, or give a default"):
            load_specs(p)


def test_a_default_path_that_does_not_exist_says_which_variable_would_give_another(tmp_path, monkeypatch):
    # the default file on a machine without /data/ravdess and without EMOTION_DATA
    monkeypatch.delenv("EMOTION_DATA", raising=False)
    p = tmp_path / "d.yaml"
    p.write_text(f"defaults: {{data: '${{EMOTION_DATA:-{tmp_path}/nowhere}}'}}\n"
                 "deployments:\n  - {name: a, flow: extract, cron: '0 1 * * *', parameters: {out: /o}}\n")
    with pytest.raises(UsageError, match=rf"deployment 'a' parameter data: data root '{tmp_path}/nowhere' does not "
                                         rf"exist or is not a folder \(from \$\{{EMOTION_DATA:-{tmp_path}/nowhere\}}; "
                                         r"EMOTION_DATA is not set\)$"):
        load_specs(p)
