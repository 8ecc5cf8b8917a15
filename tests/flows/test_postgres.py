"""The Prefect server on PostgreSQL, as in production: `emotion server` on a throwaway database.

PostgreSQL comes from the system (Debian's ``postgresql`` package: ``initdb`` and ``pg_ctl`` under
``/usr/lib/postgresql/<version>/bin``; ``.ci/run`` installs it where it is missing). The test makes a cluster
in a temporary folder, listening on 127.0.0.1 only on a free port, and stops and removes it afterwards.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.flows.test_prefect_server import post
from tests.services import BIN, free_port, port_open, prefect_server, wait_for

pytestmark = pytest.mark.slow


def postgres_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: on the PATH, else Debian's versioned folder (newest first)."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    for pg_ctl in sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[-3]), reverse=True):
        return Path(pg_ctl).parent
    return None


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL on 127.0.0.1 (trust authentication, its own folder); yields its asyncpg URL."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run installs it)")
    # initdb refuses to run as root: as root, the cluster belongs to the postgres user
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run PostgreSQL as (apt-get install postgresql)")
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as the postgres user")
    home = Path(tempfile.mkdtemp(prefix="emotion-pg-"))  # not under pytest's root-only tmp folder
    data, log = home / "data", home / "postgres.log"
    if as_user:
        shutil.chown(home, "postgres", "postgres")
    port = free_port()

    def run(*argv: str) -> None:
        res = subprocess.run([*as_user, *argv], capture_output=True, text=True, timeout=120)
        if res.returncode:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr[-2000:]}\n{tail}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "emotion", "--auth=trust", "-E", "UTF8", "--no-sync")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
            f"-h 127.0.0.1 -p {port} -k {home} -c fsync=off", "start")
        try:
            wait_for(lambda: port_open(port), 30, "postgresql")
            run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "emotion", "prefect")
            yield f"postgresql+asyncpg://emotion@127.0.0.1:{port}/prefect"
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def psql(url: str, sql: str) -> str:
    """One query through ``psql`` (as the server's own client would see the tables)."""
    port = url.split(":")[-1].split("/")[0]
    res = subprocess.run([str(postgres_bin() / "psql"), "-h", "127.0.0.1", "-p", port, "-U", "emotion", "-d", "prefect",
                          "-At", "-c", sql], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_emotion_server_on_postgresql_records_extraction_and_training(tiny_corpus: Path, tmp_path: Path):
    with postgres() as db, prefect_server(tmp_path, command=[str(BIN / "emotion"), "server"],
                                          extra_env={"PREFECT_API_DATABASE_CONNECTION_URL": db}) as (api, env):
        assert "postgresql+asyncpg://" in (tmp_path / "server.log").read_text()  # emotion server says which database
        run_env = {**os.environ, **env, "PREFECT_API_URL": api}
        out = tmp_path / "store"
        for cmd in (["extract", str(tiny_corpus), "--out", str(out), "--modality", "audio", "--workers", "1"],
                    ["train", str(out), "--split", "train=1-3,test=21", "--model", "lr", "--n-iter", "2", "--jobs", "1"]):
            res = subprocess.run([str(BIN / "emotion"), *cmd, "--json"], env=run_env, capture_output=True, text=True,
                                 timeout=600)
            assert res.returncode == 0, res.stderr[-3000:]
            json.loads(res.stdout)

        runs = post(api, "flow_runs/filter")
        by_flow = {r["name"]: r for r in runs}
        extract = next(r for n, r in by_flow.items() if n.startswith("extract-"))
        train = next(r for n, r in by_flow.items() if n.startswith("train-"))
        assert extract["state_type"] == train["state_type"] == "COMPLETED"
        def task_runs() -> list[dict]:
            return post(api, "task_runs/filter", {"flow_runs": {"id": {"any_": [extract["id"], train["id"]]}}})

        # the server records task runs from the events a command sent, a moment after it exits: wait for the last
        wait_for(lambda: "train-lr" in {t["name"] for t in task_runs()}, 60, "the training's task runs")
        tasks = task_runs()
        names = {t["name"] for t in tasks}
        assert {"inventory-audio", "plan-audio", "commit-audio"} <= names and "train-lr" in names
        assert sum(n.startswith("extract-audio-") for n in names) == 3  # 120 clips in chunks of 40
        keys = {a["key"] for a in post(api, "artifacts/filter") if a.get("key")}
        assert {"audio-extract-counts", "audio-model-metrics"} <= keys
        # and they are in PostgreSQL, not in a SQLite file
        assert int(psql(db, "select count(*) from flow_run")) == len(runs)
        assert int(psql(db, "select count(*) from task_run")) >= len(tasks)
        assert not list(Path(env["PREFECT_HOME"]).glob("*.db"))
