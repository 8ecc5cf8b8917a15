import pytest


@pytest.fixture(scope="session", autouse=True)
def prefect_server():
    """One temporary Prefect server (on 127.0.0.1, temporary database) for all flow tests."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
