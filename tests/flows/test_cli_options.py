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
