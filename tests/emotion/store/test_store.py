import errno
import os

import pyarrow as pa
import pytest

from emotion.core.errors import StoreError
from emotion.store.store import Store
from tests.conftest import flip_value_bytes


def test_write_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    store = Store(str(tmp_path))
    target = store.path("features", "audio", "x", "part-1.parquet")
    store.write_bytes(target, b"old complete content")

    def crash(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StoreError, match="cannot write .*part-1.parquet: No space left on device"):
        store.write_bytes(target, b"new content that never lands")
    monkeypatch.undo()
    with open(target, "rb") as fh:
        assert fh.read() == b"old complete content"  # nothing half-written
    assert os.listdir(os.path.dirname(target)) == ["part-1.parquet"]  # no temp file left


def test_read_only_store_is_a_clear_error(tmp_path, monkeypatch):
    store = Store(str(tmp_path))

    def read_only(*_a, **_k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("builtins.open", read_only)
    with pytest.raises(StoreError, match="Read-only file system"):
        store.write_json(store.path("runs", "x.json"), {})


def test_readers_ignore_temporary_files_of_a_killed_writer(tmp_path):
    store = Store(str(tmp_path))
    folder = store.features_dir("audio", "k")
    store.write_table(f"{folder}/{Store.new_part_name()}", pa.table({"path": ["a"], "content_hash": ["h"]}))
    with open(f"{folder}/.tmp-deadbeef-part-9.parquet", "wb") as fh:
        fh.write(b"PAR1 half a file")  # what a SIGKILL mid-write leaves
    df = store.read_features("audio", "k")
    assert list(df["path"]) == ["a"]


def test_commit_cleanup_removes_old_and_own_temporaries_but_not_another_runs(tmp_path):
    import time

    store = Store(str(tmp_path))
    folder = store.path("features", "audio", "x")
    os.makedirs(folder)
    names = {"old": ".tmp-aaaa-part-1.parquet", "mine": ".tmp-run1-bbbb-part-2.parquet",
             "other": ".tmp-run2-cccc-part-3.parquet", "part": "part-4.parquet"}
    started = time.time() - 1  # the run began; then its writers and another run's wrote
    for n in names.values():
        open(os.path.join(folder, n), "wb").close()
    past = started - 60
    os.utime(os.path.join(folder, names["old"]), (past, past))  # a writer killed before this run began
    assert store.remove_stale_temporaries(folder, older_than=started, tag="run1") == 2
    assert sorted(os.listdir(folder)) == sorted([names["other"], names["part"]])  # run2 may still be writing


def test_tagged_writes_name_their_run_in_the_temporary(tmp_path, monkeypatch):
    store = Store(str(tmp_path))
    seen = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append(os.path.basename(a)), real(a, b)))
    store.write_bytes(store.path("d", "part-1.parquet"), b"x", tag="run1")
    assert seen[0].startswith(".tmp-run1-") and seen[0].endswith("-part-1.parquet")


def test_newest_row_of_a_path_wins(tmp_path):
    store = Store(str(tmp_path))
    folder = store.features_dir("audio", "k")
    store.write_table(f"{folder}/{Store.new_part_name()}", pa.table({"path": ["a", "b"], "content_hash": ["1", "1"]}))
    store.write_table(f"{folder}/{Store.new_part_name()}", pa.table({"path": ["a"], "content_hash": ["2"]}))
    df = store.read_features("audio", "k")
    assert dict(zip(df["path"], df["content_hash"], strict=True)) == {"a": "2", "b": "1"}


def test_missing_features_say_what_to_do(tmp_path):
    advice = rf"run `emotion extract DATA --out {tmp_path} --modality audio --features nope` first\)"
    with pytest.raises(StoreError, match=advice):
        Store(str(tmp_path)).read_features("audio", "nope-0123")


def test_missing_features_name_the_sets_stored_with_the_options_that_read_them(tmp_path):
    """`run` stores extended with --augment; `train` reads seed by default, and extended without --augment unless
    given it: the error lists what is stored and how to ask for it."""
    store = Store(str(tmp_path))
    for key, speeds in (("extended-aug1", [0.9, 1.1]), ("extended-old3", [0.8]), ("seed-abc", None)):
        folder = store.features_dir("audio", key)
        store.write_table(f"{folder}/{Store.new_part_name()}", pa.table({"path": ["a"], "content_hash": ["1"]}))
        store.write_json(f"{folder}/params.json", {"params": {"name": key.split("-")[0], "speeds": speeds}})
    store.write_json(store.path("store.json"), {"data_root": "/corpus/audio"})
    with pytest.raises(StoreError) as err:
        store.read_features("audio", "extended-plain2", requested={"params": {"name": "extended", "speeds": [0.8]}})
    msg = str(err.value)
    assert "\n" not in msg
    assert (f"run `emotion extract /corpus/audio --out {tmp_path} --modality audio --features extended --augment 0.8` "
            "first; stored: extended-aug1 (give --features extended --augment), extended-old3 (the same options, "
            "written by another version), seed-abc (give --features seed))") in msg
    # as a served run tells it: the extract flow's parameters, and the train flows' that read a stored set
    assert err.value.served_message() == (
        f"no features/audio rows for extended-plain2 under {tmp_path} (run the extract flow with data=/corpus/audio, "
        f"out={tmp_path}, modality=audio, features=extended, augment=[0.8] first; stored: extended-aug1 (set "
        "features=extended, augment=[0.9, 1.1]), extended-old3 (the same options, written by another version), "
        "seed-abc (set features=seed))")


def test_rejects_table_roundtrip(tmp_path):
    store = Store(str(tmp_path))
    store.write_rejects("audio", [{"path": "x.wav", "reason": "empty file (0 bytes)", "stage": "decode"}])
    df = store.read_rejects("audio")
    assert df.loc[0, "path"] == "x.wav" and df.loc[0, "reason"] == "empty file (0 bytes)"
    assert Store(str(tmp_path / "none")).read_rejects("audio").empty


# -- issue 16: parts, damage, readers during writes, one writer, the data root -----------------------------------
def _part(store, folder, paths, hashes=None):
    t = pa.table({"path": paths, "content_hash": hashes or ["h"] * len(paths), "x": [1.0] * len(paths)})
    name = f"{folder}/{Store.new_part_name()}"
    store.write_table(name, t)
    return name


def test_a_stray_parquet_file_is_not_a_part(tmp_path):
    store = Store(str(tmp_path))
    folder = store.features_dir("audio", "k")
    _part(store, folder, ["a", "b"])
    stray = pa.table({"path": ["a"], "content_hash": ["zzz"], "x": [9.0]})
    import pyarrow.parquet as pq

    pq.write_table(stray, f"{folder}/zzz-newest.parquet")  # sorts after every part, but the store did not write it
    df = store.read_features("audio", "k")
    assert list(df["x"]) == [1.0, 1.0]


def test_a_damaged_part_is_named_and_skippable(tmp_path):
    store = Store(str(tmp_path))
    folder = store.features_dir("audio", "k")
    _part(store, folder, ["a"])
    bad = _part(store, folder, ["b"])
    with open(bad, "r+b") as fh:
        fh.truncate(40)  # half a file
    with pytest.raises(StoreError, match=f"damaged part {bad}"):
        store.read_features("audio", "k")
    damaged: list[str] = []
    keys = store.feature_keys("audio", "k", damaged=damaged)
    assert list(keys["path"]) == ["a"] and damaged == [bad]


def test_a_reader_re_lists_when_a_part_vanishes(tmp_path, monkeypatch):
    store = Store(str(tmp_path))
    folder = store.features_dir("audio", "k")
    old = _part(store, folder, ["a"])
    real = Store._read_part
    calls = {"n": 0}

    def compacting_writer(self, path, columns, whole=False, optional=None):
        calls["n"] += 1
        if calls["n"] == 1:  # a writer replaces the part between our listing and our read
            _part(store, folder, ["a"])
            os.unlink(old)
        return real(self, path, columns, whole, optional)

    monkeypatch.setattr(Store, "_read_part", compacting_writer)
    df = store.read_features("audio", "k")
    assert list(df["path"]) == ["a"] and calls["n"] >= 2


def test_a_column_older_parts_lack_reads_as_nulls_there_when_optional(tmp_path):
    store = Store(str(tmp_path))
    folder = store.dataset_dir("frames", "k")
    old = _part(store, folder, ["a"])  # written before the column "n" existed
    new = f"{folder}/{Store.new_part_name()}"
    store.write_table(new, pa.table({"path": ["b"], "content_hash": ["h"], "x": [2.0], "n": pa.array([3], pa.int16())}))
    for whole in (False, True):
        df = store.read_parts([old, new], ["path", "n"], whole=whole, optional={"n": pa.int16()})
        assert list(df.columns) == ["path", "n", "_part"] and df["n"].isna().tolist() == [True, False]
        assert df["n"].iloc[1] == 3
    with pytest.raises(StoreError, match="damaged part"):  # not optional: a part without it does not read
        store.read_parts([old], ["path", "n"])
    assert list(store.read_dataset("frames", "k", ["n"], optional={"n": pa.int16()})["path"]) == ["a", "b"]


def test_the_store_remembers_its_data_root(tmp_path):
    store = Store(str(tmp_path / "out"))
    store.check_data_root("/data/one")
    store.check_data_root("/data/one")
    with pytest.raises(StoreError, match="built from /data/one, not /data/two") as err:
        store.check_data_root("/data/two")
    assert str(err.value) == (f"the store {store.url} was built from /data/one, not /data/two: extracting another data "
                              "root would drop its rows; use another --out, or --replace-data to rebuild it from the "
                              "new root")
    # a served run (the extract flow, the pipeline): their parameters out and replace_data
    assert err.value.served_message() == (f"the store {store.url} was built from /data/one, not /data/two: extracting "
                                          "another data root would drop its rows; set out to another store, or "
                                          "replace_data to true to rebuild it from the new root")
    store.check_data_root("/data/two", replace=True)
    assert store.read_json(store.path("store.json"))["data_root"] == "/data/two"


def test_bounded_reads_refuse_special_and_large_files(tmp_path):
    store = Store(str(tmp_path))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(StoreError, match="not a regular file"):
        store.read_limited(str(fifo), 100)  # would block forever if opened for reading
    with pytest.raises(StoreError, match="not a regular file"):
        store.read_limited("/dev/zero", 100)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 200)
    with pytest.raises(StoreError, match="over the limit of 100"):
        store.read_limited(str(big), 100)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(StoreError, match="bad.json is not valid JSON"):
        store.read_json(str(tmp_path / "bad.json"))


# -- small parts merged once there are many (a nightly rerun adds one part; reading them all grows with the runs) ----
def _small_parts(store, folder, n, start=0):
    return [_part(store, folder, [f"c{i:03d}"], [f"h{i:03d}"]) for i in range(start, start + n)]  # one size


def test_many_small_parts_are_merged_into_one_with_the_same_rows(tmp_path):
    store = Store(str(tmp_path))
    folder = store.features_dir("audio", "k")
    parts = _small_parts(store, folder, 20)
    before = store.read_features("audio", "k")
    assert store.merge_small_parts(folder, most=16) == 20
    after = store.list_parts(folder)
    assert len(after) == 1 and not set(after) & set(parts)
    assert store.read_features("audio", "k").equals(before)
    assert store.merge_small_parts(folder, most=16) == 0  # one part: nothing to do


def test_a_few_small_parts_are_left_alone(tmp_path):
    store = Store(str(tmp_path))
    folder = store.features_dir("audio", "k")
    parts = _small_parts(store, folder, 16)
    assert store.merge_small_parts(folder, most=16) == 0
    assert store.list_parts(folder) == parts
    assert store.merge_small_parts(str(tmp_path / "absent"), most=16) == 0


def test_merged_parts_are_about_the_target_size_and_large_parts_stay(tmp_path):
    store = Store(str(tmp_path))
    folder = store.features_dir("audio", "k")
    parts = _small_parts(store, folder, 12)
    size = max(os.path.getsize(p) for p in parts)  # (the pages' checksums vary a part's size by a byte or two)
    merged = store.merge_small_parts(folder, most=4, small=size + 1, target=4 * size)
    assert merged == 12
    after = store.list_parts(folder)
    assert len(after) == 3  # 4 parts' worth each
    # merged parts are no longer small: a second merge leaves them, however many there are
    assert store.merge_small_parts(folder, most=1, small=size + 1, target=4 * size) == 0
    assert sorted(store.read_features("audio", "k")["path"]) == [f"c{i:03d}" for i in range(12)]


def test_changed_bytes_in_a_value_column_are_damage_not_other_numbers(tmp_path):
    import numpy as np
    import pyarrow.parquet as pq

    store = Store(str(tmp_path))
    store.check_data_root("/corpus")
    folder = store.features_dir("audio", "k")
    _part(store, folder, ["a"])
    x = np.random.default_rng(0).random(200)
    bad = f"{folder}/{Store.new_part_name()}"
    store.write_table(bad, pa.table({"path": [f"b{i:03d}" for i in range(200)], "content_hash": ["h"] * 200, "x": x}))
    flip_value_bytes(bad, "x")
    # without the pages' checksums the damage reads as other numbers, silently
    assert not np.allclose(pq.read_table(bad, page_checksum_verification=False)["x"].to_numpy(), x)
    with pytest.raises(StoreError, match=rf"damaged part {bad}: .*CRC.* \(`emotion extract /corpus --out {tmp_path} "
                                         r"--modality audio --features k --verify` drops it and recomputes its clips\)"):
        store.read_features("audio", "k")
    assert len(store.feature_keys("audio", "k", damaged=[])) == 201  # the key columns are intact: a plain rerun
    damaged: list[str] = []
    keys = store.feature_keys("audio", "k", damaged=damaged, whole=True)  # extract --verify reads parts whole
    assert list(keys["path"]) == ["a"] and damaged == [bad] and list(keys.columns) == ["path", "content_hash", "_part"]


def test_storage_that_fails_to_deliver_a_part_is_not_damage(tmp_path, monkeypatch):
    """Access denied or a timeout half-way through a part says so, and is never taken for damage: no reader skips
    the part, and compaction does not delete it."""
    from emotion.core.errors import DamagedPartError
    from emotion.extract.chunk import compact

    store = Store(str(tmp_path))
    folder = store.features_dir("audio", "k")
    part = _part(store, folder, ["a", "b"])
    real_open = store.fs.open

    class Denied:
        def __init__(self, fh):
            self.fh = fh

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def read(self, *a):
            raise PermissionError(13, "Access Denied")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(store.fs, "open", lambda path, mode="rb", **kw: Denied(real_open(path, mode, **kw)))
    for read in (lambda: store.read_features("audio", "k"), lambda: store.feature_keys("audio", "k", damaged=[]),
                 lambda: compact(store, folder, {os.path.basename(part): {("a", "h")}}, [])):
        with pytest.raises(StoreError, match=f"cannot read part {part}: .*Access Denied") as err:
            read()
        assert not isinstance(err.value, DamagedPartError)
    monkeypatch.undo()
    assert store.list_parts(folder) == [part] and list(store.read_features("audio", "k")["path"]) == ["a", "b"]


def test_parts_of_another_schema_and_damaged_parts_are_not_merged(tmp_path):
    store = Store(str(tmp_path))
    folder = store.features_dir("audio", "k")
    first = _small_parts(store, folder, 5)
    other = f"{folder}/{Store.new_part_name()}"  # written by an older version: one more column
    store.write_table(other, pa.table({"path": ["z"], "content_hash": ["hz"], "x": [1.0], "y": [2.0]}))
    bad = _part(store, folder, ["b"])
    with open(bad, "r+b") as fh:
        fh.truncate(40)
    last = _small_parts(store, folder, 5, start=5)
    assert store.merge_small_parts(folder, most=4) == 10  # the 5 before and the 5 after the odd ones, apart
    after = store.list_parts(folder)
    assert other in after and bad in after and len(after) == 4
    assert not set(after) & set(first + last)
    damaged: list[str] = []
    keys = store.feature_keys("audio", "k", damaged=damaged)
    assert sorted(keys["path"]) == sorted([f"c{i:03d}" for i in range(10)] + ["z"]) and damaged == [bad]


def test_a_merge_keeps_the_parts_parameters(tmp_path):
    import pyarrow.parquet as pq

    store = Store(str(tmp_path))
    folder = store.features_dir("audio", "k")
    meta = {"emotion.params_hash": "abc"}
    for i in range(3):
        store.write_table(f"{folder}/{Store.new_part_name()}",
                          pa.table({"path": [f"c{i}"], "content_hash": ["h"]}).replace_schema_metadata(meta))
    assert store.merge_small_parts(folder, most=2) == 3
    (merged,) = store.list_parts(folder)
    assert pq.read_schema(merged).metadata[b"emotion.params_hash"] == b"abc"


def test_a_merge_that_fails_to_write_loses_nothing(tmp_path, monkeypatch):
    store = Store(str(tmp_path))
    folder = store.features_dir("audio", "k")
    parts = _small_parts(store, folder, 6)

    def full_disk(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(StoreError, match="No space left on device"):
        store.merge_small_parts(folder, most=4)
    monkeypatch.undo()
    assert store.list_parts(folder) == parts and sorted(os.listdir(folder)) == sorted(os.path.basename(p) for p in parts)


def test_remove_deletes_in_one_call_and_passes_over_files_already_gone(tmp_path):
    store = Store(str(tmp_path))
    folder = store.features_dir("audio", "k")
    parts = _small_parts(store, folder, 3)
    os.unlink(parts[1])  # gone already (another cleanup, or a retry of this one)
    store.remove([*parts, f"{folder}/never-there.parquet"])
    assert os.listdir(folder) == []
    store.remove([])


def test_a_merge_never_revives_an_older_row_nor_keeps_a_duplicate(tmp_path):
    """A writer killed after writing can leave a clip's rows in two parts (the next commit drops the older ones);
    a merge in between must not make the older row the newest, nor fold both into one part."""
    store = Store(str(tmp_path))
    folder = store.features_dir("audio", "k")
    _part(store, folder, ["x"], ["old"])  # small and oldest
    _small_parts(store, folder, 18)
    big = pa.table({"path": ["x", *(f"b{i:05d}" for i in range(3000))], "content_hash": ["new", *["h"] * 3000],
                    "x": [float(i) for i in range(3001)]})
    big_part = f"{folder}/{Store.new_part_name()}"
    store.write_table(big_part, big)  # x's newest row, in a part that is not small
    _part(store, folder, ["c000"], ["h000"])  # c000 twice among the small parts: the newer copy wins
    before = store.read_features("audio", "k")
    size = os.path.getsize(big_part)
    assert store.merge_small_parts(folder, most=16, small=size) == 20
    after = store.read_features("audio", "k")
    assert after.equals(before) and dict(zip(after["path"], after["content_hash"], strict=True))["x"] == "new"
    rows = store.read_snapshot(folder)
    assert len(rows) == len(before)  # the superseded rows are gone, not folded into the merged part


def test_a_merge_removes_what_it_merged_only_after_writing_everything(tmp_path, monkeypatch):
    """Several merged parts, one removal at the end: a reader re-lists once, not once per merged part."""
    store = Store(str(tmp_path))
    folder = store.features_dir("audio", "k")
    parts = _small_parts(store, folder, 12)
    size = max(os.path.getsize(p) for p in parts)  # (the pages' checksums vary a part's size by a byte or two)
    events = []
    real_write, real_remove = Store.write_table, Store.remove
    monkeypatch.setattr(Store, "write_table", lambda self, *a, **k: (events.append("write"), real_write(self, *a, **k)))
    monkeypatch.setattr(Store, "remove", lambda self, paths: (events.append("remove"), real_remove(self, paths)))
    assert store.merge_small_parts(folder, most=4, small=size + 1, target=4 * size) == 12
    assert events == ["write", "write", "write", "remove"]


def test_an_object_store_that_keeps_a_deleted_file_is_an_error_naming_it(tmp_path):
    """S3's multi-object delete answers 200 and lists failed keys in its body, which s3fs does not read: the
    store lists the folder again and names what is still there (a bucket that allows writes but not deletes)."""
    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    class KeepsFiles(MemoryFileSystem):
        protocol = "keepsfiles"
        store: dict = {}  # noqa: RUF012 (fsspec's own convention: the class holds the files)
        pseudo_dirs = [""]

        @classmethod
        def _strip_protocol(cls, path):
            return super()._strip_protocol(path.removeprefix("keepsfiles://"))

        def rm(self, path, recursive=False, maxdepth=None):
            pass  # "deleted", says the call

    fsspec.register_implementation("keepsfiles", KeepsFiles, clobber=True)
    store = Store("keepsfiles://bucket/store")
    folder = store.features_dir("audio", "k")
    parts = _small_parts(store, folder, 3)
    with pytest.raises(StoreError, match=r"cannot delete keepsfiles://.*part-.*\.parquet and 1 more: still there"):
        store.remove(parts[:2])
    assert store.list_parts(folder) == parts


def test_train_s_missing_features_name_the_extraction_of_the_parameters_asked_for(tmp_path):
    """`train --features extended --augment 0.8` named `extract DATA ... --features extended` (without the speeds:
    running it stored another set, and train failed again)."""
    from emotion.featuresets import feature_params, read_feature_table

    store = Store(str(tmp_path))
    store.write_json(store.path("store.json"), {"data_root": "/corpus/audio"})
    with pytest.raises(StoreError, match=rf"run `emotion extract /corpus/audio --out {tmp_path} --modality audio "
                                         r"--features extended --augment 0\.8` first\)$"):
        read_feature_table(store, feature_params("extended", (0.8,)))


def test_a_write_that_loses_the_object_store_is_a_store_error_naming_the_file(monkeypatch):
    """A walkthrough: the S3 endpoint killed mid-run raised botocore's EndpointConnectionError (not an OSError) out of
    a part's write: no StoreError, so no retry, and a 540-line traceback."""
    botocore = pytest.importorskip("botocore.exceptions")
    store = Store("memory://lost-endpoint")

    def down(*_a, **_k):
        raise botocore.EndpointConnectionError(endpoint_url="http://127.0.0.1:9/bucket")

    monkeypatch.setattr(store, "_write_bytes", down)
    with pytest.raises(StoreError, match=r"^cannot write memory:///?lost-endpoint/a\.json: EndpointConnectionError: "
                                         r"Could not connect to the endpoint URL"):
        store.write_bytes(store.path("a.json"), b"{}")
