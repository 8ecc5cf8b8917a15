"""The pipeline against a real Prefect server on 127.0.0.1, checked through its REST API."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.services import BIN, prefect_server, process, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    with prefect_server(tmp_path_factory.mktemp("prefect")) as server:
        yield server


FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def call(method: str, url: str, body: dict | None = None) -> httpx.Response:
    """One API request, retried as Prefect's own client does on 429 and 5xx.

    A busy server (SQLite locked while the runner registers its deployments)
    answers 503 "Service Unavailable" for a moment; CI once lost its only
    create_flow_run call that way and then waited out the run that never was.
    """
    for attempt in range(6):
        r = httpx.request(method, url, json=body, timeout=30)
        if r.status_code not in (429, 500, 502, 503, 504):
            break
        time.sleep(0.5 * 2**attempt)
    if r.is_error:
        raise AssertionError(f"{method} {url} answered {r.status_code}: {r.text[:500]}")
    return r


def post(api: str, path: str, body: dict | None = None) -> list[dict]:
    return call("POST", f"{api}/{path}", body or {}).json()


def test_pipeline_runs_are_recorded_with_tasks_and_artifacts(prefect_api, tiny_corpus: Path, tmp_path: Path):
    api, env = prefect_api
    out = tmp_path / "store"
    cmd = [str(BIN / "emotion"), "run", str(tiny_corpus), "--out", str(out), "--split", "train=1-3,test=21",
           "--features", "seed", "--model", "svc", "--n-iter", "2", "--workers", "2", "--json"]
    res = subprocess.run(cmd, env={**__import__("os").environ, **env, "PREFECT_API_URL": api},
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)
    assert summary["extract"]["processed"] == 120

    runs = {r["name"]: r for r in post(api, "flow_runs/filter")}
    pipeline = next(r for n, r in runs.items() if n.startswith("pipeline-all-seed-train=1-3,test=21-"))
    extract = next(r for n, r in runs.items() if n.startswith("extract-audio-seed-data-"))
    train = next(r for n, r in runs.items() if n.startswith("train-audio-seed-train=1-3,test=21-data-"))
    for r in (pipeline, extract, train):
        assert r["state_type"] == "COMPLETED"
    # the extraction and the training name the same data version, and each run ends with its own id
    version = extract["name"].split("-data-")[1].split("-")[0]
    assert train["name"].split("-data-")[1].split("-")[0] == version and len(version) == 8
    for r in (pipeline, extract, train):
        assert r["name"].endswith(r["id"].replace("-", "")[-6:])
    # named when they begin: the names the terminal printed are the names the API holds, never renamed
    printed = set(re.findall(r"^flow run ([^\s:]+): ", res.stderr, re.M))
    assert printed == {pipeline["name"], extract["name"], train["name"]}, res.stderr[-2000:]
    # every flow run carries its split, feature set, modality, data version and normalisation as tags
    for r in (pipeline, extract, train):
        assert {"split:train=1-3,test=21", "features:seed", "speaker-norm:no"} <= set(r["tags"]), r["tags"]
    assert {"modality:audio", f"data:{version}"} <= set(extract["tags"]) & set(train["tags"])
    assert "modality:all" in pipeline["tags"] and "modality:all" not in extract["tags"]  # a step's own tag wins
    # the pipeline's steps are task runs of its own run (not "0 Task runs"), each the parent of its step's flow run
    # the server records task run states from the events the command sent, a moment after it exits: wait for them
    run_ids = [pipeline["id"], extract["id"], train["id"]]
    wait_for(lambda: all(t["state_type"] in FINAL for t in post(api, "task_runs/filter",
                                                                  {"flow_runs": {"id": {"any_": run_ids}}})),
             60, "the task run states of the pipeline's flow runs")
    steps = {t["name"]: t for t in post(api, "task_runs/filter", {"flow_runs": {"id": {"any_": [pipeline["id"]]}}})}
    assert {"extract-audio-seed", "train-audio-svc"} <= set(steps)
    assert all(t["state_type"] == "COMPLETED" for t in steps.values())
    for run, step in ((extract, "extract-audio-seed"), (train, "train-audio-svc")):
        placeholder = call("GET", f"{api}/task_runs/{run['parent_task_run_id']}").json()
        assert {"input_type": "task_run", "id": steps[step]["id"]} in placeholder["task_inputs"]["__parents__"]
    tasks = post(api, "task_runs/filter", {"flow_runs": {"id": {"any_": [extract["id"], train["id"]]}}})
    names = sorted(t["name"] for t in tasks)
    assert [n for n in names if n.startswith("extract-audio-")] == [
        "extract-audio-clips-0001-0040", "extract-audio-clips-0041-0080", "extract-audio-clips-0081-0120"]
    assert {"train-svc", "write-summary-train01-03_test21", "write-report-train01-03_test21"} <= set(names)
    assert all(t["state_type"] == "COMPLETED" for t in tasks)
    assert all("split:train=1-3,test=21" in t["tags"] for t in tasks)
    keys = {a["key"] for a in post(api, "artifacts/filter") if a.get("key")}
    assert {"audio-extract-progress", "audio-train-progress", "audio-extract-counts", "audio-rejects",
            "audio-model-metrics", "audio-evaluation-report"} <= keys
    [counts] = [a for a in post(api, "artifacts/filter", {"artifacts": {"key": {"any_": ["audio-extract-counts"]}}})]
    assert json.loads(counts["data"])[0]["clips processed"] == 120
    [rejects] = post(api, "artifacts/filter", {"artifacts": {"key": {"any_": ["audio-rejects"]}}})
    assert rejects["type"] == "markdown" and "was rejected" in rejects["data"]  # no placeholder row
    progress = {a["key"]: a for a in post(api, "artifacts/filter", {"artifacts": {"type": {"any_": ["progress"]}}})}
    assert progress["audio-extract-progress"]["data"] == 100 and progress["audio-train-progress"]["data"] == 100


def test_deployments_are_registered_with_cron_schedules(prefect_api, tmp_path: Path):
    api, env = prefect_api
    cmd = [str(BIN / "emotion"), "deploy", "--register-only"]
    # the data root must exist where the runs will read it: a missing one is refused when registering
    res = subprocess.run(cmd, env={**__import__("os").environ, **env, "PREFECT_API_URL": api, "EMOTION_DATA": str(tmp_path)},
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    deps = {d["name"]: d for d in post(api, "deployments/filter")}
    assert set(deps) >= {"nightly-extract", "weekly-train", "monthly-pipeline"}
    crons = {n: [s["schedule"]["cron"] for s in d["schedules"]] for n, d in deps.items()}
    assert crons["nightly-extract"] == ["0 2 * * *"] and crons["weekly-train"] == ["0 4 * * 0"]
    assert deps["weekly-train"]["parameters"]["split"] == "train=1-20,test=21-24"

    # the server's scheduler turns each cron schedule into scheduled runs (with SQLAlchemy 2.1 it failed on every
    # pass, so schedules never fired)
    def scheduled() -> set[str]:
        runs = post(api, "flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}},
                                                            "deployment_id": {"any_": [d["id"] for d in deps.values()]}}})
        return {r["deployment_id"] for r in runs if r.get("auto_scheduled")}

    want = {deps[n]["id"] for n in ("nightly-extract", "weekly-train", "monthly-pipeline")}
    wait_for(lambda: want <= scheduled(), 90, "scheduled runs of the three deployments")


@pytest.fixture
def fresh_prefect_api(tmp_path_factory):
    """A server of its own: the runner's polls do not queue behind the other tests' runs, events and logs."""
    with prefect_server(tmp_path_factory.mktemp("prefect-serve")) as server:
        yield server


def test_served_deployment_runs_when_triggered(fresh_prefect_api, tiny_corpus: Path, tmp_path: Path):
    """`emotion deploy` serves a deployment; a run created through the API executes and completes."""
    api, env = fresh_prefect_api
    out = tmp_path / "served-store"
    spec = tmp_path / "deployments.yaml"
    spec.write_text("deployments:\n  - name: serve-check\n    flow: extract\n    cron: '30 1 * * *'\n"
                    f"    parameters:\n      data: {tiny_corpus}\n      out: {out}\n      workers: 1\n")
    argv = [str(BIN / "emotion"), "deploy", "--file", str(spec)]
    log = tmp_path / "serve.log"
    # poll every 2 s (default 10) and log at debug level, so a run that is never picked up shows why
    serve_env = {**env, "PREFECT_API_URL": api, "PREFECT_RUNNER_POLL_FREQUENCY": "2", "PREFECT_LOGGING_LEVEL": "DEBUG"}
    with process(argv, log, serve_env) as proc:
        wait_for(lambda: "serve-check" in {d["name"] for d in post(api, "deployments/filter")}, 120, "serve", proc,
                 log=log)
        [dep] = [d for d in post(api, "deployments/filter") if d["name"] == "serve-check"]
        assert dep["schedules"][0]["schedule"]["cron"] == "30 1 * * *"
        # two runs due at once (as the backlog after a while down): one at a time, both complete; together, one
        # failed on the store's lock
        runs = [call("POST", f"{api}/deployments/{dep['id']}/create_flow_run", {}).json() for _ in range(2)]
        seen: list[str] = []

        def finished() -> bool:
            done = []
            for run in runs:
                fr = call("GET", f"{api}/flow_runs/{run['id']}").json()
                state = f"{fr['name']} {fr['state_type']} ({fr['state_name']})"
                if state not in seen:
                    seen.append(state)
                assert fr["state_type"] not in ("FAILED", "CRASHED", "CANCELLED"), log.read_text()[-3000:]
                done.append(fr["state_type"] == "COMPLETED")
            return all(done)

        try:
            wait_for(finished, 300, "the triggered deployment run", proc, log=log)
        except TimeoutError as exc:
            runner = [ln for ln in log.read_text(errors="replace").splitlines() if "runner" in ln.lower()][-30:]
            raise TimeoutError(f"{exc}\nstates seen: {' -> '.join(seen)}\n--- runner lines of serve.log ---\n"
                               + "\n".join(runner) + f"\n--- server log ---\n{prefect_server_log(env)}") from None
        assert proc.poll() is None  # still serving
        first, second = sorted((call("GET", f"{api}/flow_runs/{r['id']}").json() for r in runs),
                               key=lambda fr: fr["start_time"])
        assert first["end_time"] <= second["start_time"], (first, second)  # one after the other
        # the server names the runs it creates at random (Prefect 3.9 has no name template for a deployment or a
        # schedule); each is named by its flow as it starts, as the command's own runs are
        for fr in (first, second):
            assert re.fullmatch(rf"extract-all-seed-data-[0-9a-f]{{8}}-{fr['id'].replace('-', '')[-6:]}", fr["name"]), fr
    assert proc.returncode is not None  # stopped on SIGTERM
    assert len(list((out / "features" / "audio").glob("seed-*/part-*.parquet"))) >= 1


def prefect_server_log(env: dict[str, str]) -> str:
    path = Path(env["PREFECT_HOME"]).parent / "server.log"
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(none)"
