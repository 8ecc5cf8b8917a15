"""Extraction on a real Dask cluster (scheduler and two workers as separate processes) and on S3."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from emotion.audio.seed import AudioFeatureParams
from emotion.store.store import Store
from flows.cli import main
from tests.services import BIN, free_port, netns_hosts, port_open, process, service_env, wait_for

pytestmark = pytest.mark.slow


def test_extract_on_an_existing_dask_cluster(corpus: Path, tmp_path: Path, capsys):
    """A real scheduler and two workers; each worker on its own host (network namespace) where the machine allows it."""
    port = free_port()
    env = service_env(tmp_path)
    with netns_hosts(2) as hosts:
        if hosts is None:  # not root: separate processes on 127.0.0.1 only
            bind, workers = "127.0.0.1", [([], "127.0.0.1", "127.0.0.1"), ([], "127.0.0.1", "127.0.0.1")]
        else:  # the scheduler listens on this host's side of each link; each worker connects from its own host
            bind = ""
            workers = [(["ip", "netns", "exec", ns], here, there) for ns, here, there in hosts]
        sched = [str(BIN / "dask"), "scheduler", "--port", str(port), "--no-dashboard",
                 *(["--host", bind] if bind else [])]
        with process(sched, tmp_path / "scheduler.log", env) as sp:
            wait_for(lambda: port_open(port), 60, "dask scheduler", sp)
            with process([*workers[0][0], str(BIN / "dask"), "worker", f"tcp://{workers[0][1]}:{port}", "--host",
                          workers[0][2], "--nthreads", "1", "--nworkers", "1", "--no-dashboard", "--name", "w1"],
                         tmp_path / "w1.log", env), \
                 process([*workers[1][0], str(BIN / "dask"), "worker", f"tcp://{workers[1][1]}:{port}", "--host",
                          workers[1][2], "--nthreads", "1", "--nworkers", "1", "--no-dashboard", "--name", "w2"],
                         tmp_path / "w2.log", env):
                from distributed import Client

                addr = f"tcp://127.0.0.1:{port}"
                with Client(addr, timeout="30s") as c:
                    c.wait_for_workers(2, timeout=60)
                    seen_hosts = {w["host"] for w in c.scheduler_info()["workers"].values()}
                out = tmp_path / "store"
                code = main(["extract", str(corpus), "--out", str(out), "--modality", "audio", "--dask-address", addr,
                             "--chunk-size", "10", "--json"])
                summary = json.loads(capsys.readouterr().out)
    if hosts is not None:
        assert seen_hosts == {h[2] for h in hosts}  # the workers really are on two other hosts
    assert code == 0
    assert summary["processed"] == 120 and summary["rejected"] == 0
    assert len(summary["workers"]) == 2  # both workers did work
    store = Store(str(out))
    df = store.read_parts(store.list_parts(store.features_dir("audio", AudioFeatureParams().key)))
    assert len(df) == 120 and df["path"].is_unique  # every clip exactly once


def test_unreachable_scheduler_is_a_one_line_error(corpus: Path, tmp_path: Path, capsys):
    code = main(["extract", str(corpus), "--out", str(tmp_path / "o"), "--dask-address", f"tcp://127.0.0.1:{free_port()}"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "cannot reach the Dask scheduler" in err[-1]


def test_a_scheduler_without_workers_is_a_one_line_error_not_a_hang(tiny_corpus: Path, tmp_path: Path, capsys,
                                                                    monkeypatch):
    """A scheduler whose workers are gone (died, or never started): the extraction fails after the set time with
    one line, nothing half-written, instead of waiting forever."""
    port = free_port()
    env = service_env(tmp_path)
    monkeypatch.setenv("EMOTION_NO_WORKERS_TIMEOUT", "3")
    with process([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                 tmp_path / "scheduler.log", env) as sp:
        wait_for(lambda: port_open(port), 60, "dask scheduler", sp)
        code = main(["extract", str(tiny_corpus), "--out", str(tmp_path / "o"), "--modality", "audio",
                     "--dask-address", f"tcp://127.0.0.1:{port}"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("emotion: extract failed: the Dask cluster at tcp://127.0.0.1:") and \
        "has had no worker for 3 s (its workers died or never started)" in err[-1], err[-5:]
    assert not any(Path(tmp_path / "o").rglob("part-*.parquet"))  # no features kept from a run that did nothing


def test_extract_from_and_to_s3(tiny_corpus: Path, tmp_path: Path):
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("s3fs")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    secret = "test-secret-key-do-not-print"
    creds = {"AWS_ACCESS_KEY_ID": "testkey", "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1"}
    with process([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], tmp_path / "moto.log") as mp:
        wait_for(lambda: port_open(port), 60, "moto server", mp)
        s3 = boto3.client("s3", endpoint_url=endpoint, **{k.lower(): v for k, v in creds.items() if k != "AWS_DEFAULT_REGION"},
                          region_name="us-east-1")
        s3.create_bucket(Bucket="corpus")
        files = sorted(p for p in tiny_corpus.rglob("*.*") if "Actor_21" in str(p) or "Actor_01" in str(p))
        for f in files:
            s3.upload_file(str(f), "corpus", f"ravdess/{f.relative_to(tiny_corpus).as_posix()}")
        s3.put_object(Bucket="corpus", Key="ravdess/Actor_01/03-01-05-01-01-02-01.wav", Body=b"")  # a bad one
        env = {**os.environ, **service_env(tmp_path), **creds, "FSSPEC_S3_ENDPOINT_URL": endpoint}
        cmd = [str(BIN / "emotion"), "extract", "s3://corpus/ravdess", "--out", "s3://corpus/store", "--workers", "1", "--json"]
        res = subprocess.run([*cmd, "--chunk-size", "3"], env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        summary = json.loads(res.stdout)
        assert summary["processed"] == len(files) and summary["rejected"] == 1
        audio = summary["modalities"]["audio"]  # one part per 3 of 60 clips, more than 16: merged on S3 too
        assert audio["merged_parts"] > 16 and audio["parts"] == 1
        listed = s3.list_objects_v2(Bucket="corpus", Prefix=f"store/features/audio/{audio['feature_set']}/")["Contents"]
        assert len([o for o in listed if o["Key"].endswith(".parquet")]) == 1
        # a rerun reads the store back from S3 and skips everything
        res2 = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert json.loads(res2.stdout)["skipped"] == len(files)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="corpus", Prefix="store/")["Contents"]]
        assert any(k.startswith("store/features/audio/seed-") and k.endswith(".parquet") for k in keys)
        assert "store/rejects/audio.parquet" in keys and not any("/.tmp-" in k for k in keys)
        # a walkthrough: a bucket that does not exist, then the endpoint down, came out as tracebacks
        local = [str(BIN / "emotion"), "extract", str(tiny_corpus / "Actor_01"), "--workers", "1"]
        nobucket = subprocess.run([*local, "--out", "s3://nobucket/store"], env=env, capture_output=True, text=True,
                                  timeout=600)
    down = subprocess.run([*local, "--out", "s3://corpus/store"], env=env, capture_output=True, text=True, timeout=600)
    for res3, why in ((nobucket, "cannot write the store's lock s3://nobucket/store/.lock: "),
                      (down, "cannot read the store's lock s3://corpus/store/.lock: EndpointConnectionError")):
        assert res3.returncode == 1 and "Traceback" not in res3.stderr, res3.stderr[-3000:]
        assert res3.stderr.strip().splitlines()[-1].startswith(f"emotion: extract failed: {why}"), res3.stderr[-3000:]
    for text in (res.stdout, res.stderr, res2.stdout, res2.stderr, nobucket.stderr, down.stderr):
        assert secret not in text  # credentials never reach the output or logs
