"""Landmark geometry: the ``landmarks`` feature set, a face's movements measured from its landmarks.

Each kept frame of a face-crop frame set (mesh front end, :mod:`emotion.video.face`)
stores the 468 Face Mesh landmarks of the aligned face. From them,
:func:`frame_measures` computes scale-free measures (mouth opening and width,
lip-corner height, brow raise, eye opening, nose wrinkle and the like), each a
distance divided by the distance between the eye centres, so that face size and
distance to the camera drop out. :func:`clip_features` summarises each measure
over the clip's frames (mean, std, 10th/50th/90th percentile, range and the
slope per second), one row per clip, as the audio feature sets are.

Frames without a face are left out; a clip without any face has no row (it is
counted, not guessed). Speaker normalisation (``--speaker-norm``) applies as on
audio: each actor's face shape is taken out by their own statistics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from emotion.audio.extended import FUNCTIONALS, functionals_at
from emotion.core import jsontext
from emotion.core.errors import DamagedPartError, StoreError, UsageError
from emotion.core.names import extract_advice
from emotion.core.params import HashedParams
from emotion.store.store import LABEL_COLUMNS, Store, label_fields, params_metadata
from emotion.video.face import LEFT_EYE, N_LANDMARKS, RIGHT_EYE
from emotion.video.frames import LATEST_REVISION, FrameParams, set_revision
from emotion.video.frameset import frame_index

STATS = FUNCTIONALS  # the statistics of the extended audio set, over the frames with a face
FACES_DETECTED_TYPE = pa.int16()  # the frame table's ``faces_detected``: faces in a kept frame (null: not counted)
# the frame table's ``track_switched``: whether the clip's face track switched person in a kept frame (null: not
# recorded, in frames stored before it was); a new column, not new crops, so the frame set keeps its key
TRACK_SWITCHED_TYPE = pa.bool_()

# Face Mesh indices; "r" is the subject's right (the image's left)
_LIP_UP, _LIP_LOW = 13, 14  # inner lips, centre
_CORNER_R, _CORNER_L = 61, 291
_UPPER_LIP_TOP, _SUBNASALE, _NOSE_TIP, _CHIN, _LOWER_LIP_BOTTOM = 0, 2, 1, 152, 17
_ALAR_R, _ALAR_L = 98, 327
_BROW_INNER = (107, 336)
_BROW_MID = (105, 334)
_BROW_OUTER = (70, 300)
_LID_UP = (159, 386)
_LID_LOW = (145, 374)

MEASURES = (
    "mouth_open", "mouth_width", "mouth_aspect", "lip_corner_drop", "lip_corner_height", "mouth_height",
    "upper_lip_to_nose", "lower_lip_to_chin", "jaw_drop", "brow_inner_raise", "brow_mid_raise", "brow_outer_raise",
    "brow_distance", "brow_to_lid", "eye_open", "eye_open_asymmetry", "nostril_width", "nose_to_eyes",
    "head_yaw", "head_pitch",
)


def encode_landmarks(points: np.ndarray) -> bytes:
    """Landmarks [468, 2] (shares of the crop side) as float16 bytes for the frame table."""
    p = np.asarray(points, dtype=np.float16)
    if p.shape != (N_LANDMARKS, 2):
        raise UsageError(f"expected {N_LANDMARKS} landmarks of 2 coordinates, got an array of shape {p.shape}")
    return p.tobytes()


def decode_landmarks(data: bytes) -> np.ndarray:
    """The [468, 2] landmarks stored by :func:`encode_landmarks`, as float32."""
    if len(data) != N_LANDMARKS * 2 * 2:
        raise UsageError(f"stored landmarks have {len(data)} bytes, expected {N_LANDMARKS * 4}")
    return np.frombuffer(data, dtype=np.float16).reshape(N_LANDMARKS, 2).astype(np.float32)


def frame_measures(points: np.ndarray) -> np.ndarray:
    """The :data:`MEASURES` of landmarks [..., 468, 2]: distances over the eye distance (image y grows downward)."""
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-2:] != (N_LANDMARKS, 2):
        raise UsageError(f"expected landmarks [..., {N_LANDMARKS}, 2], got shape {p.shape}")
    eye_r, eye_l = p[..., list(RIGHT_EYE), :].mean(-2), p[..., list(LEFT_EYE), :].mean(-2)
    mid = (eye_r + eye_l) / 2
    d = np.linalg.norm(eye_l - eye_r, axis=-1)
    d = np.where(d > 1e-6, d, np.nan)

    def pt(i: int) -> np.ndarray:
        return p[..., i, :]

    def dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.asarray(np.linalg.norm(a - b, axis=-1) / d)

    def below(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # how far a lies below b
        return np.asarray((a[..., 1] - b[..., 1]) / d)

    lip_mid = (pt(_LIP_UP) + pt(_LIP_LOW)) / 2
    corners = (pt(_CORNER_R) + pt(_CORNER_L)) / 2
    mouth_open, mouth_width = dist(pt(_LIP_UP), pt(_LIP_LOW)), dist(pt(_CORNER_R), pt(_CORNER_L))
    eye_r_open, eye_l_open = dist(pt(_LID_UP[0]), pt(_LID_LOW[0])), dist(pt(_LID_UP[1]), pt(_LID_LOW[1]))
    eye_y = {0: eye_r, 1: eye_l}
    out = {
        "mouth_open": mouth_open,
        "mouth_width": mouth_width,
        "mouth_aspect": mouth_open / np.maximum(mouth_width, 1e-6),
        "lip_corner_drop": below(corners, lip_mid),  # > 0: corners below the lips' centre (a frown)
        "lip_corner_height": below(corners, mid),  # smaller: corners pulled up towards the eyes (a smile)
        "mouth_height": below(lip_mid, mid),
        "upper_lip_to_nose": dist(pt(_UPPER_LIP_TOP), pt(_SUBNASALE)),
        "lower_lip_to_chin": dist(pt(_LOWER_LIP_BOTTOM), pt(_CHIN)),
        "jaw_drop": below(pt(_CHIN), mid),
        "brow_inner_raise": np.mean([below(eye_y[i], pt(_BROW_INNER[i])) for i in (0, 1)], axis=0),
        "brow_mid_raise": np.mean([below(eye_y[i], pt(_BROW_MID[i])) for i in (0, 1)], axis=0),
        "brow_outer_raise": np.mean([below(eye_y[i], pt(_BROW_OUTER[i])) for i in (0, 1)], axis=0),
        "brow_distance": dist(pt(_BROW_INNER[0]), pt(_BROW_INNER[1])),
        "brow_to_lid": np.mean([below(pt(_LID_UP[i]), pt(_BROW_MID[i])) for i in (0, 1)], axis=0),
        "eye_open": (eye_r_open + eye_l_open) / 2,
        "eye_open_asymmetry": np.abs(eye_r_open - eye_l_open),
        "nostril_width": dist(pt(_ALAR_R), pt(_ALAR_L)),
        "nose_to_eyes": below(pt(_SUBNASALE), mid),  # shorter when the nose wrinkles
        "head_yaw": np.asarray((pt(_NOSE_TIP)[..., 0] - mid[..., 0]) / d),
        "head_pitch": below(pt(_NOSE_TIP), mid),
    }
    return np.stack([out[m] for m in MEASURES], axis=-1)


def summarise(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-clip statistics (:data:`STATS`) of per-frame values [n, m]: [m * len(STATS)], measure-major."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or len(v) == 0 or len(times) != len(v):
        raise UsageError("summarising needs at least one frame and one time per frame")
    return functionals_at(v.T, times).reshape(-1)


def clip_features(times: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The feature vector of one clip from its faces' times [n] and landmarks [n, 468, 2]."""
    return summarise(times, frame_measures(points))


MESH_REVISION = set_revision("mesh", LATEST_REVISION)  # the revision of the current mesh face crops


@dataclass(frozen=True)
class LandmarkParams(HashedParams):
    """The ``landmarks`` feature set: the frames it reads (every Nth, mesh face crops of a frame revision) and its
    revision.

    A stored table is reused while its clips are unchanged, whatever frames it was measured on, so the set's identity
    names the frame set it reads: ``frame_revision`` (by default the current revision of the mesh face crops,
    :data:`MESH_REVISION`) is part of its parameters from revision 3 on, and a new revision of the face crops gives
    the set a new key by itself (one that changes only whole frames or Haar crops does not).
    Revisions 1 and 2 (the earlier releases' records, which hash as they did) read the face crops of the frame
    revision of their own number, then raised by hand.
    """

    name: str = "landmarks"
    every: int = 20
    size: int = 256
    # the measures' own revision. 2: on the face crops of frame revision 2 (turned upright; full-range fallback; one
    # face followed per clip); 3: the frame revision is a parameter of its own (``frame_revision``)
    revision: int = 3
    frame_revision: int = MESH_REVISION  # the mesh face crops' revision (FrameParams.revision); from revision 3

    modality = "video"  # its rows are mp4 clips, built from the frame table, stored under features/video

    def __post_init__(self) -> None:
        if self.name != "landmarks" or self.every < 1 or self.frame_revision < 1:
            raise UsageError("landmark feature parameters out of range (every >= 1, frame_revision >= 1)")

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if self.revision < 3:  # the earlier releases' records, without the frame revision: same dict, same key
            del d["frame_revision"]
        return d

    def frame_params(self) -> FrameParams:
        """The frame set the features are measured on."""
        frames = self.frame_revision if self.revision >= 3 else self.revision
        return FrameParams(every=self.every, size=self.size, face_crop=True, detector="mesh", revision=frames)

    def feature_names(self) -> list[str]:
        return [f"lm_{m}_{s}" for m in MEASURES for s in STATS]

    def without_copies(self) -> LandmarkParams:
        return self

    @property
    def sample_rate(self) -> int:  # pragma: no cover - a video set has no audio rate
        raise UsageError("the landmarks feature set is measured on video frames, not audio")


@dataclass(frozen=True)
class LandmarkTable:
    """One feature row per clip with a face (with its counts of kept frames and of faces found), the clips left
    out (no face in any kept frame), the most faces detected in one kept frame of each clip, and whether each
    clip's face track switched person."""

    features: pd.DataFrame
    no_face: list[str]
    faces: dict[str, tuple[int, int]]  # clip -> (kept frames with a face, kept frames)
    # clip -> the most faces detected in one of its kept frames; None: not recorded (frames stored before they were
    # counted)
    most_faces: dict[str, int | None] = field(default_factory=dict)
    # clip -> whether its track switched person in a kept frame (its crops may show someone else from there on);
    # None: not recorded (frames stored before switches were)
    switched: dict[str, bool | None] = field(default_factory=dict)

    @property
    def several_faces(self) -> list[str]:
        """The clips with more than one face detected in a kept frame (their crops follow one of them), sorted."""
        return sorted(p for p, n in self.most_faces.items() if n is not None and n > 1)

    @property
    def faces_unknown(self) -> list[str]:
        """The clips whose frames do not record how many faces they show, sorted."""
        return sorted(p for p, n in self.most_faces.items() if n is None)

    @property
    def track_switched(self) -> list[str]:
        """The clips whose face track switched person (lost the face it followed and took another), sorted."""
        return sorted(p for p, s in self.switched.items() if s)

    @property
    def track_unknown(self) -> list[str]:
        """The clips whose frames do not record whether their track switched person, sorted."""
        return sorted(p for p, s in self.switched.items() if s is None)

    @property
    def frames_with_face(self) -> int:
        return sum(found for found, _ in self.faces.values())

    @property
    def frames(self) -> int:
        """Kept frames of every clip, with a face or not."""
        return sum(kept for _, kept in self.faces.values())

    @property
    def face_rate(self) -> float:
        """The share of all kept frames in which a face was found."""
        return self.frames_with_face / self.frames if self.frames else 0.0


def landmark_table(frames: pd.DataFrame, params: LandmarkParams) -> LandmarkTable:
    """Feature rows of the clips in a frame table (columns: path, content_hash, labels, time, face_found, landmarks,
    and ``faces_detected`` and ``track_switched`` where the frames record them: a frame whose count is missing makes
    its clip's unknown; a clip switched if a frame says so, else it is unknown if a frame does not say)."""
    names = params.feature_names()
    label_cols = [c for c in LABEL_COLUMNS if c in frames.columns]
    rows: list[dict[str, Any]] = []
    no_face: list[str] = []
    counts: dict[str, tuple[int, int]] = {}
    most: dict[str, int | None] = {}
    switched: dict[str, bool | None] = {}
    for path, g in frames.groupby("path", sort=True):
        g = g.sort_values("time")
        ok = g["face_found"].fillna(False).astype(bool) & g["landmarks"].notna()
        counts[str(path)] = (int(ok.sum()), len(g))
        detected = g["faces_detected"] if "faces_detected" in g.columns else None
        most[str(path)] = None if detected is None or detected.isna().any() else int(detected.max())
        said = g["track_switched"].dropna().astype(bool) if "track_switched" in g.columns else pd.Series(dtype=bool)
        switched[str(path)] = bool(said.any()) if said.any() or len(said) == len(g) else None
        if not ok.any():
            no_face.append(str(path))
            continue
        pts = np.stack([decode_landmarks(b) for b in g.loc[ok, "landmarks"]])
        vec = clip_features(g.loc[ok, "time"].to_numpy(), pts)
        first = g.iloc[0]
        rows.append({"path": path, "content_hash": first["content_hash"], **{c: first[c] for c in label_cols},
                     "n_frames": len(g), "n_faces": int(ok.sum()),
                     **dict(zip(names, vec.astype(np.float32).tolist(), strict=True))})
    cols = ["path", "content_hash", *label_cols, "n_frames", "n_faces", *names]
    return LandmarkTable(pd.DataFrame(rows, columns=cols), no_face, counts, most, switched)


FRAME_COLUMNS = ["path", "content_hash", *LABEL_COLUMNS, "time", "face_found", "landmarks", "faces_detected",
                 "track_switched"]


def _measure(store: Store, params: LandmarkParams) -> LandmarkTable:
    """The landmark table of the store's current face-crop frames of ``params``."""
    fkey = params.frame_params().key
    frames = store.read_dataset("frames", fkey, columns=FRAME_COLUMNS,  # null in frames stored before they were
                                optional={"faces_detected": FACES_DETECTED_TYPE, "track_switched": TRACK_SWITCHED_TYPE})
    if frames.empty:
        advice = extract_advice("frames", fkey, store.url)
        raise StoreError(f"no face-crop frames {fkey} under {store.url} ({advice})", advice=advice)
    table = landmark_table(frames.drop(columns="_part", errors="ignore"), params)
    if table.features.empty:
        raise StoreError(f"no face was found in any clip of {fkey}: no landmark features")
    return table


def _stored_keys(store: Store, params: LandmarkParams, whole: bool = False) -> tuple[list[str], set[tuple[str, str]]]:
    """The table's parts and its (path, content hash) keys; a damaged part counts as holding no key (so the table
    is measured again), and ``whole`` reads the parts whole to find damage outside the keys too."""
    folder = store.features_dir("video", params.key)
    parts = store.list_parts(folder)
    cols = ["path", "content_hash"]
    stored = store.read_snapshot(folder, columns=cols, damaged=[], whole=whole) if parts else pd.DataFrame(columns=cols)
    return parts, set(zip(stored["path"], stored["content_hash"], strict=True))


def update_landmark_features(store: Store, params: LandmarkParams) -> LandmarkTable:
    """Measure the stored frames of ``params.frame_params()`` into ``features/video/<params.key>``.

    The extraction that writes the frames calls this (holding the store's
    writer lock): the table is rebuilt from the frame table whenever the clips
    behind it changed (it is cheap: no video is decoded) and written as one new
    part, after which the older parts go; an unchanged table is not rewritten,
    and its record (``params.json``: the clips without a face, with several
    faces, whose track switched) only where that changed.
    """
    table = _measure(store, params)
    folder = store.features_dir("video", params.key)
    record = {"params": params.to_dict(), "hash": params.hash(), "frames": params.frame_params().key,
              "clips_without_face": table.no_face, "clips_with_several_faces": table.several_faces,
              "clips_track_switched": table.track_switched}
    old, keys = _stored_keys(store, params, whole=True)  # one small part: read whole, so damage anywhere is mended
    if len(old) == 1 and keys == set(zip(table.features["path"], table.features["content_hash"], strict=True)):
        # its record still follows the frames: `extract --full` rewrites them, with counts and switches where
        # frames stored before had none
        if store.recorded_params(folder) != json.loads(jsontext.dumps(record, default=str)):
            store.write_json(f"{folder}/params.json", record)
        return table
    names = params.feature_names()
    fields = label_fields() + [pa.field("n_frames", pa.int32()), pa.field("n_faces", pa.int32())]  # kept, with a face
    fields += [pa.field(n, pa.float32()) for n in names]
    schema = pa.schema(fields, metadata=params_metadata(params))
    arrow = pa.Table.from_pandas(table.features, schema=schema, preserve_index=False)
    store.write_table(f"{folder}/{Store.new_part_name()}", arrow)
    store.write_json(f"{folder}/params.json", record)
    store.remove(old)
    return table


def read_landmark_features(store: Store, params: LandmarkParams) -> pd.DataFrame:
    """The landmark feature rows of the store's current face crops.

    Readers never write: when the stored table does not match the frames (say,
    frames extracted by an older version), it is measured afresh in memory.
    """
    _, keys = _stored_keys(store, params)
    if keys:
        try:
            frames = store.dataset_keys("frames", params.frame_params().key)
        except StoreError:
            frames = pd.DataFrame(columns=["path", "content_hash"])
        faceless = set(_no_face_clips(store, params))
        expected = {(p, h) for p, h in zip(frames["path"], frames["content_hash"], strict=True) if p not in faceless}
        if keys == expected:
            try:
                return store.read_features("video", params.key)
            except DamagedPartError:  # measured afresh below (the next extraction of the frames rewrites it)
                pass
    return _measure(store, params).features


def faceless_clips(store: Store, params: LandmarkParams, features: pd.DataFrame) -> pd.DataFrame:
    """The clips of the store's current face-crop frames of ``params`` that have no row in ``features`` (as from
    :func:`read_landmark_features`: no face in any kept frame), with ``path``, ``content_hash``, ``actor`` and
    ``emotion``: a landmark model has no prediction for them, and they still count among its test clips."""
    clips = frame_index(store, params.frame_params().key).drop_duplicates("path")
    out = clips[~clips["path"].isin(set(features["path"]))]
    return out[["path", "content_hash", "actor", "emotion"]].sort_values("path").reset_index(drop=True)


def _no_face_clips(store: Store, params: LandmarkParams) -> list[str]:
    path = f"{store.features_dir('video', params.key)}/params.json"
    try:
        return list(store.read_json(path).get("clips_without_face", [])) if store.exists(path) else []
    except (StoreError, ValueError, AttributeError):
        return []
