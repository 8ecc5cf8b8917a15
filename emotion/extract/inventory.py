"""Step 1 of extraction: list the clips under a data root, validate their ids, and tell what changed.

See :mod:`emotion.extract` for the steps together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from emotion.audio.seed import AudioFeatureParams
from emotion.core.errors import EmotionError, InvalidIdError, RejectedInput, StorageReadError, UsageError
from emotion.core.ids import Modality, RavdessId, parse_id
from emotion.core.splits import ActorSplit, lacking_actors
from emotion.featuresets import FeatureParams, is_face_set
from emotion.models.search import SearchParams, too_few_cv_actors
from emotion.store.sources import (
    AUDIO_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Candidate,
    DataRoot,
    Listing,
    StorageOutage,
    content_hash,
    extension,
    from_listing,
)
from emotion.store.store import LABEL_COLUMNS, Store
from emotion.video.frames import FrameParams


@dataclass(frozen=True)
class ClipRef:
    """One clip to process: its path under the data root and content hash.

    ``content_hash`` is None when it is not known yet (a new clip, or one whose listing fingerprint ``meta``
    changed): the worker that reads the clip hashes it. ``stored_hash`` is the hash of the clip's row in the
    store, if any: a worker that finds the same hash leaves that row as it is instead of recomputing it.
    """

    path: str
    content_hash: str | None = None
    meta: str = ""
    stored_hash: str | None = None


OK, REJECTED, NO_AUDIO = "ok", "rejected", "no_audio"
MANIFEST_COLUMNS = ["path", "content_hash", "size", "meta", "status", "reason", "stage", "params_key", *LABEL_COLUMNS]


@dataclass
class Inventory:
    clips: list[tuple[ClipRef, RavdessId, int]] = field(default_factory=list)  # (ref, id, size)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    no_audio: list[dict[str, Any]] = field(default_factory=list)  # clips without audio (not rejects)
    # clips unchanged since a run (with the same parameters) that rejected them or found no audio in them:
    # their outcome is repeated (in ``rejects``/``no_audio`` too) without reading them again
    settled: list[tuple[ClipRef, RavdessId, int, dict[str, Any]]] = field(default_factory=list)
    # path -> content hash of the clips the last run kept (status ok in its manifest): of one recording under two
    # ids, the clip already kept keeps it (see :func:`duplicate_pairs`)
    kept_before: dict[str, str] = field(default_factory=dict)
    read: int = 0  # clips read (and hashed) by the inventory itself: all of them without ``known``, else none
    # every clip's listing is as the previous manifest recorded it (no clip new, changed or gone), or with
    # ``--verify`` every clip's content (:func:`same_contents`): the data version the last extraction recorded holds
    unchanged_listing: bool = False

    def manifest(self) -> pd.DataFrame:
        return manifest_frame(self, {}, [], [], "")

    @property
    def unhashed(self) -> int:
        """Clips whose content hash is left to the workers."""
        return sum(ref.content_hash is None for ref, _, _ in self.clips)


def manifest_frame(inv: Inventory, hashes: dict[str, str], rejects: Sequence[dict[str, Any]],
                   no_audio: Sequence[dict[str, Any]], params_key: str) -> pd.DataFrame:
    """One row per clip that passed the inventory: path, content hash, size, listing fingerprint, outcome.

    ``hashes`` are the hashes the workers found (they win over the inventory's); ``rejects`` and ``no_audio``
    give the outcome of clips that were rejected or have no audio (``status`` ``rejected``/``no_audio`` with
    ``reason`` and ``stage``; ``ok`` otherwise). ``params_key`` names the parameters the outcomes hold for.
    """
    outcome = {r["path"]: (REJECTED, r) for r in rejects} | {r["path"]: (NO_AUDIO, r) for r in no_audio}
    rows = []
    for ref, rid, size in [*inv.clips, *((r, i, n) for r, i, n, _ in inv.settled)]:
        status, why = outcome.get(ref.path, (OK, None))
        rows.append({"path": ref.path, "content_hash": hashes.get(ref.path) or ref.content_hash, "size": size,
                     "meta": ref.meta, "status": status, "reason": why["reason"] if why else None,
                     "stage": why["stage"] if why else None, "params_key": params_key, **rid.labels()})
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def same_contents(inv: Inventory, known: pd.DataFrame | None) -> bool:
    """Whether an inventory that read every clip (``--verify``) found the clips and contents that the previous run's
    manifest ``known`` records: the data version recorded then still holds, as it does for an unchanged listing."""
    if known is None or not len(known):
        return False
    recorded = {str(r["path"]): r.get("content_hash") for r in known.to_dict("records")}
    found = {ref.path: ref.content_hash for ref, _, _ in inv.clips}
    found.update({ref.path: ref.content_hash for ref, _, _, _ in inv.settled})
    unread = {r["path"] for r in [*inv.rejects, *inv.no_audio]} - set(found)  # set aside before any content was read
    return set(recorded) == set(found) | unread and all(recorded[p] == h for p, h in found.items())


def load_known(store: Store, modality: str) -> pd.DataFrame:
    """The previous run's manifest of ``modality`` (empty when there is none, or it predates fingerprints)."""
    df = store.read_manifest(modality)
    if df is None or "meta" not in df.columns:
        return pd.DataFrame(columns=MANIFEST_COLUMNS)
    return df


def printable(name: str) -> str:
    """``name`` as valid UTF-8 text: bytes of a non-UTF-8 file name (surrogate escapes) are shown as ``\\xNN``."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def reject(path: str, reason: str, stage: str) -> dict[str, Any]:
    return {"path": printable(path), "reason": " ".join(printable(reason).split()), "stage": stage}


DUPLICATE_REASON = "same recording as {} (identical content under another id)"


def duplicate_reject(path: str, original: str) -> dict[str, Any]:
    """The reject of a clip whose content is that of ``original`` (one recording under two ids)."""
    return reject(path, DUPLICATE_REASON.format(original), "id")


# the stage of a reject for an error of ours or of the machine, not of the file: the next run reads the clip again
UNEXPECTED = "unexpected"


def is_unexpected_reject(outcome: dict[str, Any]) -> bool:
    """A reject for an unexpected error (recorded before such rejects had a stage of their own: by its reason)."""
    return outcome.get("stage") == UNEXPECTED or str(outcome.get("reason") or "").startswith("unexpected ")


def is_duplicate_reject(outcome: dict[str, Any]) -> bool:
    return outcome.get("stage") == "id" and str(outcome.get("reason") or "").startswith("same recording as ")


def kept_hashes(known: pd.DataFrame | None) -> dict[str, str]:
    """Path -> content hash of the clips a manifest (``known``) records as kept (status ok)."""
    if known is None or not len(known):
        return {}
    ok = known[known["status"] == OK]
    return {str(p): str(h) for p, h in zip(ok["path"], ok["content_hash"], strict=True) if isinstance(h, str)}


def duplicate_pairs(clips: Iterable[tuple[str, str]], kept_before: dict[str, str]) -> list[tuple[str, str]]:
    """``(clip, original)`` for each clip of ``clips`` (``(path, content hash)``) whose content another clip has.

    Of the clips of one content, the one the last run kept with that content (``kept_before``) keeps it: a copy
    added under another id (whatever its name) is the one rejected, and the stored clip and its label stay. Among
    clips equally kept before or not (a first run), the first by path keeps it.
    """
    by_content: dict[str, list[str]] = {}
    for path, digest in clips:
        by_content.setdefault(digest, []).append(path)
    pairs = []
    for digest, paths in by_content.items():
        if len(paths) > 1:
            keeper = min(paths, key=lambda q: (kept_before.get(q) != digest, q))
            pairs += [(q, keeper) for q in sorted(paths) if q != keeper]
    return pairs


def duplicate_recordings(inv: Inventory, hashes: dict[str, str], rejected: Iterable[str]) -> list[dict[str, Any]]:
    """Rejects for clips of ``inv`` whose content is that of another clip, once every hash is known.

    The inventory compares only the hashes it knows (those of unchanged clips); a new or changed clip is hashed
    by its worker (``hashes``), so the comparison is finished here, after the workers return, without reading
    anything. As in the inventory, the clip kept before keeps the recording (:func:`duplicate_pairs`) and the
    others are rejected naming it; clips already ``rejected`` and empty files take no part.
    """
    skip = set(rejected)
    clips = [(ref.path, digest) for ref, _, size in inv.clips
             if ref.path not in skip and size and (digest := hashes.get(ref.path) or ref.content_hash) is not None]
    return [duplicate_reject(path, original) for path, original in duplicate_pairs(clips, inv.kept_before)]


@dataclass(frozen=True)
class Step:
    """One kind of extraction: which files it takes, what it computes, where rows go.

    ``audio``: ``.wav``/``.flac`` clips and the audio track of ``.mp4`` clips
    -> one feature row per clip in ``features/audio``; ``video``: ``.mp4`` clips -> one row per kept frame
    in ``frames``. Both are keyed by the parameters' hash.
    """

    modality: str
    params: FeatureParams | FrameParams
    chunk_size: int

    @property
    def dataset(self) -> str:
        return "features/audio" if self.modality == "audio" else "frames"

    @property
    def extensions(self) -> frozenset[str]:
        return AUDIO_EXTENSIONS | VIDEO_EXTENSIONS if self.modality == "audio" else VIDEO_EXTENSIONS

    @property
    def key(self) -> str:
        return self.params.key

    def accept(self, rid: RavdessId) -> str | None:
        if self.modality == "video" and rid.modality == Modality.AUDIO_ONLY:
            return f"an mp4 named as audio-only (modality 03) in {rid.stem}: expected modality 01 or 02"
        return None

    def absent(self, relpath: str, rid: RavdessId) -> str | None:
        """Why a valid clip has nothing for this step (not a reject), or None."""
        if self.modality == "audio" and extension(relpath) in VIDEO_EXTENSIONS and rid.modality == Modality.VIDEO_ONLY:
            return NO_AUDIO_VIDEO_ONLY
        return None


NO_AUDIO_VIDEO_ONLY = "no audio: video-only clip (modality 02)"


def audio_step(params: FeatureParams | None = None, chunk_size: int = 40) -> Step:
    return Step("audio", params or AudioFeatureParams(), chunk_size)


def video_step(params: FrameParams | None = None, chunk_size: int = 6) -> Step:
    return Step("video", params or FrameParams(), chunk_size)


def actors_in(listed: Iterable[Candidate]) -> tuple[int, ...]:
    """The actors of the clips of a listing of a data root (:meth:`DataRoot.discover`) by their names alone (no clip
    is read), for a check of a split before any work; files that are no RAVDESS id or cannot be listed are left to
    the inventory to reject."""
    actors: set[int] = set()
    for cand in listed:
        if cand.problem:
            continue
        try:
            actors.add(parse_id(cand.relpath).actor)
        except InvalidIdError:
            continue
    return tuple(sorted(actors))


def take_inventory(
    root: DataRoot,
    extensions: Iterable[str] = AUDIO_EXTENSIONS,
    accept: Callable[[RavdessId], str | None] | None = None,
    absent: Callable[[str, RavdessId], str | None] | None = None,
    known: pd.DataFrame | None = None,
    params_key: str | None = "",
    candidates: Sequence[Candidate] | None = None,
    kept: dict[str, str] | None = None,
) -> Inventory:
    """Discover and validate every clip; problems become rejects.

    ``known`` is the previous run's manifest (:func:`load_known`). A clip
    whose listing fingerprint matches its row there keeps the recorded
    content hash, unread; if that run (with parameters ``params_key``)
    rejected it or found no audio in it, the outcome is repeated, unread. A
    new or changed clip is left unhashed (the worker hashes it). With
    ``params_key`` None no outcome is repeated (``--full``). Without
    ``known`` every clip is read and hashed here (``--verify``): a change
    that keeps size and time is caught, and unreadable files are rejected.

    ``accept`` may refuse a valid id with a reason (e.g. a modality this
    step does not handle). ``absent`` may set a valid clip aside with a
    reason, unread and not as a reject (a video-only clip has no audio). Of two files with the same id, the one the
    last run kept (``kept``), else the first by path, is kept and the other rejected.

    ``candidates``: ``root.discover(extensions)`` as already taken (:meth:`emotion.store.sources.Listing.of`): the root
    is not listed again.

    Of clips with the same content (one recording under two ids), the one the last run kept keeps it, as
    :func:`duplicate_pairs` decides once the workers have hashed the rest: ``kept`` (path -> hash), by default
    taken from ``known``; given apart for a run that reads everything (``--verify``), so that it keeps the same
    clip, and to add the clips the other modality's manifest kept (an mp4 is one clip for both).
    """
    inv = Inventory(kept_before=kept_hashes(known) if kept is None else dict(kept))
    seen: dict[str, str] = {}
    by_content: dict[str, str] = {}  # content hash -> the clip that has it (one recording under two ids)
    prior: dict[str, dict[str, Any]] = {}
    if known is not None and len(known):
        prior = {r["path"]: r for r in known.to_dict("records") if r.get("meta")}
    listed: set[str] = set()
    changed = False
    outage = StorageOutage()  # (clips are read here only without a manifest: --verify)
    found = root.discover(extensions) if candidates is None else candidates
    # the clips the last run kept are looked at first: of two files with one id, or one recording under two ids,
    # the clip already stored keeps it (a file added beside it is the one rejected, whatever its name); the rest
    # by path. The lists are put back in path order at the end.
    for cand in sorted(found, key=lambda c: (c.relpath not in inv.kept_before, c.relpath)):
        if printable(cand.relpath) != cand.relpath:  # the store keeps UTF-8 text only
            inv.rejects.append(reject(cand.relpath, "file name is not valid UTF-8", "discover"))
            continue
        if cand.problem:
            inv.rejects.append(reject(cand.relpath, cand.problem, "discover"))
            continue
        try:
            rid = parse_id(cand.relpath)
        except InvalidIdError as exc:
            inv.rejects.append(reject(cand.relpath, str(exc), "id"))
            continue
        why = accept(rid) if accept else None
        if why:
            inv.rejects.append(reject(cand.relpath, why, "id"))
            continue
        none = absent(cand.relpath, rid) if absent else None
        if none:
            inv.no_audio.append(reject(cand.relpath, none, "id"))
            continue
        if rid.stem in seen:
            inv.rejects.append(reject(cand.relpath, f"duplicate id {rid.stem}: already given by {seen[rid.stem]}", "id"))
            continue
        if known is None:
            if outage.down:  # the storage is down: the clips left are not tried (their stored rows are kept)
                inv.rejects.append(reject(cand.relpath, outage.not_tried(), UNEXPECTED))
                continue
            try:
                data = root.read_bytes(cand.relpath, outage)
            except StorageReadError as exc:  # the storage failed, not the file: its rows are kept (--verify)
                inv.rejects.append(reject(cand.relpath, exc.reason, UNEXPECTED))
                continue
            except RejectedInput as exc:
                inv.rejects.append(reject(cand.relpath, exc.reason, "read"))
                continue
            inv.read += 1
            ref, size = ClipRef(cand.relpath, content_hash(data), cand.meta), len(data)
        else:
            row = prior.get(cand.relpath) or {}
            same = row.get("meta") == cand.meta
            listed.add(cand.relpath)
            changed = changed or not same
            digest = row.get("content_hash") if same else None
            ref, size = ClipRef(cand.relpath, digest if isinstance(digest, str) else None, cand.meta), cand.size
            # a duplicate is not repeated from the record (whether it still is one depends on the other clip), nor
            # an unexpected error (a fault of the code or the machine, not of the file: it is tried again)
            if (same and params_key is not None and row.get("status") in (REJECTED, NO_AUDIO)
                    and row.get("params_key") == params_key and not is_duplicate_reject(row)
                    and not is_unexpected_reject(row)):
                status = row["status"]
                outcome = reject(cand.relpath, row["reason"], row.get("stage") or "decode")
                (inv.rejects if status == REJECTED else inv.no_audio).append(outcome)
                inv.settled.append((ref, rid, cand.size, outcome))
                seen[rid.stem] = cand.relpath
                continue
        if size and ref.content_hash is not None and ref.content_hash in by_content:
            # one recording under two ids, among the hashes known here (the workers' are compared after them:
            # duplicate_recordings); empty files are rejected at decoding, each for itself. Recorded in the manifest
            # with its hash, so that the next run rejects it again unread while both clips are unchanged.
            outcome = duplicate_reject(cand.relpath, by_content[ref.content_hash])
            inv.rejects.append(outcome)
            inv.settled.append((ref, rid, size, outcome))
            continue
        seen[rid.stem] = cand.relpath
        if ref.content_hash is not None:
            by_content[ref.content_hash] = cand.relpath
        inv.clips.append((ref, rid, size))
    inv.clips.sort(key=lambda c: c[0].path)
    inv.settled.sort(key=lambda c: c[0].path)
    inv.rejects.sort(key=lambda r: str(r["path"]))
    inv.no_audio.sort(key=lambda r: str(r["path"]))
    inv.unchanged_listing = bool(prior) and not changed and listed == set(prior)
    return inv


def empty_data_root(root: str) -> UsageError:
    """The error of a data root with no clip or archive under it (see :func:`check_not_empty`)."""
    return UsageError(f"data root {root!r} holds no .wav, .flac or .mp4 clip (in folders or zip archives): nothing to "
                      "extract (a store is never emptied by an empty data root; to start over, remove the store)")


def check_not_empty(data: str, inventories: Iterable[Inventory], listing: Listing | None = None) -> None:
    """Refuse a data root with no clip or archive under it, whatever its kind (an unmounted drive, a wrong path, an
    emptied bucket prefix): taken as "every clip deleted", it would drop every stored row.

    The root is listed again only when every inventory found nothing: a root of another modality's clips (FLAC
    files for a video extraction) is not empty, and goes on.
    """
    if any(inv.clips or inv.rejects or inv.no_audio or inv.settled for inv in inventories):
        return
    listed = from_listing(listing, data, AUDIO_EXTENSIONS | VIDEO_EXTENSIONS)
    if not (listed if listed is not None else DataRoot(data).discover(AUDIO_EXTENSIONS | VIDEO_EXTENSIONS)):
        raise empty_data_root(data)


def check_split_against_data(data: str, split: str, kind: str, search: SearchParams, tuned: bool) -> Listing:
    """Before any extraction: the clips under ``data`` (``kind``: "video", the mp4s, or "any" clip; told by their
    names, none read) must have actors on both sides of ``split`` (else an :class:`EmotionError` that names a split
    they allow), and, for models tuned by actor-grouped CV (``tuned``), enough train actors for ``search``'s folds
    (else a :class:`UsageError` naming the ``--cv-folds`` they allow). Either failed once every clip had been
    extracted, after minutes or hours. Data with no clip named as RAVDESS names them is left to the extraction.
    Returns the listing of ``data`` it read (the extractions take their inventories from it)."""
    exts = VIDEO_EXTENSIONS if kind == "video" else AUDIO_EXTENSIONS | VIDEO_EXTENSIONS
    listing = DataRoot(data).listing(exts)
    actors = actors_in(listing.candidates)
    if not actors:
        return listing
    sp = ActorSplit.parse(split)
    lack = lacking_actors(sp, actors, "clips", f"under {data}")
    if lack:
        raise EmotionError(lack)
    train = set(sp.train) & set(actors)
    few = too_few_cv_actors(train, search.cv_folds) if tuned else None
    if few:
        raise UsageError(f"{few} (the clips under {data} have {len(train)} of the train actors of {sp})",
                         advice=few.advice)
    return listing


def check_pipeline_split(data: str, split: str, modality: str, features: FeatureParams, feature_models: Sequence[str],
                         search: SearchParams) -> Listing:
    """:func:`check_split_against_data` as the pipeline (``emotion run``, the ``emotion-pipeline`` flow) checks it
    before its extractions, on the clips its ``modality`` reads: the mp4s for ``video`` or a face feature set
    (``landmarks``), else any clip; the train actors of the grouped CV where it trains ``feature_models`` (models on
    ``features``: none with ``modality="video"`` and an audio set). The command line checks it before Prefect
    starts (seconds of a temporary server), the flow again (a deployment's, the UI's runs)."""
    face = is_face_set(features, modality)
    kind = "video" if modality == "video" or face else "any"
    tuned = bool(feature_models) and (modality != "video" or face)
    return check_split_against_data(data, split, kind, search, tuned)
