"""Prefect tasks of the extraction flow, generic over extraction steps (audio, video).

Chunks of clips are computed on Dask workers by
:func:`emotion.extract.chunk.extract_chunk`; the Prefect task that owns a chunk
only submits it and waits, so workers never talk to Prefect and a worker
that dies has its chunk rerun by Dask elsewhere.

Writes to the store are retried by Prefect (``retries`` with growing delays)
when they fail for a reason that may pass (a dropped connection, a time-out
of object storage); a full disk, a read-only store or a refusal fails at
once, naming the file. Reads of object storage are retried by the data root
itself (:meth:`emotion.sources.DataRoot.read_bytes`).
"""

from __future__ import annotations

import posixpath
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import Cancelled, State
from prefect.utilities.annotations import quote

from emotion.core.errors import DamagedPartError, StoreError
from emotion.extract.chunk import ChunkResult, compact, extract_chunk
from emotion.extract.inventory import (
    ClipRef,
    Inventory,
    Step,
    is_unexpected_reject,
    kept_hashes,
    load_known,
    manifest_frame,
    same_contents,
    take_inventory,
)
from emotion.extract.plan import Plan, duplicate_rows, plan_extraction, stale_rows, touched_parts
from emotion.store.sources import VIDEO_EXTENSIONS, DataRoot, Listing, extension, from_listing
from emotion.store.store import Store
from emotion.video.frames import FrameParams
from emotion.video.landmarks import LandmarkParams, update_landmark_features
from tasks.cluster import closed_here, extract_chunk_reporting, result_while_workers

if TYPE_CHECKING:
    import pandas as pd
    from distributed import Client

# (flow run id, data, step key, store, verify, full) -> inventory
_TAKEN: OrderedDict[tuple[str, str, str, str | None, bool, bool], Inventory] = OrderedDict()
_TAKEN_LOCK = threading.Lock()


# the listing of a data root that the extractions run within :func:`listed` take their inventory from
_LISTING: ContextVar[Listing | None] = ContextVar("listing", default=None)


def current_listing() -> Listing | None:
    """The listing extractions take their inventory from (:func:`listed`), if any."""
    return _LISTING.get()


@contextmanager
def listed(listing: Listing) -> Iterator[None]:
    """Within: an extraction of ``listing.url`` (in this thread, or a task run it starts) takes its inventory from
    ``listing`` (where it has the step's extensions) instead of listing the data root again: ``emotion run`` lists
    it once for its split check and its extractions."""
    token = _LISTING.set(listing)
    try:
        yield
    finally:
        _LISTING.reset(token)


def _kept(store: Store, known: pd.DataFrame | None, modality: str) -> dict[str, str]:
    """The clips the last runs kept (:func:`kept_hashes`), the mp4s the other modality kept among them: of one
    recording under two mp4 ids, its audio features and its frames are kept under the same clip (fusion pairs them
    by clip), whichever extraction ran first."""
    other = kept_hashes(load_known(store, "video" if modality == "audio" else "audio"))
    return {**{p: h for p, h in other.items() if extension(p) in VIDEO_EXTENSIONS}, **kept_hashes(known)}


def _take(data: str, step: Step, out: str | None, verify: bool, full: bool) -> Inventory:
    store = None if out is None else Store(out)
    known = None if store is None else load_known(store, step.modality)
    taken = from_listing(_LISTING.get(), data, step.extensions)
    inv = take_inventory(DataRoot(data), step.extensions, accept=step.accept, absent=step.absent,
                         known=None if verify else known, params_key=None if full else step.key,
                         candidates=taken, kept=None if store is None else _kept(store, known, step.modality))
    if verify:  # every clip read: the data version holds if every content is the one recorded
        inv.unchanged_listing = same_contents(inv, known)
    return inv


def take_inventory_for_run(run_id: str, data: str, step: Step, out: str | None = None, verify: bool = False,
                           full: bool = False) -> Inventory:
    """The inventory of ``step`` under ``data``, taken once per flow run.

    The run's name needs the data version before the run begins (it is
    named from the inventory), and its ``inventory`` task needs the same
    inventory: the second call gets the first one's result instead of reading
    every clip again.
    """
    key = (run_id, data, step.key, out, verify, full)
    with _TAKEN_LOCK:
        if key in _TAKEN:
            return _TAKEN[key]
    inv = _take(data, step, out, verify, full)
    with _TAKEN_LOCK:
        _TAKEN[key] = inv
        while len(_TAKEN) > 8:
            _TAKEN.popitem(last=False)
    return inv

# Reasons a write cannot succeed by trying again
PERMANENT_WRITE_ERRORS = ("no space left", "read-only", "permission denied", "access denied", "nosuchbucket",
                          "quota", "not a directory", "is a directory")
STORE_RETRIES, STORE_RETRY_DELAYS = 2, [2.0, 10.0]


def transient_store_error(task: Any, task_run: TaskRun, state: State) -> bool:
    """Retry a task that failed writing the store, unless the reason cannot pass."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - no exception to judge: no retry
        return False
    return isinstance(exc, StoreError) and not any(w in str(exc).lower() for w in PERMANENT_WRITE_ERRORS)


@task(name="inventory", cache_policy=NO_CACHE, task_run_name="inventory-{step.modality}")
def inventory(data: str, step: Step, run_id: str = "", out: str | None = None, verify: bool = False,
              full: bool = False) -> Inventory:
    """Discover and validate the clips of ``step`` under ``data`` (once per flow run ``run_id``).

    With the store ``out``, clips whose listing fingerprint is unchanged since its manifest keep their hash
    unread, and new or changed ones are hashed by the workers; ``verify`` (or no ``out``) reads and hashes
    every clip here. ``full`` tries again the clips that an unchanged earlier run rejected.
    """
    inv = take_inventory_for_run(run_id, data, step, out, verify, full) if run_id else _take(data, step, out, verify, full)
    get_run_logger().info("found %d %s clips (%d read here, %d left to the workers to hash), %d rejected before decoding",
                          len(inv.clips) + len(inv.settled), step.modality, inv.read, inv.unhashed, len(inv.rejects))
    return inv


@task(name="plan", cache_policy=NO_CACHE, task_run_name="plan-{step.modality}")
def plan(inv: Inventory, out: str, step: Step, full: bool, verify: bool = False) -> Plan:
    """What to process, skip and remove; damaged parts are dropped and their clips recomputed. ``verify`` reads
    every column of every stored part (each page's checksum checked), not only the keys: damage anywhere is found."""
    damaged: list[str] = []
    store = Store(out)
    stored = store.dataset_keys(step.dataset, step.key, damaged=damaged, whole=verify)
    p = plan_extraction(inv, stored, full=full)
    if not verify and not full:  # the parts the commit may rewrite are read whole now: damage in them is mended today
        folder = store.dataset_dir(step.dataset, step.key)
        found = [f"{folder}/{name}" for name in touched_parts(p, stored) if not _readable(store, f"{folder}/{name}")]
        if found:
            damaged += found
            stored = stored[~stored["_part"].isin([posixpath.basename(d) for d in found])]
            p = plan_extraction(inv, stored, full=full)
    for d in damaged:  # their clips are not counted as stored, so they are recomputed; the part goes at commit
        get_run_logger().warning("%s: damaged part %s is dropped and its clips recomputed", step.modality,
                                 store.url_of(d))
        p.drop_parts.append(posixpath.basename(d))
    get_run_logger().info("%s: %d clips to process, %d unchanged, %d removed", step.modality, len(p.todo), p.skipped,
                          len(p.removed))
    return p


def _readable(store: Store, path: str) -> bool:
    """False for a damaged part (a part gone meanwhile is no concern of the plan's)."""
    try:
        store.read_part(path)
    except DamagedPartError:
        return False
    except FileNotFoundError:
        pass
    return True


def chunk_run_name(parameters: dict[str, Any]) -> str:
    """``extract-audio-clips-0041-0080``: what a chunk task does, by the positions of its clips in the run."""
    step, first, clips = parameters["step"], parameters.get("first", 0), parameters["clips"]
    n = len(clips.unquote() if isinstance(clips, quote) else clips)  # the flow hands chunks over quoted
    return f"extract-{step.modality}-clips-{first + 1:04d}-{first + n:04d}"


# Prefect calls a task_run_name callable with the parameters when it takes a ``parameters`` argument, but types it as
# a protocol that also demands its own classmethod (is_callback_with_parameters), which no plain function has
@task(name="extract-chunk", cache_policy=NO_CACHE, task_run_name=chunk_run_name,  # type: ignore[arg-type]
      retries=STORE_RETRIES, retry_delay_seconds=STORE_RETRY_DELAYS, retry_condition_fn=transient_store_error)
def run_chunk(index: int, step: Step, clips: list[ClipRef], data: str, out: str, client: Client,
              run_tag: str = "", topic: str = "", first: int = 0) -> ChunkResult | State:
    """Process one chunk on a Dask worker; the worker writes the Parquet part and reports each clip on ``topic``
    (a retry submits it afresh).

    Ends Cancelled, not Failed, when the flow closes its Dask client under it (:func:`tasks.cluster.closed_here`):
    the flow run is stopping (cancelled from the UI, its process terminated, or failed on another chunk), and the
    chunk's Dask future is cancelled with the client. A future cancelled while the client runs (the scheduler lost
    it), or an error of the chunk itself, is a failure, as before."""
    key = f"{step.modality}-chunk-{index}-{uuid.uuid4().hex[:12]}"
    if topic:
        future = client.submit(extract_chunk_reporting, step, clips, data, out, run_tag, topic, index, pure=False,
                               key=key)
    else:
        future = client.submit(extract_chunk, step, clips, data, out, run_tag, pure=False, key=key)
    what = f"{step.modality} clips {first + 1}-{first + len(clips)}"
    try:
        return result_while_workers(future, client, what)
    # the wait cut short by the close: the future cancelled with the client (FutureCancelledError), its event loop
    # closed (RuntimeError), a result lost in Dask's teardown (UnboundLocalError, seen once); an error of the chunk
    # itself (a StoreError, an OSError) is a failure whenever it comes
    except (CancelledError, RuntimeError, NameError):
        if closed_here(client):
            return Cancelled(message=f"{what} not done: the flow run stopped")
        raise


@dataclass(frozen=True)
class Committed:
    dropped: int  # stale and duplicate rows dropped
    merged: int  # small parts merged into fewer
    parts: int  # parts of the dataset after the commit


@task(name="commit", cache_policy=NO_CACHE, task_run_name="commit-{step.modality}",
      retries=STORE_RETRIES, retry_delay_seconds=STORE_RETRY_DELAYS, retry_condition_fn=transient_store_error)
def commit(out: str, step: Step, p: Plan, inv: Inventory, rejects: list[dict[str, Any]], started: float,
           no_audio: list[dict[str, Any]] | None = None, run_tag: str = "", data_version: str = "",
           hashes: dict[str, str] | None = None) -> Committed:
    """Drop stale and duplicate rows, write the manifest, parameters and rejects table, then merge small parts
    once there are many (a merge that fails is a warning: the store reads the same without it).

    ``hashes`` are the content hashes the workers found: a clip whose hash was not known before the run is
    settled here (its older row is stale only if the content differs).

    For the audio step, ``no_audio`` (clips without audio: video-only mp4s,
    mp4s with a silent or missing track) is written to ``manifest/no_audio``.
    The manifest lists every clip that passed the inventory with its listing
    fingerprint, hash and outcome (``status`` ok, rejected or no_audio), for
    the next run's inventory.

    ``started`` is when the run began: temporary files older than that, and
    those of this run (``run_tag``; all its writers have finished), were left
    by a writer that was killed, and are removed.

    ``data_version`` (the hash of the clips this run extracted from) and the
    actors found are recorded in ``params.json``: the runs that read these
    rows name them.
    """
    store = Store(out)
    folder = store.dataset_dir(step.dataset, step.key)
    manifest = manifest_frame(inv, hashes or {}, rejects, no_audio or [], step.key)
    # a clip that could not be read for a reason not its own (its storage failed, an error of ours) keeps its rows
    # until a run reads it: nothing stored is lost to an endpoint down during --full or --verify (a full rebuild
    # keeps the old parts that hold such rows; their other rows, recomputed, go as duplicates below)
    unread = {r["path"] for r in rejects if is_unexpected_reject(r)}
    drop, before = p.drop_parts, None
    if unread and drop:
        before = store.dataset_keys(step.dataset, step.key, damaged=[])
        holding = set(before.loc[before["path"].isin(unread), "_part"]) if not before.empty else set()
        drop = [name for name in drop if name not in holding]
    store.remove(f"{folder}/{name}" for name in drop)
    # the rows left: those read just now, less the parts removed (read again only where they were not read)
    stored = (store.dataset_keys(step.dataset, step.key, damaged=[]) if before is None
              else before[~before["_part"].isin(drop)])
    ok = manifest[manifest["status"] == "ok"]
    wanted = set(zip(ok["path"], ok["content_hash"], strict=True))
    if unread and not stored.empty:
        held = stored[stored["path"].isin(unread)]
        wanted |= set(zip(held["path"], held["content_hash"], strict=True))
    damaged: list[str] = []
    dropped = compact(store, folder, stale_rows(stored, wanted), damaged)
    if dropped or damaged:
        stored = store.dataset_keys(step.dataset, step.key, damaged=[])
    dropped += compact(store, folder, duplicate_rows(stored), damaged)
    for d in damaged:
        get_run_logger().warning("%s: damaged part %s is dropped; the next extraction recomputes its clips",
                                 step.modality, store.url_of(d))
    store.remove_stale_temporaries(folder, older_than=started, tag=run_tag)
    store.write_json(f"{folder}/params.json", {"params": step.params.to_dict(), "hash": step.params.hash(),
                                               "data_version": data_version,
                                               "actors": sorted({rid.actor for _, rid, _ in inv.clips})})
    store.write_manifest(step.modality, manifest)
    store.write_rejects(step.modality, rejects)
    if step.modality == "audio":
        store.write_no_audio(no_audio or [])
    try:  # last: the run's outputs are in place; the store reads the same with its parts merged or not
        merged = store.merge_small_parts(folder)
    except (StoreError, OSError) as exc:
        merged = 0
        get_run_logger().warning("%s: small parts not merged (%s); they stay as they are", step.modality,
                                 str(exc) or type(exc).__name__)
    return Committed(dropped, merged, len(store.list_parts(folder)))


@task(name="landmark-features", cache_policy=NO_CACHE)
def landmark_features(out: str, frames: FrameParams) -> dict[str, Any]:
    """Measure the landmarks of the stored mesh face crops into the ``landmarks`` feature set; its summary, or
    ``{"error": why}`` when there are none (no face in any clip): an outcome the summary reports, not a failure
    of the task (Prefect would print its failure lines at the end of a command that succeeded)."""
    params = LandmarkParams(every=frames.every, size=frames.size)
    try:
        table = update_landmark_features(Store(out), params)
    except StoreError as exc:
        return {"error": str(exc)}
    return {"feature_set": params.key, "clips": len(table.features), "clips_without_face": table.no_face,
            "frames_with_face": table.frames_with_face, "frames": table.frames,
            "face_rate": round(table.face_rate, 4),
            # more than one face detected in a kept frame (each clip's crops follow one face); unknown: frames stored
            # before faces were counted
            "n_clips_with_several_faces": len(table.several_faces), "clips_with_several_faces": table.several_faces,
            "n_clips_faces_unknown": len(table.faces_unknown),
            # the track lost the face it followed and took another in a kept frame (the crops may show someone else
            # from there on); unknown: frames stored before switches were recorded
            "n_clips_track_switched": len(table.track_switched), "clips_track_switched": table.track_switched,
            "n_clips_track_unknown": len(table.track_unknown)}


def stored_extraction(out: str, dataset: str, key: str) -> tuple[str, tuple[int, ...]]:
    """The data version and the actors the last extraction recorded for ``dataset``/``key`` ("" and () if none)."""
    store = Store(out)
    path = f"{store.dataset_dir(dataset, key)}/params.json"
    try:
        info = store.read_json(path) if store.exists(path) else {}
    except (OSError, ValueError):
        info = {}
    return str(info.get("data_version", "")), tuple(int(a) for a in info.get("actors", []))
