"""What users see in the Prefect UI: `emotion server` on any port, run names and tags, progress that moves.

The server is started as users start it (``emotion server --port P``); the UI
is loaded in headless Chromium (Debian's ``chromium``), which CI installs.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from emotion.audio.synth import SynthParams, write_corpus
from flows.cli.server import database_location, server_env
from tests.flows.test_prefect_server import post
from tests.services import BIN, chromium, prefect_server, reaped, render_page


def test_the_ui_is_pointed_at_the_port_and_host_the_server_listens_on():
    assert server_env("127.0.0.1", 4300, {})["PREFECT_UI_API_URL"] == "http://127.0.0.1:4300/api"
    # on every address, no one address works for every browser: the UI asks the address the page came from
    assert server_env("0.0.0.0", 4300, {})["PREFECT_UI_API_URL"] == "/api"
    assert server_env("::1", 4300, {})["PREFECT_UI_API_URL"] == "http://[::1]:4300/api"
    # a PREFECT_API_URL of another server (exported for the pipeline) does not mislead the UI; an explicit UI URL wins
    assert server_env("127.0.0.1", 4300, {"PREFECT_API_URL": "http://127.0.0.1:4200/api"})["PREFECT_UI_API_URL"] \
        == "http://127.0.0.1:4300/api"
    assert server_env("0.0.0.0", 4300, {"PREFECT_UI_API_URL": "https://prefect.example/api"})["PREFECT_UI_API_URL"] \
        == "https://prefect.example/api"
    assert database_location({"PREFECT_HOME": "/data/ph"}) == "SQLite in /data/ph/prefect.db"
    assert database_location({"PREFECT_API_DATABASE_CONNECTION_URL": "postgresql+asyncpg://u:secret@db:5432/p"}) \
        == "postgresql+asyncpg://u:***@db:5432/p"


def test_emotion_server_names_why_it_cannot_listen_before_announcing_itself(capsys, monkeypatch):
    import socket

    from flows.cli import main

    def started(*args):
        raise AssertionError("Prefect's server was started where it cannot listen")

    monkeypatch.setattr("flows.cli.server.os.execve", started)  # never the test process replaced by a server

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["server", "--port", str(port)]) == 2
        out, err = capsys.readouterr()
        assert "Prefect server and UI at" not in out  # no banner for a server that will not start
        assert f"port {port} on 127.0.0.1 is in use" in err and "--port" in err
    # an address this machine does not have: Prefect said "Port ... is already in use"
    assert main(["server", "--host", "192.0.2.1", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 192.0.2.1:{port}: Cannot assign requested address" in err and "in use" not in err


@pytest.fixture(scope="module")
def emotion_server(tmp_path_factory):
    """``emotion server --port P`` on a free port, with its own PREFECT_HOME; yields (api, env, folder)."""
    tmp = tmp_path_factory.mktemp("emotion-server")
    with prefect_server(tmp, command="emotion") as (api, env):
        yield api, env, tmp


def _emotion(args: list[str], env: dict[str, str], api: str) -> subprocess.CompletedProcess:
    res = subprocess.run([str(BIN / "emotion"), *args], env={**os.environ, **env, "PREFECT_API_URL": api},
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def two_extractions(emotion_server, tiny_corpus: Path, tmp_path_factory) -> list[tuple[str, str, str]]:
    """Two identical `emotion extract` runs against the server; (name, UI page, id) of the run each terminal printed."""
    api, env, _ = emotion_server
    out = tmp_path_factory.mktemp("ui-store")
    names = []
    for _ in range(2):
        res = _emotion(["extract", str(tiny_corpus), "--out", str(out), "--modality", "audio", "--workers", "1"], env, api)
        # our own line per flow run (Prefect's INFO lines stay off the console): its name and its page in the UI
        found = re.findall(r"^flow run ([^\s:]+): (http://\S+/runs/flow-run/([0-9a-f-]{36}))$", res.stderr, re.M)
        assert len(found) == 1, res.stderr[-2000:]
        assert "| INFO " not in res.stderr
        names += [(name, url, run_id) for name, url, run_id in found]
    return names


@pytest.mark.slow
def test_emotion_server_serves_a_ui_that_reaches_its_own_api(emotion_server):
    api, env, tmp = emotion_server
    port = int(api.rsplit(":", 1)[1].split("/")[0])
    settings = httpx.get(f"http://127.0.0.1:{port}/ui-settings", timeout=10).json()
    assert settings["api_url"] == f"http://127.0.0.1:{port}/api"
    banner = (tmp / "server.log").read_text(errors="replace")
    assert f"SQLite in {Path(env['PREFECT_HOME']) / 'prefect.db'}" in banner  # where the database really is
    assert "~/.prefect" not in banner


@pytest.mark.slow
def test_identical_extractions_get_different_names_and_the_terminal_shows_the_ui_name(emotion_server, two_extractions):
    api, _, _ = emotion_server
    (first, url, run_id), (second, _, _) = two_extractions
    assert first != second
    # the same data: the same feature set and data version, then each run's own id
    assert first.rsplit("-", 1)[0] == second.rsplit("-", 1)[0]
    assert re.fullmatch(r"extract-audio-seed-data-[0-9a-f]{8}-[0-9a-f]{6}", first)
    runs = {r["name"]: r for r in post(api, "flow_runs/filter")}
    assert {first, second} <= set(runs)  # found in the UI under the name the terminal printed
    assert runs[first]["id"] == run_id and url.startswith(api.removesuffix("/api"))  # and at the page it printed
    page = httpx.get(url, headers={"Accept": "text/html"}, timeout=10)  # as a browser asks for it
    assert page.status_code == 200 and "<html" in page.text.lower()  # the UI serves the run's page
    for n in (first, second):
        assert {"modality:audio", "features:seed", f"data:{n.split('-data-')[1][:8]}"} <= set(runs[n]["tags"])


@pytest.mark.slow
def test_the_ui_in_a_browser_lists_a_finished_run(emotion_server, two_extractions, tmp_path: Path):
    if not chromium():
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    api, _, _ = emotion_server
    ui = api.removesuffix("/api")
    shot = tmp_path / "runs.png"
    for page in ("/runs", "/v2/runs"):  # the classic UI and the new one
        dom = render_page(f"{ui}{page}", tmp_path, screenshot=shot if page == "/runs" else None,
                          until=two_extractions[-1][0])
        assert "connect to Server API" not in dom and "Can't connect" not in dom, page
        assert two_extractions[-1][0] in dom, f"{page}: no run listed (screenshot {shot})"
        assert "Completed" in dom, page  # listed as finished
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
def test_extraction_progress_moves_with_the_clips(emotion_server, tmp_path: Path):
    """1,200 synthetic clips (20 actors, 60 each) in two chunks of 600: the progress artifact, read through the API
    while the extraction runs, moves with the clips the workers report, not with the chunks (which would give only
    0, 50 and 100)."""
    api, env, _ = emotion_server
    data = tmp_path / "data"
    # 1,200 distinct recordings (copies of one clip under other ids would be rejected as duplicates)
    write_corpus(data, SynthParams(actors=tuple(range(1, 21)), repetitions=2, duration=3.0, seed=11))  # some seconds of work
    assert sum(1 for p in data.rglob("*") if p.suffix in (".wav", ".flac")) == 1200  # beside SYNTHETIC-CORPUS.json
    argv = [str(BIN / "emotion"), "extract", str(data), "--out", str(tmp_path / "store"), "--modality", "audio",
            "--workers", "2", "--chunk-size", "600", "--json"]
    seen: list[float] = []
    started = time.time()
    with open(tmp_path / "extract.log", "wb") as log, open(tmp_path / "extract.json", "w+b") as stdout:
        # output to files, never a pipe nobody reads while polling: a full pipe would block the command
        body = {"artifacts": {"key": {"any_": ["audio-extract-progress"]}}, "sort": "CREATED_DESC", "limit": 1}
        with reaped(subprocess.Popen(argv, env={**os.environ, **env, "PREFECT_API_URL": api}, stdout=stdout,
                                     stderr=log, start_new_session=True)) as proc:
            deadline = time.monotonic() + 600
            while proc.poll() is None:
                assert time.monotonic() < deadline, "the extraction took over 600 s"
                latest = post(api, "artifacts/filter", body)  # retried on a busy server's 503
                if latest and latest[0]["created"] >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started - 5)):
                    value = float(latest[0]["data"])
                    if not seen or seen[-1] != value:
                        seen.append(value)
                time.sleep(0.2)
            proc.wait()
        stdout.seek(0)
        out = stdout.read()
    assert proc.returncode == 0, (tmp_path / "extract.log").read_text()[-3000:]
    assert '"processed": 1200' in out.decode()
    print(f"progress values read while 1,200 clips were extracted: {seen}")
    assert len(set(seen) - {0.0, 50.0, 100.0}) >= 3, seen
    assert seen == sorted(seen) and seen[-1] == 100.0


@pytest.mark.slow
def test_emotion_server_in_a_terminal_starts_without_asking_anything(tmp_path: Path):
    """In a terminal, Prefect's `server start` stopped at a menu about the Prefect profile before it listened."""
    import pty
    import select
    import signal

    from tests.services import free_port, service_env, wait_for

    port, (master, slave) = free_port(), pty.openpty()
    proc = subprocess.Popen([str(BIN / "emotion"), "server", "--port", str(port)], stdin=slave, stdout=slave,
                            stderr=slave, env={**os.environ, **service_env(tmp_path)}, start_new_session=True)
    os.close(slave)
    seen = bytearray()

    def up() -> bool:
        while select.select([master], [], [], 0)[0]:
            try:
                seen.extend(os.read(master, 65536))
            except OSError:  # the terminal closed: the server exited
                break
        assert b"How would you like to proceed" not in seen, seen.decode(errors="replace")[-2000:]
        return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200

    try:
        wait_for(up, 120, "emotion server in a terminal", proc)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        os.close(master)
    assert b"in other shells: export PREFECT_API_URL" in seen
    profiles = tmp_path / "prefect-home" / "profiles.toml"  # the user's Prefect profile is left as it was
    assert not profiles.exists() or "PREFECT_API_URL" not in profiles.read_text()
