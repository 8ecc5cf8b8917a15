"""Extraction on a real Dask cluster (scheduler and two workers as separate processes) and on S3."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from emotion.features import AudioFeatureParams
from emotion.store import Store
from flows.cli import main
from tests.services import BIN, free_port, port_open, process, service_env, wait_for

pytestmark = pytest.mark.slow


def test_extract_on_an_existing_dask_cluster(corpus: Path, tmp_path: Path, capsys):
    port = free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = service_env(tmp_path)
    sched = [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    worker = [str(BIN / "dask"), "worker", addr, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
              "--host", "127.0.0.1"]
    with process(sched, tmp_path / "scheduler.log", env) as sp:
        wait_for(lambda: port_open(port), 60, "dask scheduler", sp)
        with process(worker + ["--name", "w1"], tmp_path / "w1.log", env), \
             process(worker + ["--name", "w2"], tmp_path / "w2.log", env):
            from distributed import Client

            with Client(addr, timeout="30s") as c:
                c.wait_for_workers(2, timeout=60)
            out = tmp_path / "store"
            code = main(["extract", str(corpus), "--out", str(out), "--dask-address", addr, "--chunk-size", "10", "--json"])
            summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["processed"] == 120 and summary["rejected"] == 0
    assert len(summary["workers"]) == 2  # both workers did work
    df = Store(str(out)).read_parts(Store(str(out)).list_parts(Store(str(out)).features_dir("audio", AudioFeatureParams().key)))
    assert len(df) == 120 and df["path"].is_unique  # every clip exactly once


def test_unreachable_scheduler_is_a_one_line_error(corpus: Path, tmp_path: Path, capsys):
    code = main(["extract", str(corpus), "--out", str(tmp_path / "o"), "--dask-address", f"tcp://127.0.0.1:{free_port()}"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "cannot reach the Dask scheduler" in err[-1]


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
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        summary = json.loads(res.stdout)
        assert summary["processed"] == len(files) and summary["rejected"] == 1
        # a rerun reads the store back from S3 and skips everything
        res2 = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert json.loads(res2.stdout)["skipped"] == len(files)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="corpus", Prefix="store/")["Contents"]]
        assert any(k.startswith("store/features/audio/seed-") and k.endswith(".parquet") for k in keys)
        assert "store/rejects/audio.parquet" in keys and not any("/.tmp-" in k for k in keys)
    for text in (res.stdout, res.stderr, res2.stdout, res2.stderr):
        assert secret not in text  # credentials never reach the output or logs
