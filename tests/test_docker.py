"""The compose file parses, is wired as documented, and runs only commands the image has."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT
from tests.services import BIN

COMPOSE = PROJECT / "docker" / "compose.yaml"
DOCKERFILE = PROJECT / "docker" / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_services_are_the_documented_ones(compose):
    assert set(compose["services"]) == {"postgres", "prefect-server", "dask-scheduler", "dask-worker-1",
                                        "dask-worker-2", "runner"}
    server = compose["services"]["prefect-server"]
    assert server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("dask-worker-1", "dask-worker-2"):
        assert "tcp://dask-scheduler:8786" in compose["services"][name]["command"]
    runner = compose["services"]["runner"]
    assert runner["command"] == ["emotion", "deploy"]
    assert runner["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"


def test_configured_only_by_environment(compose):
    text = COMPOSE.read_text()
    assert "${POSTGRES_PASSWORD:?" in text  # no default password
    for svc in compose["services"].values():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), port
        env = svc.get("environment", {})
        for key, value in env.items():
            if any(s in key for s in ("PASSWORD", "SECRET", "KEY_ID")):
                assert str(value).startswith("${"), f"{key} must come from the environment"
    assert not re.search(r"AKIA[0-9A-Z]{12,}", text)


def test_dockerfile_is_multi_stage_and_installs_the_project():
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, re.M)
    assert stages == ["build", "runtime"]
    assert "COPY --from=build /opt/venv /opt/venv" in text and 'pip install ".[s3]"' in text
    for folder in ("emotion", "tasks", "flows", "deployments"):
        assert f"COPY {folder} ./{folder}" in text


@pytest.mark.parametrize("service", ["prefect-server", "dask-scheduler", "dask-worker-1", "runner"])
def test_every_command_exists_in_the_image(compose, service):
    """The image installs this project with its dependencies; the same commands answer here."""
    cmd = compose["services"][service]["command"]
    subcommand = {"prefect": cmd[:3], "dask": cmd[:2], "emotion": cmd[:2]}[cmd[0]]
    env = {"PATH": str(BIN), "HOME": str(Path.home()), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    res = subprocess.run([str(BIN / subcommand[0]), *subcommand[1:], "--help"], capture_output=True, text=True,
                         timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    flags = [a for a in cmd if a.startswith("--")]
    for flag in flags:
        assert flag in res.stdout, f"{' '.join(subcommand)} has no {flag}"
