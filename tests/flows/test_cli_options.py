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
