import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from emotion.core.errors import StoreError
from emotion.store.lock import holder
from emotion.store.store import Store


def test_one_writer_at_a_time(tmp_path):
    store = Store(str(tmp_path))
    with store.writer_lock("first"):
        code = ("import sys; from emotion.store.store import Store; from emotion.core.errors import StoreError\n"
                "try:\n    Store(sys.argv[1]).writer_lock('second').__enter__()\nexcept StoreError as e:\n"
                "    print(e); sys.exit(3)\n")
        r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": os.getcwd()})
        assert r.returncode == 3, r.stderr
        assert "is being written by first (pid" in r.stdout and len(r.stdout.strip().splitlines()) == 1
        assert store.exists(store.path(".lock"))
    with store.writer_lock("again"):  # released: the next writer gets it
        pass


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    store = Store(str(tmp_path))
    with store.writer_lock("command line"), Store(str(tmp_path)).writer_lock("its flow"):
        pass
    with store.writer_lock("next"):  # both levels let go
        pass


def test_an_object_store_lock_names_its_holder_and_goes_stale(tmp_path):
    store = Store("memory://lock-test-store")
    lock = store.path(".lock")
    record = {"pid": 1, "host": "elsewhere", "what": "emotion extract /data"}
    store.fs.pipe_file(lock, json.dumps({**record, "since": pd.Timestamp.now(tz="UTC").isoformat()}).encode())
    with pytest.raises(StoreError, match=r"being written by emotion extract /data \(pid 1 on elsewhere") as err:
        with store.writer_lock("second"):
            pass
    # a writer killed on another machine leaves the object behind: the message says what to remove, and when
    assert "if that writer is gone, remove memory://lock-test-store/.lock; else it counts as stale from " \
        in str(err.value) and len(str(err.value).splitlines()) == 1
    old = pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=7)  # its writer died long ago
    store.fs.pipe_file(lock, json.dumps({**record, "since": old.isoformat()}).encode())
    with store.writer_lock("second"):
        assert json.loads(store.fs.cat_file(lock))["what"] == "second"
    assert not store.fs.exists(lock)


def test_holder_of_an_unreadable_record():
    assert holder(b"not json") == "another process"


def test_a_writer_caught_between_taking_the_lock_and_naming_itself_is_still_named(tmp_path):
    """The holder takes the flock, then writes who it is: a second writer that looks in between waits for the
    name rather than saying "another process" (seen in the concurrency test, two extractions started at once)."""
    import fcntl
    import threading
    import time

    store = Store(str(tmp_path))
    path = os.path.join(str(tmp_path), ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # taken; the record is still empty

    def name_later():
        time.sleep(0.2)
        os.pwrite(fd, json.dumps({"pid": 1, "host": "h", "since": "t", "what": "emotion extract D"}).encode(), 0)

    t = threading.Thread(target=name_later)
    t.start()
    try:
        with pytest.raises(StoreError, match=r"being written by emotion extract D \(pid 1 on h"):
            with store.writer_lock("emotion extract E"):
                pass
    finally:
        t.join()
        os.close(fd)


def test_a_writer_that_lets_go_while_another_looks_lets_the_other_in(tmp_path):
    """The holder empties its record, then unlocks: a second writer looking in between gets the lock."""
    import fcntl
    import threading
    import time

    store = Store(str(tmp_path))
    path = os.path.join(str(tmp_path), ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held, its record already emptied

    t = threading.Thread(target=lambda: (time.sleep(0.2), os.close(fd)))
    t.start()
    try:
        with store.writer_lock("emotion extract E"):
            assert "emotion extract E" in open(path).read()
    finally:
        t.join()


def test_a_lock_that_cannot_be_written_is_named_in_one_line(tmp_path):
    """A read-only store (here: a ``.lock`` that is a folder, which root cannot open for writing either) stops the
    writer with ``cannot write <file>: <reason>``, not a traceback."""
    os.mkdir(tmp_path / ".lock")
    with pytest.raises(StoreError, match=r"^cannot write .*\.lock: Is a directory$"):
        with Store(str(tmp_path)).writer_lock("extract"):
            pass


def _read_only(monkeypatch, root):
    """A read-only file system under ``root`` (chmod cannot make a folder read-only for root, which the tests may
    run as): opening a file there for writing fails with EROFS."""
    import errno

    real = os.open

    def fake(path, flags, *a, **k):
        if str(path).startswith(str(root)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", fake)


def test_a_read_only_store_is_named_by_the_writability_check(tmp_path, monkeypatch):
    """train and evaluate write runs without the writer lock; they check first, as the lock would, in one line."""
    Store(str(tmp_path)).check_writable()  # writable: nothing to say
    _read_only(monkeypatch, tmp_path)
    with pytest.raises(StoreError, match=rf"^cannot write {tmp_path}/\.lock: Read-only file system$"):
        Store(str(tmp_path)).check_writable()
    Store(str(tmp_path / "none")).check_writable()  # no store yet: left to the command, nothing created
    assert not (tmp_path / "none").exists()


def test_an_object_store_is_checked_by_writing_a_probe_it_removes():
    store = Store("memory://writable-check")
    store.check_writable()
    assert not [p for p in store.fs.find(store.root) if ".write-check" in p]


@pytest.mark.parametrize("refusal", ["lock folder", "read-only"])
def test_the_writability_check_and_the_writer_lock_refuse_a_store_in_the_same_line(tmp_path, monkeypatch, refusal):
    """Both open the lock file one way: what stops the writer lock stops the check, with the same message."""
    if refusal == "lock folder":
        os.mkdir(tmp_path / ".lock")
    else:
        _read_only(monkeypatch, tmp_path)
    store = Store(str(tmp_path))
    with pytest.raises(StoreError, match=r"^cannot write .*\.lock: ") as checked:
        store.check_writable()
    with pytest.raises(StoreError) as locked:
        with store.writer_lock("extract"):
            pass
    assert str(checked.value) == str(locked.value)


def test_an_object_store_lock_left_by_a_process_of_this_machine_that_is_gone_is_taken_over(tmp_path):
    """A walkthrough: a run whose storage failed as it left could not remove its lock, and the next run was refused
    for 6 hours, although the lock named a process of this very machine that no longer existed."""
    import socket

    store = Store("memory://lock-left-here")
    lock = store.path(".lock")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    now = pd.Timestamp.now(tz="UTC").isoformat()
    from emotion.store.lock import _pid_namespace

    here = {"host": socket.gethostname(), "pid_namespace": _pid_namespace(), "since": now, "what": "emotion extract /data"}
    # another process namespace (a container sharing the host name), or a record without one: never taken over
    for other in ({"pid_namespace": "pid:[1]"}, {"pid_namespace": ""}):
        store.fs.pipe_file(lock, json.dumps({**here, "pid": int(gone), **other}).encode())
        with pytest.raises(StoreError, match="being written by emotion extract /data"):
            with store.writer_lock("next"):
                pass
    store.fs.pipe_file(lock, json.dumps({**here, "pid": int(gone)}).encode())
    with store.writer_lock("next"):
        assert json.loads(store.fs.cat_file(lock))["what"] == "next"
    # a live process of this machine still holds it
    store.fs.pipe_file(lock, json.dumps({**here, "pid": os.getppid()}).encode())
    with pytest.raises(StoreError, match="being written by emotion extract /data"):
        with store.writer_lock("next"):
            pass


def test_an_object_store_that_cannot_be_reached_is_one_line_naming_the_lock(monkeypatch):
    """A walkthrough: with the S3 endpoint down, botocore's EndpointConnectionError (not an OSError) came out of the
    lock as a traceback."""
    botocore = pytest.importorskip("botocore.exceptions")
    store = Store("memory://lock-unreachable")

    def down(*_a, **_k):
        raise botocore.EndpointConnectionError(endpoint_url="http://127.0.0.1:9/bucket/store/.lock")

    monkeypatch.setattr(store.fs, "exists", down)
    with pytest.raises(StoreError, match=r"^cannot read the store's lock memory://lock-unreachable/\.lock: "
                                         r"EndpointConnectionError: Could not connect to the endpoint URL") as err:
        with store.writer_lock("first"):
            pass
    assert len(str(err.value).splitlines()) == 1
