"""flows.cli.options: data roots as users give them."""

from __future__ import annotations

import zipfile

import pytest

from emotion.core.errors import UsageError
from flows.cli.options import existing_dir


def test_a_zip_archive_given_as_the_data_root_names_the_folder_to_give(tmp_path):
    archive = tmp_path / "Audio_Speech_Actors_01-24.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Actor_01/03-01-01-01-01-01-01.wav", b"")
    with pytest.raises(UsageError, match=rf"data root '{archive}' is a zip archive: give the folder that holds it "
                                         rf"\('{tmp_path}'\); the archives under it are read in place"):
        existing_dir(str(archive), "data root")
    assert existing_dir(str(tmp_path), "data root") == str(tmp_path.resolve())
    with pytest.raises(UsageError, match="does not exist or is not a folder"):
        existing_dir(str(tmp_path / "absent"), "data root")
    with pytest.raises(UsageError, match=rf"store '{archive}' does not exist or is not a folder"):
        existing_dir(str(archive), "store")  # a store is no download: no advice about archives


def test_a_data_root_that_cannot_be_read_says_so_rather_than_that_it_holds_no_clip(tmp_path, monkeypatch):
    import os

    from flows.cli.options import data_root

    (tmp_path / "Actor_01").mkdir()
    real = os.scandir

    def scandir(path="."):
        if str(path).endswith("Actor_01"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(UsageError, match=rf"data root '{tmp_path}': cannot read {tmp_path}/Actor_01: Permission denied"):
        data_root(str(tmp_path))


def test_a_data_folder_given_as_a_store_is_named_as_such_with_how_to_make_a_store(tmp_path, capsys):
    """`emotion train DATA` said "no features/audio rows ... (run `emotion extract DATA --out DATA ...` first)":
    advice that took the data folder for the store. Every command that reads a store says, in one line, that the
    folder is a data folder and how to make a store from it."""
    from flows.cli import main

    data = tmp_path / "my data"
    (data / "Actor_01").mkdir(parents=True)
    (data / "Actor_01" / "03-01-01-01-01-01-01.wav").write_bytes(b"")
    expected = (f"emotion: error: store {str(data)!r} is a data folder (it holds clips such as "
                f"Actor_01/03-01-01-01-01-01-01.wav), not a store: make a store from it with "
                f"`emotion extract '{data}' --out STORE` and give STORE")
    for argv in (["train", str(data)], ["evaluate", str(data)], ["predict", "x.wav", "--store", str(data)]):
        assert main(argv) == 2, argv
        assert capsys.readouterr().err.strip() == expected, argv
    from flows.cli.options import store_dir

    with pytest.raises(UsageError) as err:
        store_dir(str(data))
    assert err.value.advice[0].served == f"run the extract flow with data={data}, out=STORE and give STORE"
    zips = tmp_path / "downloads"  # the Zenodo archives, read in place as a data root
    zips.mkdir()
    (zips / "Audio_Speech_Actors_01-24.zip").write_bytes(b"")
    with pytest.raises(UsageError, match=r"is a data folder \(it holds clips such as Audio_Speech_Actors_01-24.zip\)"):
        store_dir(str(zips))
    (data / "store.json").write_text("{}")  # a store (here one built inside its data folder) is one
    assert store_dir(str(data)) == str(data.resolve())
    (tmp_path / "new").mkdir()  # an empty folder: no store yet, and the command says what it lacks, as before
    assert store_dir(str(tmp_path / "new")) == str((tmp_path / "new").resolve())


def test_a_folder_whose_name_is_not_utf8_is_refused_in_one_line_and_nothing_is_created(tmp_path):
    """Prefect's API and run.json record folders as text: such a name failed with a traceback when the flow run
    was created, and left the output folder behind."""
    import os

    from flows.cli.options import out_dir

    odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/root \xff x")
    os.mkdir(odd)
    with pytest.raises(UsageError, match=r"^data root '.*/root \\xff x' is not valid UTF-8 \(runs record their "
                                         r"folders as text\): rename it$"):
        existing_dir(odd, "data root")
    with pytest.raises(UsageError, match=r"^output '.*/s \\xfe' is not valid UTF-8"):
        out_dir(os.fsdecode(os.fsencode(str(tmp_path)) + b"/s \xfe"))
    (tmp_path / "link").symlink_to(odd)  # what is recorded is the folder it leads to
    with pytest.raises(UsageError, match=r"^data root '.*/root \\xff x' is not valid UTF-8"):
        existing_dir(str(tmp_path / "link"), "data root")
    with pytest.raises(UsageError, match=r"^output '.*/root \\xff x/sub' is not valid UTF-8"):
        out_dir(str(tmp_path / "link" / "sub"))
    assert sorted(os.listdir(tmp_path)) == sorted(["link", odd.rsplit("/", 1)[1]]) and not os.listdir(odd)


def test_a_relative_folder_under_a_deleted_current_folder_is_said_in_one_line(tmp_path, monkeypatch):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    with pytest.raises(UsageError, match="^data root 'data' does not exist or is not a folder$"):
        existing_dir("data", "data root")


def test_a_symbolic_link_loop_is_said_in_one_line(tmp_path):
    """The UTF-8 check resolved the folder first, and a loop raised RuntimeError: a traceback where the folder check
    had given one line."""
    from flows.cli.options import out_dir

    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(UsageError, match="^data root '.*/loop' does not exist or is not a folder$"):
        existing_dir(str(tmp_path / "loop"), "data root")
    with pytest.raises(UsageError, match="^cannot create the output folder '.*/loop/sub': Too many levels of symbolic"):
        out_dir(str(tmp_path / "loop" / "sub"))


@pytest.mark.parametrize("given, meant", [("s3:/bucket/store", "s3://bucket/store"), ("gs:bucket/x", "gs://bucket/x")])
def test_a_mistyped_url_is_refused_rather_than_written_to_a_local_folder(tmp_path, monkeypatch, given, meant):
    """A walkthrough: --out s3:/bucket/store exited 0 having written the store to ./s3:/bucket/store."""
    from flows.cli.options import out_dir

    monkeypatch.chdir(tmp_path)
    for check in (out_dir, lambda p: existing_dir(p, "data root")):
        with pytest.raises(UsageError, match=rf"looks like a mistyped URL \(as a path, it is a folder named '\w+:' in "
                                             rf"this one\): did you mean {meant}\?$"):
            check(given)
    assert not list(tmp_path.iterdir())
    assert out_dir("s3://bucket/store") == "s3://bucket/store" and out_dir("C:/store")  # a drive letter is a path
    # a review: paths with a colon that name no storage were refused too ("did you mean run-2024-05-01T10://30?")
    for path in ("run-2024-05-01T10:30/out", "results:v2"):
        assert out_dir(path)
        assert existing_dir(path, "store")
