"""The form of a Dask scheduler's address (--dask-address, EMOTION_DASK_ADDRESS), checked before anything runs."""

from __future__ import annotations

import pytest

from emotion.core.addresses import check_scheduler_address
from emotion.core.errors import UsageError


@pytest.mark.parametrize("address", ["tcp://scheduler:8786", "scheduler:8786", "tls://10.0.0.5:8786",
                                     "ws://host.example.org:8786", "wss://h:443", "ucx://h:13337",
                                     "tcp://[::1]:8786", " tcp://127.0.0.1:1 "])
def test_the_forms_dask_accepts_pass(address):
    assert check_scheduler_address(address) == address.strip()


@pytest.mark.parametrize("address", [None, "", "  "])
def test_no_address_is_none(address):
    assert check_scheduler_address(address) is None


@pytest.mark.parametrize("address, why", [
    ("foo", "no port"), ("tcp://host", "no port"), ("tcp://[::1]", "no port"), ("tcp://h:abc", "not HOST:PORT"),
    ("tcp://:8786", "not HOST:PORT"), ("tcp://h:99999", "port 99999 is not between 1 and 65535"),
    ("tcp://h:0", "port 0 is not between 1 and 65535"), ("http://h:8786", "unknown scheme 'http://'"),
    ("inproc://192.0.2.2/5133/1", "cannot be reached from this command"), ("tcp://h:1/path", "not HOST:PORT"),
])
def test_a_malformed_address_is_one_line_naming_it_and_the_form_expected(address, why):
    with pytest.raises(UsageError) as exc:
        check_scheduler_address(address, "EMOTION_DASK_ADDRESS")
    msg = str(exc.value)
    assert msg.startswith(f"EMOTION_DASK_ADDRESS {address!r}: ") and why in msg, msg
    assert "expected tcp://HOST:PORT" in msg and "\n" not in msg
