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
    with pytest.raises(StoreError, match=r"being written by emotion extract /data \(pid 1 on elsewhere"):
        with store.writer_lock("second"):
            pass
    old = pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=7)  # its writer died long ago
    store.fs.pipe_file(lock, json.dumps({**record, "since": old.isoformat()}).encode())
    with store.writer_lock("second"):
        assert json.loads(store.fs.cat_file(lock))["what"] == "second"
    assert not store.fs.exists(lock)


def test_holder_of_an_unreadable_record():
    assert holder(b"not json") == "another process"
