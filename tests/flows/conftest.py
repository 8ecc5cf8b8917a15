import pytest


@pytest.fixture(scope="session", autouse=True)
def prefect_server():
    """One temporary Prefect server (on 127.0.0.1, temporary database) for all flow tests."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(autouse=True)
def undo_run_settings():
    """A test that calls flows_module() itself, outside main(), leaves no run settings (no heartbeats) to the next."""
    yield
    import sys

    commands = sys.modules.get("flows.cli.commands")
    if commands is not None:
        commands.end_run_settings()
