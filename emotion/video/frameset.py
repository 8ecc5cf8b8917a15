"""Stored video frames as a stream: a selection of clips, read part by part.

The frame table (``OUT/frames/<set>``) can be far larger than memory, so a
:class:`FrameSet` holds only which clips it covers and where their rows
are; :meth:`FrameSet.batches` reads one Parquet record batch at a time and
decodes its PNG frames. Training pipelines (``tf.data``) and prediction
loops both consume it, so memory stays bounded by one batch and the
shuffle buffer, whatever the corpus size.

An extraction committing meanwhile may rewrite the store's parts (compaction
moves rows to new parts and deletes the old ones), so a reader that comes
back to the same parts, epoch after epoch, first takes a private copy of its
frames with :meth:`FrameSet.copy_to` (one pass over the store, streamed).

A copy also streams its frames in an order that depends on its clips alone
(and, shuffled, on the generator given), not on how the store happens to lay
them out: which clips share a part, and the parts' names, which carry the
time each was written (the chunks of one extraction finish in any order, and
merging or a rerun regroups clips). Training on a copy is therefore the same
for the same frames in any store.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from emotion.core import names
from emotion.core.errors import StoreError
from emotion.store.store import Store, one_line
from emotion.video.frames import decode_png

INDEX_COLUMNS = ["path", "content_hash", "actor", "emotion", "frame_index", "time", "face_found"]
BATCH_COLUMNS = ["path", "emotion", "frame_index", "time", "face_found", "image"]  # what FrameSet.batches reads


@dataclass(frozen=True)
class FrameBatch:
    images: np.ndarray  # uint8 [n, height, width]
    labels: np.ndarray  # int [n], 0-7 (emotion code - 1)
    paths: np.ndarray  # object [n], clip path of each frame
    frame_index: np.ndarray  # int [n]
    time: np.ndarray  # float [n], seconds

    def __len__(self) -> int:
        return len(self.labels)


def frame_index(store: Store, key: str) -> pd.DataFrame:
    """One row per current stored frame (no images): the newest part of each clip wins.

    The parts are read as a snapshot (:meth:`Store.read_snapshot`): listed again when one vanishes under the reader.
    """
    folder = store.dataset_dir("frames", key)
    df = store.read_snapshot(folder, columns=INDEX_COLUMNS)
    if df.empty:
        advice = names.extract_advice("frames", key, store.url)
        raise StoreError(f"no frames for {key} under {store.url} ({advice})", advice=advice)
    newest = df.groupby("path")["_part"].transform("max")
    return df[df["_part"] == newest].reset_index(drop=True)


@dataclass(frozen=True)
class FrameSet:
    """The frames of some clips of one stored frame set.

    ``selection`` pairs each Parquet part (a path in the store) with the clip
    paths taken from it; rows of other clips in that part are skipped.
    """

    store_url: str
    key: str
    selection: tuple[tuple[str, tuple[str, ...]], ...]
    n_frames: int
    n_clips: int
    faces_only: bool = False  # skip frames in which no face was found (face-crop sets)
    copied_from: str | None = None  # a private copy (:meth:`copy_to`): the store the frames were copied from
    # a private copy: every clip (sorted by path) with the (file of ``selection``, row group) pairs holding its rows
    clip_groups: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = ()

    @classmethod
    def select(
        cls, store: Store, key: str, actors: Sequence[int] | None = None, *, faces_only: bool = False,
        index: pd.DataFrame | None = None,
    ) -> FrameSet:
        idx = frame_index(store, key) if index is None else index
        if actors is not None:
            idx = idx[idx["actor"].isin(list(actors))]
        if faces_only:
            idx = idx[idx["face_found"].fillna(True).astype(bool)]
        folder = store.dataset_dir("frames", key)
        sel = tuple(
            (posixpath.join(folder, part), tuple(sorted(set(g["path"]))))
            for part, g in sorted(idx.groupby("_part"), key=lambda kv: str(kv[0]))
        )
        return cls(store.url, key, sel, int(len(idx)), int(idx["path"].nunique()), faces_only)

    def clips(self) -> list[str]:
        return sorted(p for _, paths in self.selection for p in paths)

    def batches(self, batch_rows: int = 256, rng: np.random.Generator | None = None) -> Iterator[FrameBatch]:
        """Decoded frames, about ``batch_rows`` at a time.

        From a private copy (:meth:`copy_to`): clip by clip, each clip's frames in frame order, the clips sorted by
        path or, with ``rng``, in the order it shuffles them to; so the stream depends on the clips and ``rng`` only.
        From the store's parts: part by part (``rng`` shuffles the parts), in the order the store holds them.
        """
        if self.copied_from is not None:
            yield from self._clip_batches(batch_rows, rng)
            return
        store = Store(self.store_url)
        order = list(range(len(self.selection)))
        if rng is not None:
            rng.shuffle(order)
        for i in order:
            part, paths = self.selection[i]
            wanted = set(paths)
            for rb in _record_batches(store, part, batch_rows, BATCH_COLUMNS):
                d = rb.to_pydict()
                batch = self._batch(d, [j for j, p in enumerate(d["path"]) if p in wanted])
                if batch is not None:
                    yield batch

    def _batch(self, d: dict[str, list[Any]], rows: list[int]) -> FrameBatch | None:
        """The frames of ``rows`` of the columns ``d`` (those with a face when ``faces_only``); None without any."""
        keep = [j for j in rows if not (self.faces_only and d["face_found"][j] is False)]
        if not keep:
            return None
        return FrameBatch(
            images=np.stack([decode_png(d["image"][j]) for j in keep]),
            labels=np.array([d["emotion"][j] - 1 for j in keep], dtype=np.int32),
            paths=np.array([d["path"][j] for j in keep], dtype=object),
            frame_index=np.array([d["frame_index"][j] for j in keep], dtype=np.int32),
            time=np.array([d["time"][j] for j in keep], dtype=np.float32),
        )

    def _clip_batches(self, batch_rows: int, rng: np.random.Generator | None) -> Iterator[FrameBatch]:
        """A private copy's frames clip by clip (see :meth:`batches`), each clip's row groups read alone."""
        order = list(range(len(self.clip_groups)))
        if rng is not None:
            rng.shuffle(order)
        files: dict[int, pq.ParquetFile] = {}
        pending: list[pa.Table] = []
        n = 0
        for k in order:
            _, groups = self.clip_groups[k]
            clip = _copy_read(self.selection, files, groups, self.copied_from or "").sort_by("frame_index")
            pending.append(clip)
            n += clip.num_rows
            if n >= batch_rows or k == order[-1]:
                d = pa.concat_tables(pending).to_pydict()
                pending, n = [], 0
                batch = self._batch(d, list(range(len(d["path"]))))
                if batch is not None:
                    yield batch


    def copy_to(self, folder: str, batch_rows: int = 256) -> FrameSet:
        """The same frames in private Parquet files under the local ``folder``, read from the store once.

        Only the selected clips' rows and the columns :meth:`batches` reads are
        copied, a record batch at a time, each clip's rows as row groups of
        their own, so that the copy is read clip by clip. A part that has
        vanished since the selection (a writer compacted it) raises
        ``FileNotFoundError``: select again from a fresh :func:`frame_index`
        and copy again.
        """
        store = Store(self.store_url)
        os.makedirs(folder, exist_ok=True)
        selection = []
        groups: dict[str, list[tuple[int, int]]] = {}
        for i, (part, paths) in enumerate(self.selection):
            dest = os.path.join(folder, f"{i:06d}-{posixpath.basename(part)}")
            for group, path in enumerate(_copy_part(store, part, dest, pa.array(list(paths), pa.string()), batch_rows)):
                groups.setdefault(path, []).append((i, group))
            selection.append((os.path.abspath(dest), paths))
        return FrameSet(os.path.abspath(folder), self.key, tuple(selection), self.n_frames, self.n_clips,
                        self.faces_only, copied_from=self.copied_from or store.url,
                        clip_groups=tuple((p, tuple(g)) for p, g in sorted(groups.items())))


def _record_batches(store: Store, part: str, batch_rows: int, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """``columns`` of a stored part, a record batch at a time, each page's checksum checked (what goes wrong is
    sorted out by :meth:`Store.reading_part`)."""
    with store.reading_part(part) as fh:
        pf = pq.ParquetFile(fh, page_checksum_verification=True)
        yield from pf.iter_batches(batch_size=batch_rows, columns=columns)


def _copy_read(selection: tuple[tuple[str, tuple[str, ...]], ...], files: dict[int, pq.ParquetFile],
               groups: tuple[tuple[int, int], ...], origin: str) -> pa.Table:
    """The rows of one clip of a private copy: its row ``groups`` of the copy's files (``files``: those opened so
    far). What goes wrong is named as the copy's, not as a part of the store ``origin`` (whose rebuild command would
    name the copy's temporary folder as the store)."""
    i = -1
    try:
        tables = []
        for i, group in groups:
            if i not in files:
                files[i] = pq.ParquetFile(selection[i][0], page_checksum_verification=True)
            tables.append(files[i].read_row_group(group, columns=BATCH_COLUMNS))
        return pa.concat_tables(tables)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise StoreError(f"cannot read {selection[i][0]}, the private copy of frames from {origin}: {one_line(exc)} "
                         "(the store is not affected; running the command again copies them anew)") from None


@contextlib.contextmanager
def _writing(dest: str) -> Iterator[None]:
    """A failure to write the local file ``dest``, named as such (not as the store part's)."""
    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        raise StoreError(f"cannot write {dest}: {one_line(exc)}") from None


def _copy_part(store: Store, part: str, dest: str, wanted: pa.Array, batch_rows: int) -> list[str]:
    """The rows of ``wanted`` clips of a stored part, in the columns :meth:`FrameSet.batches` reads, into the local
    file ``dest``, each run of a clip's rows a row group of its own; returns the clip of every row group, in order
    (none, and no file, when the part holds no wanted row). A failure to write it is named as such (not as the
    part's), and leaves no file behind."""
    writer: pq.ParquetWriter | None = None
    written: list[str] = []
    run: list[pa.Table] = []  # consecutive rows of one clip, maybe across record batches

    def flush() -> None:
        nonlocal writer
        if not run:
            return
        t = pa.concat_tables(run)
        run.clear()
        with _writing(dest):
            writer = writer or pq.ParquetWriter(dest, t.schema, write_page_checksum=True)
            writer.write_table(t, row_group_size=t.num_rows)  # one row group
        written.append(t["path"][0].as_py())

    try:
        for rb in _record_batches(store, part, batch_rows, BATCH_COLUMNS):
            t = pa.Table.from_batches([rb])
            t = t.filter(pc.is_in(t["path"], value_set=wanted))
            paths = t["path"].to_pylist()
            start = 0
            for j in range(1, len(paths) + 1):
                if j == len(paths) or paths[j] != paths[start]:
                    if run and run[0]["path"][0].as_py() != paths[start]:
                        flush()
                    run.append(t.slice(start, j - start))
                    start = j
        flush()
        if writer is not None:
            with _writing(dest):
                writer.close()
    except BaseException:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        with contextlib.suppress(OSError):
            os.unlink(dest)
        raise
    return written


def aggregate_clips(paths: np.ndarray, proba: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Per-clip probabilities: the mean of the clip's frame probabilities (clips sorted by path)."""
    df = pd.DataFrame(proba).assign(_path=paths)
    mean = df.groupby("_path", sort=True).mean()
    return [str(p) for p in mean.index], mean.to_numpy(dtype=np.float64)


def top_two(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each row: the best and second-best class and their probabilities."""
    order = np.argsort(-proba, axis=1, kind="stable")
    rows = np.arange(len(proba))
    return order[:, 0], proba[rows, order[:, 0]], order[:, 1], proba[rows, order[:, 1]]
