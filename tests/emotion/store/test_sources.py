import os
import stat
import zipfile

import pytest

from emotion.core.errors import RejectedInput, StorageReadError, UnsafeArchiveError, UsageError
from emotion.store.sources import AUDIO_EXTENSIONS, ArchiveLimits, DataRoot, StorageOutage
from tests.conftest import write_tone

NAME = "03-01-05-01-01-01-01.wav"


def test_discovers_any_depth_sorted(tmp_path):
    write_tone(tmp_path / "a" / "b" / "c" / NAME)
    write_tone(tmp_path / "Actor_02" / "03-01-05-01-01-01-02.flac")
    (tmp_path / "notes.txt").write_text("x")
    found = DataRoot(str(tmp_path)).discover(AUDIO_EXTENSIONS)
    assert [c.relpath for c in found] == ["Actor_02/03-01-05-01-01-01-02.flac", f"a/b/c/{NAME}"]
    assert all(c.problem is None and c.size > 0 for c in found)


def test_reads_zip_members_in_place(tmp_path):
    wav = write_tone(tmp_path / "src" / NAME)
    data = tmp_path / "data"
    data.mkdir()
    with zipfile.ZipFile(data / "Audio_Speech_Actors_01-24.zip", "w") as zf:
        zf.write(wav, f"Actor_01/{NAME}")
    root = DataRoot(str(data))
    [cand] = root.discover(AUDIO_EXTENSIONS)
    assert cand.relpath == f"Audio_Speech_Actors_01-24.zip/Actor_01/{NAME}"
    assert root.read_bytes(cand.relpath) == wav.read_bytes()
    assert sorted(os.listdir(data)) == ["Audio_Speech_Actors_01-24.zip"]  # nothing unpacked


def _zip_with(tmp_path, name, data=b"RIFF", mode=None):
    z = tmp_path / "data" / "x.zip"
    z.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        if mode is not None:
            info.external_attr = mode << 16
        zf.writestr(info, data)
    return DataRoot(str(z.parent))


@pytest.mark.parametrize("member, reason", [
    (f"../../{NAME}", "escapes its folder"),
    (f"/etc/{NAME}", "absolute path"),
])
def test_unsafe_member_names_are_refused(tmp_path, member, reason):
    [cand] = _zip_with(tmp_path, member).discover(AUDIO_EXTENSIONS)
    assert reason in cand.problem


def test_symlink_member_is_refused(tmp_path):
    [cand] = _zip_with(tmp_path, NAME, b"/etc/passwd", stat.S_IFLNK | 0o777).discover(AUDIO_EXTENSIONS)
    assert "symbolic link" in cand.problem


def test_zip_bomb_is_refused_before_unpacking(tmp_path):
    root = _zip_with(tmp_path, NAME, b"\0" * 5_000_000)
    [cand] = root.discover(AUDIO_EXTENSIONS)
    assert "compression ratio" in cand.problem
    with pytest.raises(UnsafeArchiveError):
        root.read_bytes(cand.relpath)
    small = DataRoot(root.url, limits=ArchiveLimits(max_member_bytes=1000, max_ratio=1e9))
    assert "over the limit" in small.discover(AUDIO_EXTENSIONS)[0].problem


def test_symlinked_clips_are_followed(tmp_path):
    real = write_tone(tmp_path / "elsewhere" / NAME)
    (tmp_path / "data" / "Actor_01").mkdir(parents=True)
    (tmp_path / "data" / "Actor_01" / NAME).symlink_to(real)
    root = DataRoot(str(tmp_path / "data"))
    [cand] = root.discover(AUDIO_EXTENSIONS)
    assert cand.problem is None and cand.size == real.stat().st_size
    assert root.read_bytes(cand.relpath) == real.read_bytes()


def test_a_fifo_named_like_a_clip_is_refused_unread(tmp_path):
    os.mkfifo(tmp_path / NAME)  # opening it to read would block until someone writes
    (tmp_path / "Actor_01").mkdir()
    (tmp_path / "Actor_01" / "dev.wav").symlink_to("/dev/null")
    root = DataRoot(str(tmp_path))
    found = {c.relpath: c.problem for c in root.discover(AUDIO_EXTENSIONS)}
    assert found == {NAME: "not a regular file (a FIFO)", "Actor_01/dev.wav": "not a regular file (a device)"}


def test_broken_symlink_and_unreadable_file(tmp_path):
    (tmp_path / NAME).symlink_to(tmp_path / "gone.wav")
    root = DataRoot(str(tmp_path))
    [cand] = root.discover(AUDIO_EXTENSIONS)
    assert cand.problem == "broken symbolic link"
    if os.geteuid() == 0:
        pytest.skip("root reads files regardless of permissions")
    p = write_tone(tmp_path / "Actor_01" / "03-01-05-01-01-01-01.flac")
    p.chmod(0)
    with pytest.raises(RejectedInput, match="permission denied"):
        root.read_bytes("Actor_01/03-01-05-01-01-01-01.flac")


def test_permission_denied_becomes_a_reject_reason(tmp_path, monkeypatch):
    """As root (CI) no file is unreadable, so the filesystem's refusal is injected."""
    write_tone(tmp_path / "Actor_01" / NAME)
    root = DataRoot(str(tmp_path))

    real_open = os.open

    def denied(path, *a, **k):
        if str(path).endswith(NAME):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(RejectedInput, match="permission denied"):
        root.read_bytes(f"Actor_01/{NAME}")

    from emotion.extract.inventory import take_inventory

    inv = take_inventory(root)
    assert inv.rejects == [{"path": f"Actor_01/{NAME}", "reason": "permission denied", "stage": "read"}]


def test_linked_folders_are_followed_once(tmp_path):
    write_tone(tmp_path / "store" / "Actor_01" / NAME)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "Actor_01").symlink_to(tmp_path / "store" / "Actor_01", target_is_directory=True)
    (tmp_path / "store" / "Actor_01" / "loop").symlink_to(tmp_path / "store", target_is_directory=True)  # a cycle
    found = DataRoot(str(tmp_path / "data")).discover(AUDIO_EXTENSIONS)
    assert [c.relpath for c in found] == [f"Actor_01/{NAME}"]  # each real folder is read once, cycle or not


def _flaky_fs(fail_reads: int):
    """Registers ``flakyread://``: an in-memory file system whose reads fail ``fail_reads`` times (a dropped connection)."""
    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    class Flaky(MemoryFileSystem):
        protocol = "flakyread"
        failures = fail_reads

        @classmethod
        def _strip_protocol(cls, path):
            return super()._strip_protocol(path.removeprefix("flakyread://"))

        def cat_file(self, path, *args, **kwargs):
            if type(self).failures > 0:
                type(self).failures -= 1
                raise ConnectionError("connection reset by peer")
            return super().cat_file(path, *args, **kwargs)

    fsspec.register_implementation("flakyread", Flaky, clobber=True)
    fs = Flaky()
    fs.pipe_file(f"/flaky{fail_reads}/Actor_01/{NAME}", b"RIFF....")
    return Flaky


@pytest.mark.parametrize("failures, attempts_left", [(2, 0), (3, None)])
def test_object_storage_reads_are_retried_then_name_the_file(failures, attempts_left):
    flaky = _flaky_fs(failures)
    root = DataRoot(f"flakyread:///flaky{failures}", retry_delay=0.01)
    rel = f"Actor_01/{NAME}"
    if attempts_left is not None:  # two failures, the third try reads it
        assert root.read_bytes(rel) == b"RIFF...." and flaky.failures == attempts_left
    else:
        with pytest.raises(RejectedInput, match=r"cannot read file: connection reset by peer \(after 3 attempts\)") as e:
            root.read_bytes(rel)
        assert e.value.path == rel
        assert isinstance(e.value, StorageReadError)  # the storage's failure, not the file's: its rows are kept


def test_an_object_store_client_error_that_is_no_oserror_is_retried_too(monkeypatch):
    """A walkthrough: botocore's EndpointConnectionError (the endpoint down) is not an OSError: it was not retried
    and became an "unexpected" reject."""
    botocore = pytest.importorskip("botocore.exceptions")
    _flaky_fs(0)
    root = DataRoot("flakyread:///flaky0", retry_delay=0.01)
    calls = []

    def down(path, *a, **k):
        calls.append(path)
        raise botocore.EndpointConnectionError(endpoint_url="http://127.0.0.1:9/corpus")

    monkeypatch.setattr(root.fs, "cat_file", down)
    with pytest.raises(StorageReadError, match=r"cannot read file: EndpointConnectionError: Could not connect to the "
                                               r"endpoint URL: .* \(after 3 attempts\)$"):
        root.read_bytes(f"Actor_01/{NAME}")
    assert len(calls) == 3

    def refused(path, *a, **k):  # listing allowed, reading refused: the credentials', not the clip's
        raise PermissionError("Access Denied")

    monkeypatch.setattr(root.fs, "cat_file", refused)
    with pytest.raises(StorageReadError, match="^Actor_01/.*: permission denied by the object store$"):
        root.read_bytes(f"Actor_01/{NAME}")


def test_listing_gives_a_fingerprint_without_reading(tmp_path):
    import zipfile

    wav = write_tone(tmp_path / "data" / "Actor_01" / NAME)
    with zipfile.ZipFile(tmp_path / "data" / "a.zip", "w") as zf:
        zf.write(wav, f"Actor_02/{NAME.replace('-01.wav', '-02.wav')}")
    plain, member = sorted(DataRoot(str(tmp_path / "data")).discover(AUDIO_EXTENSIONS), key=lambda c: c.relpath)
    st = wav.stat()
    assert plain.meta == f"s{st.st_size}:m{st.st_mtime_ns}"
    assert member.meta.startswith(f"s{st.st_size}:c")  # size, CRC-32 and date from the archive's directory


def test_a_listing_gives_what_discover_gives_for_its_extensions_and_those_among_them(tmp_path):
    """A kept listing (``emotion run``'s split check) stands in for listing the root again: for the extensions it
    listed and each subset of them, exactly discover's candidates (archive members, a damaged archive, unreadable
    entries); for extensions it did not list, nothing (None)."""
    from emotion.store.sources import VIDEO_EXTENSIONS

    data = tmp_path / "data"
    write_tone(data / "Actor_01" / NAME)
    write_tone(data / "Actor_01" / "03-01-05-01-01-02-01.flac")
    (data / "Actor_01" / "01-01-05-01-01-01-01.mp4").write_bytes(b"mp4")
    (data / "notes.txt").write_text("x")
    with zipfile.ZipFile(data / "more.zip", "w") as zf:
        zf.writestr("Actor_02/03-01-05-01-01-01-02.wav", b"RIFF")
        zf.writestr("Actor_02/01-01-05-01-01-01-02.mp4", b"mp4")
        zf.writestr("Actor_02/readme.txt", b"x")
    (data / "broken.zip").write_bytes(b"not a zip")
    for name in ("gone.zip", "gone.wav", "gone.mp4"):
        os.symlink(data / "nowhere", data / name)
    root = DataRoot(str(data))
    both = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS
    listing = root.listing(both)
    assert {c.relpath for c in listing.candidates} >= {"broken.zip", "gone.zip", "gone.wav",
                                                       "more.zip/Actor_02/01-01-05-01-01-01-02.mp4"}
    for exts in (both, AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, {".MP4"}):
        assert listing.of(exts) == root.discover(exts), exts
    assert root.listing(VIDEO_EXTENSIONS).of(both) is None and root.listing(VIDEO_EXTENSIONS).of(AUDIO_EXTENSIONS) is None


def test_a_data_root_that_is_gone_or_a_file_is_said_to_be_so(tmp_path):
    """A walkthrough: a served run on a data folder moved away said it "is not a folder"."""
    with pytest.raises(UsageError, match=rf"^data root '{tmp_path / 'moved'}' does not exist$"):
        DataRoot(str(tmp_path / "moved"))
    (tmp_path / "a.wav").write_bytes(b"")
    with pytest.raises(UsageError, match=r"^data root '.*a\.wav' is not a folder$"):
        DataRoot(str(tmp_path / "a.wav"))


def test_a_storage_is_down_after_reads_failed_in_a_row_and_an_answer_ends_the_run():
    def down(reason="cannot read file: connection reset by peer (after 3 attempts)"):
        return StorageReadError(reason, "Actor_01/x.wav")

    outage = StorageOutage(limit=3)
    for _ in range(2):
        outage.failed(down())
    assert not outage.down
    outage.answered()  # a read that got an answer (the file's own fault included): not two in a row any more
    outage.failed(down("first"))
    outage.failed(down("second"))
    outage.failed(StorageReadError("permission denied by the object store", "x", retried=False))  # at once: an answer
    outage.failed(down("first"))
    outage.failed(down("second"))
    assert not outage.down
    outage.failed(down("EndpointConnectionError: Could not connect"))
    assert outage.down
    assert outage.not_tried() == ("not read: the data root's storage failed on 3 clips in a row before it "
                                  "(EndpointConnectionError: Could not connect)")


def test_the_outages_of_chunks_of_few_clips_add_up():
    """The flow adds up its chunks' outages: chunks of fewer clips than the limit tell an outage too, and a chunk
    with a read that got an answer starts the run of failures again from its own last ones."""
    def chunk(*reads):
        o = StorageOutage()
        for ok in reads:
            o.answered() if ok else o.failed(StorageReadError("reset (after 3 attempts)", "x"))
        return o

    flow = StorageOutage()
    flow.then(chunk(False, False))
    assert not flow.down and flow.in_a_row == 2
    flow.then(chunk(False, True, False))  # an answer in between: the run is its last failure only
    assert flow.in_a_row == 1
    flow.then(chunk(False))
    flow.then(chunk(False))
    assert flow.down and flow.last == "reset (after 3 attempts)"
