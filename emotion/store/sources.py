"""Finding and reading input clips under a data root.

A data root is a folder (local path or fsspec URL) holding clips at any depth,
and/or zip archives of them (the Zenodo downloads such as
``Audio_Speech_Actors_01-24.zip``). Archives are read in place, member by
member, never unpacked to disk. Every clip is named by its path relative to
the data root; a clip inside an archive is named ``archive.zip/member/path``.

Archive members are checked before they are read: names that would escape a
folder (``..``, absolute paths), symbolic links, and members whose size or
compression ratio is implausible are refused with a reason.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from emotion.core.errors import DecodeError, RejectedInput, UnsafeArchiveError, UsageError

AUDIO_EXTENSIONS = frozenset({".wav", ".flac"})
VIDEO_EXTENSIONS = frozenset({".mp4"})
ARCHIVE_SEP = ".zip/"
# Largest media file read at all (checked from its size before reading): 10 minutes of 96 kHz 32-bit stereo WAV
# is 461 MB; an mp4 of 10 minutes of 4K video at 20 Mbit/s about 1.5 GB.
MAX_AUDIO_FILE_BYTES = 512 << 20
MAX_VIDEO_FILE_BYTES = 2 << 30


def max_file_bytes(relpath: str) -> int:
    return MAX_VIDEO_FILE_BYTES if extension(relpath) in VIDEO_EXTENSIONS else MAX_AUDIO_FILE_BYTES


def read_local_file(path: str, limit: int, missing: str = "file not found (deleted or a broken link)") -> bytes:
    """The bytes of a regular local file of at most ``limit`` bytes; raises :class:`RejectedInput` otherwise.

    The size and type are checked before anything is read: a FIFO or device is
    refused (it would block or never end), and so is a file over the limit.
    """
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise RejectedInput("is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise RejectedInput("not a regular file (a pipe, socket or device); refusing to read it")
        if st.st_size > limit:
            raise RejectedInput(f"file is {st.st_size} bytes, over the limit of {limit} bytes")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # swapped for a pipe after the check
                raise RejectedInput("not a regular file (a pipe, socket or device); refusing to read it")
            data = fh.read(limit + 1)
    except PermissionError:
        raise RejectedInput("permission denied") from None
    except FileNotFoundError:
        raise RejectedInput(missing) from None
    except IsADirectoryError:
        raise RejectedInput("is a folder, not a file") from None
    except OSError as exc:
        raise RejectedInput(f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise RejectedInput(f"file grew over the limit of {limit} bytes while being read")
    return data


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on what is read from one archive member (zip-bomb guard)."""

    max_member_bytes: int = 1 << 30  # 1 GiB uncompressed
    max_ratio: float = 200.0  # uncompressed / compressed


@dataclass(frozen=True)
class Candidate:
    """A file found under the data root: a clip to process or a problem to report."""

    relpath: str
    size: int
    problem: str | None = None  # set when the file can't be read at all


def extension(relpath: str) -> str:
    return posixpath.splitext(relpath)[1].lower()


def content_hash(data: bytes) -> str:
    """A 128-bit BLAKE2b digest of a file's bytes, as hex."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _check_member(info: zipfile.ZipInfo, limits: ArchiveLimits) -> str | None:
    name = info.filename
    mode = info.external_attr >> 16
    if name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        return f"archive member {name!r} has an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return f"archive member {name!r} escapes its folder ('..')"
    if stat.S_ISLNK(mode):
        return f"archive member {name!r} is a symbolic link"
    if info.file_size > limits.max_member_bytes:
        return f"archive member {name!r} is {info.file_size} bytes, over the limit of {limits.max_member_bytes}"
    if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
        return f"archive member {name!r} has a compression ratio over {limits.max_ratio:g} (zip bomb?)"
    return None


@dataclass
class DataRoot:
    """Read-only access to the clips under one root (local folder or fsspec URL)."""

    url: str
    limits: ArchiveLimits = field(default_factory=ArchiveLimits)
    storage_options: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        self.root = self.root.rstrip("/")
        self.fs.invalidate_cache(self.root)
        if not self.fs.isdir(self.root):
            raise UsageError(f"data root {self.url!r} is not a folder")

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def _abs(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def _rel(self, path: str) -> str:
        """A listed object-store path relative to the root (local roots are walked with os.walk)."""
        return path[len(self.root) + 1 :]

    def discover(self, extensions: Iterable[str]) -> list[Candidate]:
        """Every file with one of ``extensions`` under the root, archives included.

        Sorted by relative path. Unreadable entries (broken links, unsafe
        archive members, corrupt archives) come back with ``problem`` set.
        """
        exts = frozenset(e.lower() for e in extensions)
        found: list[Candidate] = []
        for rel, size, problem in self._walk():
            ext = extension(rel)
            if problem:
                if ext in exts or ext == ".zip":
                    found.append(Candidate(rel, 0, problem))
            elif ext == ".zip":
                found.extend(self._discover_archive(rel, exts))
            elif ext in exts:
                found.append(Candidate(rel, size))
        return sorted(found, key=lambda c: c.relpath)

    def _walk(self) -> Iterator[tuple[str, int, str | None]]:
        """``(relative path, size, problem)`` of every file under the root, links followed."""
        if not self.is_local:
            self.fs.invalidate_cache(self.root)  # object stores cache listings between calls
            for path, info in self.fs.find(self.root, detail=True, withdirs=False).items():
                yield self._rel(path), int(info.get("size") or 0), None
            return
        seen: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in seen:  # a link cycle: each folder is read once
                dirnames[:] = []
                continue
            seen.add(real)
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, self.root).replace(os.sep, "/")
                try:
                    st = os.stat(path)  # follows links
                except FileNotFoundError:
                    yield rel, 0, "broken symbolic link"
                    continue
                except OSError as exc:
                    yield rel, 0, f"cannot read file: {exc.strerror or exc}"
                    continue
                if stat.S_ISREG(st.st_mode):
                    yield rel, st.st_size, None

    def _discover_archive(self, rel: str, exts: frozenset[str]) -> Iterator[Candidate]:
        try:
            with self.fs.open(self._abs(rel), "rb") as fh, zipfile.ZipFile(fh) as zf:
                infos = zf.infolist()
        except (OSError, zipfile.BadZipFile) as exc:
            yield Candidate(rel, 0, f"cannot read zip archive: {exc}")
            return
        for info in infos:
            if info.is_dir() or extension(info.filename) not in exts:
                continue
            member_rel = f"{rel}/{info.filename.lstrip('/')}"
            yield Candidate(member_rel, info.file_size, _check_member(info, self.limits))

    @staticmethod
    def split_archive(relpath: str) -> tuple[str, str] | None:
        """``('a.zip', 'Actor_01/x.wav')`` for an archive member, else ``None``."""
        i = relpath.lower().find(ARCHIVE_SEP)
        if i < 0:
            return None
        return relpath[: i + 4], relpath[i + 5 :]

    def read_bytes(self, relpath: str) -> bytes:
        """The bytes of one clip; raises :class:`RejectedInput` when it can't be read."""
        parts = self.split_archive(relpath)
        if parts is None and self.is_local:
            try:
                return read_local_file(self._abs(relpath), max_file_bytes(relpath))
            except RejectedInput as exc:
                raise RejectedInput(exc.reason, relpath) from None
        try:
            if parts is None:
                limit = max_file_bytes(relpath)
                size = self.fs.size(self._abs(relpath))
                if size is not None and size > limit:
                    raise RejectedInput(f"file is {size} bytes, over the limit of {limit} bytes", relpath)
                return bytes(self.fs.cat_file(self._abs(relpath)))
            archive, member = parts
            with self.fs.open(self._abs(archive), "rb") as fh, zipfile.ZipFile(fh) as zf:
                return self._read_member(zf, member)
        except PermissionError:
            raise RejectedInput("permission denied", relpath) from None
        except FileNotFoundError:
            raise RejectedInput("file not found (deleted or a broken link)", relpath) from None
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise DecodeError(f"cannot read file: {exc}", relpath) from None

    def _read_member(self, zf: zipfile.ZipFile, member: str) -> bytes:
        info = zf.getinfo(member)
        problem = _check_member(info, self.limits)
        if problem:
            raise UnsafeArchiveError(problem)
        with zf.open(info) as src:
            return _read_bounded(src, self.limits.max_member_bytes)


def _read_bounded(src: IO[bytes], limit: int) -> bytes:
    data = src.read(limit + 1)
    if len(data) > limit:
        raise UnsafeArchiveError(f"archive member inflates past the limit of {limit} bytes")
    return data
