"""Finding and reading input clips under a data root.

A data root is a folder (local path or fsspec URL) holding clips at any depth,
and/or zip archives of them (the Zenodo downloads such as
``Audio_Speech_Actors_01-24.zip``). Archives are read in place, member by
member, never unpacked to disk. Every clip is named by its path relative to
the data root; a clip inside an archive is named ``archive.zip/member/path``.

Archive members are checked before they are read: names that would escape a
folder (``..``, absolute paths), symbolic links, and members whose size or
compression ratio is implausible are refused with a reason.

Listing a root reads no clip: each candidate carries a fingerprint of what the
listing already gives (:attr:`Candidate.meta`: size and modification time of a
local file, size and ETag or last-modified time of an object, size, CRC-32 and
date of an archive member), so a rerun can tell unchanged clips without
reading them. Reads from object storage are retried a bounded number of times
with backoff before a clip is refused; after a few clips in a row failed so
(:class:`StorageOutage`), the storage counts as down and no other clip is tried.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from emotion.core.errors import (
    DecodeError,
    RejectedInput,
    StorageReadError,
    UnsafeArchiveError,
    UsageError,
    storage_errors,
    storage_reason,
)

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
        raise RejectedInput("broken symbolic link" if os.path.islink(path) else missing) from None
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
    meta: str = ""  # what the listing says about the file (size, time or ETag); changes when the file does


def extension(relpath: str) -> str:
    return posixpath.splitext(relpath)[1].lower()


@dataclass(frozen=True)
class Listing:
    """One listing of a data root: what :meth:`DataRoot.discover` found for ``extensions`` (:meth:`DataRoot.listing`),
    to be looked at again without listing the root again."""

    url: str  # the data root as given to DataRoot
    extensions: frozenset[str]
    candidates: tuple[Candidate, ...]

    def of(self, extensions: Iterable[str]) -> list[Candidate] | None:
        """What ``discover(extensions)`` would give, taken from this listing; None for extensions it did not list.

        ``discover`` keeps the files of the extensions (archive members too) and an unreadable entry named
        ``.zip`` (a damaged archive, whose members are not known) whatever the extensions; so does this."""
        exts = frozenset(e.lower() for e in extensions)
        if not exts <= self.extensions:
            return None
        return [c for c in self.candidates if extension(c.relpath) in exts or extension(c.relpath) == ".zip"]


def from_listing(listing: Listing | None, url: str, extensions: Iterable[str]) -> list[Candidate] | None:
    """``listing.of(extensions)`` where ``listing`` is one of the data root ``url``; None otherwise (the root is
    to be listed)."""
    return listing.of(extensions) if listing is not None and listing.url == url else None


def content_hash(data: bytes) -> str:
    """A 128-bit BLAKE2b digest of a file's bytes, as hex."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def listing_meta(size: int, info: dict[str, object]) -> str:
    """A fingerprint of an object store listing entry: size and ETag (else last-modified, else mtime)."""
    for key in ("ETag", "etag", "LastModified", "last_modified", "mtime", "updated", "created"):
        value = info.get(key)
        if value not in (None, ""):
            return f"s{size}:{key[0].lower()}{str(value).strip(chr(34))}"
    return f"s{size}"


# Errors of object storage worth another try (a dropped connection, a time-out, a 5xx); a missing file or a
# refusal is not retried.
PERMANENT_READ_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


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
    read_attempts: int = 3  # reads of object storage: tries before a clip is refused
    retry_delay: float = 0.5  # seconds before the second try, doubled before each next one

    def __post_init__(self) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        self.root = self.root.rstrip("/")
        self.fs.invalidate_cache(self.root)
        if not self.fs.isdir(self.root):  # (a folder moved away or not mounted: it does not exist)
            raise UsageError(f"data root {self.url!r} {'is not a folder' if self.fs.exists(self.root) else 'does not exist'}")

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
        for rel, size, problem, meta in self._walk():
            ext = extension(rel)
            if problem:
                if ext in exts or ext == ".zip":
                    found.append(Candidate(rel, 0, problem))
            elif ext == ".zip":
                found.extend(self._discover_archive(rel, exts))
            elif ext in exts:
                found.append(Candidate(rel, size, meta=meta))
        return sorted(found, key=lambda c: c.relpath)

    def listing(self, extensions: Iterable[str]) -> Listing:
        """:meth:`discover`'s candidates of ``extensions`` kept as a :class:`Listing`."""
        exts = frozenset(e.lower() for e in extensions)
        return Listing(self.url, exts, tuple(self.discover(exts)))

    def _walk(self) -> Iterator[tuple[str, int, str | None, str]]:
        """``(relative path, size, problem, listing fingerprint)`` of every file under the root, links followed.

        Only the listing is read (``os.stat`` locally, one listing of an object store): never a file.
        """
        if not self.is_local:
            self.fs.invalidate_cache(self.root)  # object stores cache listings between calls
            for path, info in self.fs.find(self.root, detail=True, withdirs=False).items():
                size = int(info.get("size") or 0)
                yield self._rel(path), size, None, listing_meta(size, info)
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
                    yield rel, 0, "broken symbolic link", ""
                    continue
                except OSError as exc:
                    yield rel, 0, f"cannot read file: {exc.strerror or exc}", ""
                    continue
                if stat.S_ISREG(st.st_mode):
                    yield rel, st.st_size, None, f"s{st.st_size}:m{st.st_mtime_ns}"
                else:  # a FIFO, socket or device named like a clip: refused unread (reading one may block forever)
                    yield rel, 0, f"not a regular file ({_kind(st.st_mode)})", ""

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
            meta = f"s{info.file_size}:c{info.CRC:08x}:d{'-'.join(map(str, info.date_time))}"
            yield Candidate(member_rel, info.file_size, _check_member(info, self.limits), meta)

    @staticmethod
    def split_archive(relpath: str) -> tuple[str, str] | None:
        """``('a.zip', 'Actor_01/x.wav')`` for an archive member, else ``None``."""
        i = relpath.lower().find(ARCHIVE_SEP)
        if i < 0:
            return None
        return relpath[: i + 4], relpath[i + 5 :]

    def read_bytes(self, relpath: str, outage: StorageOutage | None = None) -> bytes:
        """The bytes of one clip; raises :class:`RejectedInput` when it can't be read.

        On object storage a failed read (other than a missing file or a refusal) is tried again, up to
        ``read_attempts`` times with doubling delays; the reason of the last failure says how many tries it took.
        ``outage`` is told whether the storage answered (the file's own fault included) or failed.
        """
        if outage is None:
            return self._read_retrying(relpath)
        try:
            data = self._read_retrying(relpath)
        except StorageReadError as exc:
            outage.failed(exc)
            raise
        except RejectedInput:
            outage.answered()
            raise
        outage.answered()
        return data

    def _read_retrying(self, relpath: str) -> bytes:
        attempts = 1 if self.is_local else max(1, self.read_attempts)
        for attempt in range(1, attempts + 1):
            try:
                return self._read_once(relpath)
            except DecodeError as exc:
                transient = isinstance(exc.__cause__, storage_errors())  # the storage's failure, not the file's
                if attempt == attempts or not transient:
                    if transient:
                        again = f" (after {attempt} attempts)" if attempt > 1 else ""
                        raise StorageReadError(f"{exc.reason}{again}", relpath) from None
                    raise
                time.sleep(self.retry_delay * 2 ** (attempt - 1))
        raise AssertionError("not reached")  # pragma: no cover

    def _read_once(self, relpath: str) -> bytes:
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
            if not self.is_local:  # object storage refusing a read: the credentials, not the clip (kept, read again)
                raise StorageReadError("permission denied by the object store", relpath, retried=False) from None
            raise RejectedInput("permission denied", relpath) from None
        except FileNotFoundError:
            raise RejectedInput("file not found (deleted or a broken link)", relpath) from None
        except OSError as exc:
            if isinstance(exc, PERMANENT_READ_ERRORS):
                raise DecodeError(f"cannot read file: {exc}", relpath) from None
            raise DecodeError(f"cannot read file: {exc}", relpath) from exc  # transient: read_bytes tries again
        except (zipfile.BadZipFile, EOFError) as exc:
            raise DecodeError(f"cannot read file: {exc}", relpath) from None
        except storage_errors() as exc:  # an object-storage client's own error (botocore's: the endpoint down)
            raise DecodeError(f"cannot read file: {storage_reason(exc)}", relpath) from exc

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


def _kind(mode: int) -> str:
    """What a file that is not a regular one is, in a word."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


@dataclass
class StorageOutage:
    """Tells a storage that is down from one clip's failed read: after ``limit`` reads in a row that the storage
    failed after their retries (:class:`StorageReadError` with ``retried``), the clips after them are not tried.

    Each such read waits out its retries (seconds a clip, against an endpoint that is down): over a corpus of
    thousands of clips, an outage would otherwise hold a run for hours, each clip failing in turn. A read that
    gets an answer, the file's own fault or a refusal given at once (permission denied) included, ends the run
    of failures. ``answers`` counts them: the extract flow adds up its chunks' outages (:meth:`then`), so that
    chunks of fewer clips than ``limit`` tell an outage too.
    """

    limit: int = 3
    in_a_row: int = 0
    last: str = ""
    answers: int = 0

    def failed(self, exc: StorageReadError) -> None:
        if not exc.retried:
            self.answered()
            return
        self.in_a_row += 1
        self.last = exc.reason

    def answered(self) -> None:
        self.in_a_row = 0
        self.answers += 1

    def then(self, later: StorageOutage) -> None:
        """Take ``later``'s reads as following these (a chunk's, in the flow): its failures add to a run of them
        unless one of its reads got an answer, which starts the run again from its own last failures."""
        self.in_a_row = later.in_a_row if later.answers else self.in_a_row + later.in_a_row
        self.answers += later.answers
        self.last = later.last or self.last

    @property
    def down(self) -> bool:
        return self.in_a_row >= self.limit

    def not_tried(self) -> str:
        """The reason given to a clip not tried: the failures before it, the last of them quoted."""
        return f"not read: the data root's storage failed on {self.in_a_row} clips in a row before it ({self.last})"
