"""The form of a Dask scheduler's address, checked before anything runs (no Dask import here).

Dask's client takes ``SCHEME://HOST:PORT`` for its network transports (tcp, tls, ws, wss, ucx) and a bare
``HOST:PORT`` as tcp. ``inproc://`` names a scheduler inside the same process, which a command never has.
Anything else (no port, a port that is no number, an unknown scheme) failed deep inside Dask with a traceback.
"""

from __future__ import annotations

import re

from emotion.core.errors import UsageError

NETWORK_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "ucxx")
EXPECTED = "expected tcp://HOST:PORT (or tls://, ws://, wss://, ucx://; a bare HOST:PORT means tcp://)"

_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.%\w]+\]|[^\s:/\[\]@]+):(?P<port>\d{1,5})")


def check_scheduler_address(address: str | None, given_as: str = "--dask-address") -> str | None:
    """``address`` stripped (``None`` for none or an empty one), or a one-line :class:`UsageError` naming
    ``given_as`` (the option or environment variable it came from), the value and the form expected."""
    if address is None or not address.strip():
        return None
    address = address.strip()
    scheme, sep, location = address.rpartition("://")
    if not sep:
        scheme = "tcp"
    where = f"{given_as} {address!r}"
    if scheme == "inproc":
        raise UsageError(f"{where}: an inproc:// scheduler lives inside one process and cannot be reached from this "
                         f"command; {EXPECTED}")
    if scheme not in NETWORK_SCHEMES:
        raise UsageError(f"{where}: unknown scheme {scheme + '://'!r}; {EXPECTED}")
    found = _HOST_PORT.fullmatch(location)
    if found is None:
        missing = ":" not in location.rsplit("]", 1)[-1]
        raise UsageError(f"{where}: {'no port' if missing else 'not HOST:PORT'}; {EXPECTED}")
    if not 1 <= int(found["port"]) <= 65535:
        raise UsageError(f"{where}: port {found['port']} is not between 1 and 65535; {EXPECTED}")
    return address
