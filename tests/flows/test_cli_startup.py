"""The command line answers at once: help and usage errors load no heavy library."""

from __future__ import annotations

import logging
import os
import resource
import subprocess
import sys

import pytest

HEAVY = ("numpy", "sklearn", "scipy", "librosa", "tensorflow", "keras", "cv2", "pandas", "pyarrow", "prefect", "dask")


def _cpu_seconds(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """CPU time (user + system) of one ``emotion`` process, measured by the kernel, not the wall clock."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run([sys.executable, "-m", "flows.cli", *argv], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), res


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["run", "--help"], ["predict", "--help"]])
def test_help_takes_under_a_second_of_cpu(argv: list[str]) -> None:
    cpu, res = _cpu_seconds(argv)
    assert res.returncode == 0 and "usage: emotion" in res.stdout
    assert cpu < 1.0, f"emotion {' '.join(argv)} took {cpu:.2f} s of CPU"


def test_usage_errors_answer_at_once() -> None:
    cpu, res = _cpu_seconds(["train", "somewhere", "--jobs", "0"])
    assert res.returncode == 2 and "--jobs must be between 1 and 1024, got 0" in res.stderr
    assert cpu < 1.0, f"a usage error took {cpu:.2f} s of CPU"


def test_the_parser_imports_nothing_heavy() -> None:
    code = ("import sys; from flows.cli import build_parser; build_parser().format_help(); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == ""


def test_extract_loads_no_model_stack() -> None:
    """``emotion extract`` (a nightly rerun with few changes is mostly start-up) loads neither scikit-learn nor the
    neural-network stack: only the commands that train or predict need them. Nor SciPy and librosa's core (a
    second between them): only the clips' work needs them, and a rerun with nothing to do has none."""
    code = ("import sys; import flows.cli.commands as c; c.flows_module('extract'); "
            "print(','.join(m for m in ('sklearn', 'xgboost', 'tensorflow', 'keras', 'matplotlib', 'scipy', "
            "'librosa.core') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PREFECT_API_URL": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"loaded by extract: {out.stdout.strip()}"


def test_extract_loads_dask_only_for_work() -> None:
    """The extract flow loads Dask only as it starts a cluster: a rerun with nothing to do never does (0.2 s of a
    1.7 s rerun)."""
    code = ("import sys; import flows.cli.commands as c; c.flows_module('extract'); "
            "print('distributed' in sys.modules, 'dask' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PREFECT_API_URL": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False False"


def test_a_command_against_a_running_server_never_loads_prefects_server_code() -> None:
    """With PREFECT_API_URL set, no temporary server is started, and Prefect's server code (FastAPI, SQLAlchemy, its
    routes: about a second) is not imported: loading it first made a no-change rerun 1.3 s slower."""
    code = ("import sys; import flows.cli.commands as c; c._start_temporary_server(); "
            "print('prefect.server.api.server' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """flows_module() without the Prefect API checks and the temporary server (not what these tests are about)."""
    import flows.cli.commands as c

    for fn in ("check_prefect_api", "check_prefect_database", "_start_temporary_server"):
        monkeypatch.setattr(c, fn, lambda *a, **k: None)


def _heartbeat() -> int | None:
    from prefect.settings import get_current_settings

    return get_current_settings().flows.heartbeat_frequency


def test_flows_run_by_a_command_send_no_heartbeats_unless_asked(no_server: None) -> None:
    """Prefect joins its heartbeat thread, which sleeps in steps of a second, as every flow run ends: up to 1 s per
    flow and subflow. A command's own runs go without, and the setting is undone as the command returns."""
    import flows.cli.commands as c

    default = _heartbeat()
    assert default is not None  # Prefect's default sends them: the test would prove nothing otherwise
    try:
        c.flows_module("extract")
        assert _heartbeat() is None
    finally:
        c.end_run_settings()
    assert _heartbeat() == default


def test_heartbeats_the_user_asked_for_are_kept(no_server: None) -> None:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    import flows.cli.commands as c

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 45}):  # as from the environment or a profile
        try:
            c.flows_module("extract")
            assert _heartbeat() == 45
        finally:
            c.end_run_settings()


def test_served_deployments_keep_prefects_heartbeats(no_server: None) -> None:
    import flows.cli.commands as c

    default = _heartbeat()
    try:
        c.flows_module("extract", served=True)
        assert _heartbeat() == default is not None
    finally:
        c.end_run_settings()


def test_dask_loaded_late_keeps_the_commands_quiet_console() -> None:
    """Dask's import sets its logger's level from its config; loaded as a cluster starts (after the command set the
    level: its notices only with --verbose), it must not undo the command's."""
    code = ("import logging, sys; import flows.cli.commands as c; c.flows_module('extract'); "
            "assert 'distributed' not in sys.modules; from tasks.cluster import dask_client\n"
            "with dask_client(jobs=1, clips=1): print(logging.getLogger('distributed').level)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PREFECT_API_URL": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == str(logging.ERROR)


def test_main_undoes_the_run_settings_as_it_returns(no_server: None, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: os.PathLike[str]) -> None:
    import flows.cli.commands as c
    from flows.cli import main

    default, seen = _heartbeat(), []

    def a_command(args: object) -> int:
        c.flows_module("extract")
        seen.append(_heartbeat())
        return 0

    monkeypatch.setattr(c, "cmd_synth", a_command)
    assert main(["synth", str(tmp_path)]) == 0
    assert seen == [None] and _heartbeat() == default


_FEATURES = """
import hashlib, sys
import librosa
from threadpoolctl import threadpool_info
from emotion.audio.synth import SynthParams, synth_clip
from emotion.core.ids import parse_id
from emotion.featuresets import feature_set, make_extractor
ex = make_extractor(feature_set("extended"))
samples, sr = synth_clip(parse_id("03-01-05-02-01-01-01"), SynthParams())
y = librosa.resample(samples.mean(axis=1), orig_sr=sr, target_sr=ex.params.sample_rate)
threads = sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
print(threads, hashlib.sha256(ex(y).tobytes()).hexdigest())
"""


def test_features_computed_by_a_command_have_the_bits_a_dask_worker_gives_them() -> None:
    """BLAS runs on one thread in a command's own process, as in Dask's worker processes: a clip recomputed by the
    in-process cluster of a small rerun, or read by `emotion predict`, gets the bits of the full extraction (on 2
    threads, OpenBLAS splits the mel product differently and float32 statistics differ by up to 1e-4)."""
    import dask
    import distributed  # noqa: F401  (its configuration)

    worker_env = dask.config.get("distributed.nanny.pre-spawn-environ")
    assert str(worker_env.get("OPENBLAS_NUM_THREADS")) == "1"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}

    def features(code: str, extra: dict[str, str]) -> str:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                             env={**env, **extra})
        assert res.returncode == 0, res.stderr[-2000:]
        return res.stdout.strip()

    command = features("import flows.cli\n" + _FEATURES, {})
    worker = features(_FEATURES, {k: str(v) for k, v in worker_env.items()})
    assert command.startswith("[1] ") and command == worker
