"""The face front end: detect, find landmarks, align and crop a face for the expression models.

Two networks of Google's MediaPipe, as shipped inside the ``mediapipe`` 0.10.21
wheel (Apache-2.0; installed with ``--no-deps``: only its model files are used,
not its Python framework, whose numpy<2 and opencv-contrib requirements clash
with this stack), run by LiteRT (``ai-edge-litert``, a 0.1 s import; TensorFlow's
own ``tf.lite`` serves where LiteRT is absent):

* BlazeFace short range (``face_detection_short_range.tflite``): a 128x128 SSD
  that gives a face box and six key points (eyes, nose tip, mouth, ears);
* BlazeFace full range (``face_detection_full_range_sparse.tflite``): the same
  outputs from a 192x192 input, for faces too small for short range (under
  about a tenth of the frame's width); it runs only on frames in which short
  range gives no face, or (within a clip) no face overlapping the one followed,
  so frames in which short range finds the face cost nothing more;
* Face Mesh (``face_landmark.tflite``): 468 landmarks on a 192x192 crop of the
  face, rotated so the eyes are level, as MediaPipe's own graph crops it.

Both detectors are decoded as MediaPipe's graphs configure them
(``face_detection_short_range.pbtxt``, ``face_detection_full_range.pbtxt`` and
the common ``face_detection.pbtxt``: anchors, scales, score thresholds 0.5 and
0.6), and overlapping boxes are suppressed at an IoU of 0.3 as there, each
group keeping its most confident box (MediaPipe averages a group's boxes; the
most confident one is what this front end has always used). Within a clip,
:class:`FaceTrack` follows one face: the largest in the first frame with a
face, then in each frame the one that overlaps most with the face followed,
sought with both detectors before another face is taken (and the frame in
which another is taken is recorded as a switch of person).

From the landmarks, :func:`align` maps the face by a similarity transform so
the eyes are level, at a fixed distance and height: the crop is tight, framed
as a Haar cascade's face box frames a face, which is how FER2013's faces were
cut (measured on real RAVDESS frames: the eye centres sit at 30 % and 70 % of the
width of the tight Haar box, 37 % from its top). Nothing is fetched at run time.
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emotion.core.errors import RejectedInput, UsageError
from emotion.core.threads import per_thread

MEDIAPIPE_REQUIREMENT = "mediapipe==0.10.21"  # installed with --no-deps: only its .tflite files are used
MEDIAPIPE_INSTALL_HINT = (f"install the face models with `pip install --no-deps '{MEDIAPIPE_REQUIREMENT}'` (the wheel "
                          "carries MediaPipe's face detection and face mesh models; --no-deps keeps its numpy<2 "
                          "and opencv-contrib requirements out)")
MESH_FILE = "modules/face_landmark/face_landmark.tflite"


@dataclass(frozen=True)
class DetectorSpec:
    """A BlazeFace model of the wheel and the options MediaPipe's graph runs it with (``face_detection_*.pbtxt``)."""

    file: str
    size: int  # the square input tensor's side (also the x, y, w and h scales of its outputs)
    strides: tuple[int, ...]  # SsdAnchorsCalculator: one layer per stride, consecutive equal strides merged
    interpolated_scale_aspect_ratio: float  # > 0: one more anchor per layer (short range); 0: none (full range)
    min_score: float  # the graph's min_score_thresh


SHORT_RANGE = DetectorSpec("modules/face_detection/face_detection_short_range.tflite", 128, (8, 16, 16, 16), 1.0, 0.5)
FULL_RANGE = DetectorSpec("modules/face_detection/face_detection_full_range_sparse.tflite", 192, (4,), 0.0, 0.6)
NMS_IOU = 0.3  # NonMaxSuppressionCalculator's min_suppression_threshold (intersection over union) in face_detection.pbtxt

# Face Mesh indices (the subject's right eye is on the image's left)
RIGHT_EYE = (33, 133, 160, 159, 158, 144, 145, 153)
LEFT_EYE = (263, 362, 387, 386, 385, 373, 374, 380)
N_LANDMARKS = 468

# Where the aligned crop puts the eyes, as shares of its side: the geometry of a tight frontal face box
EYE_X = (0.313, 0.687)
EYE_Y = 0.405


def model_path(name: str) -> Path:
    """A model file of the ``mediapipe`` wheel, found without importing ``mediapipe``."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"the face models are not installed; {MEDIAPIPE_INSTALL_HINT}")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / name
        if p.is_file():
            return p
    raise UsageError(f"the mediapipe package has no {name} (a 0.10.x wheel ships it, 1.x does not); {MEDIAPIPE_INSTALL_HINT}")


_SILENCING = threading.Lock()


def _interpreter(path: Path) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - TensorFlow's own copy of the same runtime
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    # LiteRT's C++ prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."; file descriptor 2 is the
    # process's, so one thread at a time silences it (two at once could leave it on /dev/null for good)
    with _SILENCING, _native_stderr_silenced():
        it = Interpreter(model_path=str(path), num_threads=1)
        it.allocate_tensors()
    return it


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 goes to /dev/null inside the block (native libraries' notices; Python errors still raise)."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _anchors(spec: DetectorSpec = SHORT_RANGE) -> np.ndarray:
    """The SSD anchor centres (x, y) of a detector, as MediaPipe's SsdAnchorsCalculator makes them.

    The graphs ask for one aspect ratio (1.0) and fixed anchor sizes, so an anchor is only its centre: per layer,
    one anchor a cell, plus one for an interpolated scale when ``interpolated_scale_aspect_ratio`` > 0; layers of
    equal consecutive strides share one grid, their anchors interleaved per cell. Short range: 16x16 cells x 2
    (stride 8) and 8x8 x 6 (strides 16, 16, 16) = 896; full range: 48x48 cells x 1 (stride 4) = 2304.
    """
    out: list[tuple[float, float]] = []
    layer = 0
    strides = spec.strides
    while layer < len(strides):
        same = layer
        per_cell = 0
        while same < len(strides) and strides[same] == strides[layer]:
            per_cell += 1 + (spec.interpolated_scale_aspect_ratio > 0)
            same += 1
        grid = math.ceil(spec.size / strides[layer])
        for y in range(grid):
            for x in range(grid):
                out.extend([((x + 0.5) / grid, (y + 0.5) / grid)] * per_cell)
        layer = same
    return np.array(out, dtype=np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of box ``a`` (x, y, w, h) with each of the boxes ``b`` [n, 4]."""
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[0] + a[2], b[:, 0] + b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[1] + a[3], b[:, 1] + b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    union = a[2] * a[3] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> list[int]:
    """Indices of the boxes (x, y, w, h) kept, most confident first: each box suppresses the less confident ones
    that overlap it by more than ``iou`` (equal scores: the lower index first, as ``argmax`` picks)."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    kept: list[int] = []
    while order.size:
        i = int(order[0])
        kept.append(i)
        rest = order[1:]
        order = rest[_iou(boxes[i], boxes[rest]) <= iou]
    return kept


@dataclass(frozen=True)
class Detection:
    """A face found in a frame, in the frame's pixels."""

    score: float
    box: tuple[float, float, float, float]  # x, y, w, h
    keypoints: np.ndarray  # [6, 2]: right eye, left eye, nose tip, mouth, right ear, left ear


@dataclass(frozen=True)
class Face:
    """A face with its landmarks, in the frame's pixels."""

    detection: Detection
    landmarks: np.ndarray  # [468, 2] x, y
    presence: float  # the mesh's own confidence that a face fills its crop (0-1)

    @property
    def eyes(self) -> tuple[np.ndarray, np.ndarray]:
        """Centres of the eye on the image's left (the subject's right) and on its right."""
        return self.landmarks[list(RIGHT_EYE)].mean(axis=0), self.landmarks[list(LEFT_EYE)].mean(axis=0)

    def box(self) -> tuple[int, int, int, int]:
        """The landmarks' bounding box (x, y, w, h), rounded."""
        lo, hi = self.landmarks.min(axis=0), self.landmarks.max(axis=0)
        return int(round(lo[0])), int(round(lo[1])), int(round(hi[0] - lo[0])), int(round(hi[1] - lo[1]))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80, 80)))


class FaceFrontEnd:
    """Detects faces in RGB frames and measures the 468 landmarks of one of them.

    One instance per thread (:func:`front_end`): the interpreters are built once and reused (the full-range detector
    on first need).
    ``min_score`` is the short-range detector's threshold (the full-range one keeps its graph's, 0.6),
    ``min_presence`` the mesh's.
    """

    def __init__(self, min_score: float = SHORT_RANGE.min_score, min_presence: float = 0.5) -> None:
        import cv2

        self._cv2 = cv2
        self.min_score = min_score
        self.min_presence = min_presence
        self._det: dict[DetectorSpec, Any] = {SHORT_RANGE: _interpreter(model_path(SHORT_RANGE.file))}
        self._mesh = _interpreter(model_path(MESH_FILE))
        self._anchors = {SHORT_RANGE: _anchors(SHORT_RANGE)}

    @staticmethod
    def _run(it: Any, x: np.ndarray) -> list[np.ndarray]:
        it.set_tensor(it.get_input_details()[0]["index"], x[None].astype(np.float32))
        it.invoke()
        return [it.get_tensor(d["index"]) for d in it.get_output_details()]

    def _detector(self, spec: DetectorSpec) -> tuple[Any, np.ndarray]:
        if spec not in self._det:
            self._det[spec] = _interpreter(model_path(spec.file))
            self._anchors[spec] = _anchors(spec)
        return self._det[spec], self._anchors[spec]

    def detect_all(self, rgb: np.ndarray, spec: DetectorSpec = SHORT_RANGE) -> list[Detection]:
        """Every face one detector finds in an RGB frame (uint8 [h, w, 3]) after non-maximum suppression, most
        confident first."""
        it, anchors = self._detector(spec)
        size = spec.size
        h, w = rgb.shape[:2]
        side = max(h, w)  # letterbox to a square, as MediaPipe does, so the face keeps its shape
        cv2 = self._cv2
        nw, nh = max(1, round(w * size / side)), max(1, round(h * size / side))
        small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        top, left = (size - nh) // 2, (size - nw) // 2
        x = cv2.copyMakeBorder(small, top, size - nh - top, left, size - nw - left, cv2.BORDER_CONSTANT,
                               value=(0, 0, 0))
        pad_x, pad_y = left * side / size, top * side / size
        outs = self._run(it, x.astype(np.float32) / 127.5 - 1.0)
        reg, cls = (outs[0], outs[1]) if outs[0].shape[-1] == 16 else (outs[1], outs[0])
        scores = _sigmoid(cls.reshape(-1))
        threshold = self.min_score if spec == SHORT_RANGE else spec.min_score
        cand = np.flatnonzero(scores >= threshold)
        if cand.size == 0:
            return []
        reg = reg.reshape(-1, 16)
        if cand.size > 1:  # boxes in the input square (x, y, w, h) for the suppression
            r = reg[cand, :4] / float(size)
            centre = r[:, :2] + anchors[cand]
            cand = cand[non_max_suppression(np.column_stack([centre - r[:, 2:] / 2, r[:, 2:]]), scores[cand])]

        def back(px: np.ndarray) -> np.ndarray:  # from the 0-1 square back to frame pixels
            return np.asarray(px) * side - np.array([pad_x, pad_y])

        out = []
        for i in cand:
            r = reg[i] / float(size)
            ax, ay = anchors[i]
            cx, cy, bw, bh = r[0] + ax, r[1] + ay, r[2], r[3]
            kp = r[4:16].reshape(6, 2) + np.array([ax, ay])
            c = back(np.array([cx, cy]))
            box = (float(c[0] - bw * side / 2), float(c[1] - bh * side / 2), float(bw * side), float(bh * side))
            out.append(Detection(float(scores[i]), box, back(kp).astype(np.float32)))
        return out

    def landmarks(self, rgb: np.ndarray, det: Detection) -> Face | None:
        """The 468 landmarks of the face ``det`` found in ``rgb``, or None if the mesh sees no face there."""
        x, y, bw, bh = det.box
        (rx, ry), (lx, ly) = det.keypoints[0], det.keypoints[1]
        angle = math.atan2(ly - ry, lx - rx)  # the eye line's tilt; the crop turns it level
        side = max(bw, bh) * 1.5
        cx, cy = x + bw / 2, y + bh / 2
        cos, sin = math.cos(angle), math.sin(angle)
        s = 192 / side
        # crop pixel = s * R(-angle) (frame pixel - centre) + 96
        m = np.array([[s * cos, s * sin, 96 - s * (cos * cx + sin * cy)],
                      [-s * sin, s * cos, 96 - s * (-sin * cx + cos * cy)]], dtype=np.float32)
        crop = self._cv2.warpAffine(rgb, m, (192, 192), flags=self._cv2.INTER_LINEAR, borderMode=self._cv2.BORDER_REPLICATE)
        outs = self._run(self._mesh, crop.astype(np.float32) / 255.0)
        pts, flag = (outs[0], outs[1]) if outs[0].size == N_LANDMARKS * 3 else (outs[1], outs[0])
        presence = float(_sigmoid(flag.reshape(-1))[0])
        if presence < self.min_presence:
            return None
        p = pts.reshape(N_LANDMARKS, 3)[:, :2]
        inv = self._cv2.invertAffineTransform(m)
        frame_pts = p @ inv[:, :2].T + inv[:, 2]
        return Face(det, frame_pts.astype(np.float32), presence)

    def search(self, rgb: np.ndarray, rank: Callable[[list[Detection]], Sequence[Detection]] | None = None,
               follows: Callable[[Detection], bool] | None = None) -> tuple[Face | None, int]:
        """A face of an RGB frame and the number of faces detected in it (the most either detector that ran found).

        Short range first; full range only when short range gives no face (no detection, or none the mesh
        accepts). The detections are tried in the order ``rank`` puts them (default: most confident first), and
        the first the mesh accepts is the face. With ``follows`` (true of a detection of the face followed), a face
        it is false of does not end the search: full range is also tried for a followed face (one that has moved
        back out of short range's reach, say), and the first face the mesh accepted is taken only when neither
        detector gives a followed one.
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise UsageError(f"the face front end takes RGB frames [h, w, 3], got an array of shape {rgb.shape}")
        seen = 0
        others: list[Detection] = []  # detections not of the face followed, in the order they would be tried
        for spec in (SHORT_RANGE, FULL_RANGE):
            found = self.detect_all(rgb, spec)
            seen = max(seen, len(found))
            for det in (rank(found) if rank is not None else found):
                if follows is not None and not follows(det):
                    others.append(det)  # the mesh runs on it only if no followed face is found
                    continue
                face = self.landmarks(rgb, det)
                if face is not None:
                    return face, seen
        for det in others:
            face = self.landmarks(rgb, det)
            if face is not None:
                return face, seen
        return None, seen

    def find(self, rgb: np.ndarray) -> Face | None:
        """The most confident face of an RGB frame with its landmarks; None when there is none."""
        return self.search(rgb)[0]


def largest_first(found: Sequence[Detection]) -> list[Detection]:
    """Detections by box area, the largest first (equal areas: the more confident first)."""
    return sorted(found, key=lambda d: (-d.box[2] * d.box[3], -d.score))


class FaceTrack:
    """The face followed through the kept frames of one clip, in order: one instance per clip.

    In the first frame with a face, the largest face (by detection box) is taken; in each later frame, the face
    whose box overlaps most with the box of the face taken last, or the largest when neither detector finds one
    overlapping it (full range is tried too: the person followed may have stepped back out of short range's reach
    while another stays near). So with two people in view a clip's crops stay on one person, whichever the
    detector is surer of frame by frame. ``counts`` keeps the number of faces detected in each frame.

    ``switches`` keeps, for each frame, whether the track switched person there: whether the face it gives does not
    overlap the face taken last (in the latest earlier frame with a face), which is when neither detector found a
    face that may be the one followed and another was taken. So the clip's first face is no switch, nor is a frame
    without a face, nor the face followed found again where it was after frames without one; a face taken elsewhere
    after such frames is a switch (nothing tells it is the same person), and so is a face taken when the one
    followed is lost while others stay in view. Two people whose boxes overlap are not told apart.
    """

    def __init__(self, front: FaceFrontEnd | None = None) -> None:
        self.front = front if front is not None else front_end()
        self.box: tuple[float, float, float, float] | None = None  # the detection box of the face taken last
        self.counts: list[int] = []
        self.switches: list[bool] = []

    def rank(self, found: Sequence[Detection]) -> list[Detection]:
        """``found`` in the order they are tried: overlap with the followed face, then size."""
        by_size = largest_first(found)
        if self.box is None or not by_size:
            return by_size
        overlap = _iou(np.asarray(self.box, dtype=np.float64), np.array([d.box for d in by_size]))
        order = sorted(range(len(by_size)), key=lambda i: -overlap[i])  # stable: size among equal overlaps
        return [by_size[i] for i in order]

    def follows(self, det: Detection) -> bool:
        """Whether ``det`` may be the face followed: its box overlaps the box taken last (any overlap: a face that
        moves back shrinks inside its former box, an overlap of its area ratio, 1/9 at a third of the size)."""
        return self.box is None or bool(_iou(np.asarray(self.box, dtype=np.float64), np.array([det.box]))[0] > 0)

    def find(self, rgb: np.ndarray) -> Face | None:
        """The followed face in the clip's next kept frame (RGB), or None.

        Both detectors are tried for a face overlapping the one followed before another face is taken (see
        :meth:`FaceFrontEnd.search`); the first frame with a face and frames whose short-range face overlaps the
        followed one cost one detector, as before.
        """
        face, n = self.front.search(rgb, self.rank, self.follows if self.box is not None else None)
        self.counts.append(n)
        self.switches.append(face is not None and not self.follows(face.detection))  # (before the box moves on)
        if face is not None:
            self.box = face.detection.box
        return face

    @property
    def max_faces(self) -> int:
        """The most faces detected in one frame of the clip so far."""
        return max(self.counts, default=0)

    @property
    def switched(self) -> bool:
        """Whether the track has switched person in a frame of the clip so far (see ``switches``)."""
        return any(self.switches)


@per_thread
def front_end() -> FaceFrontEnd:
    """This thread's face front end (built on its first use in the thread).

    LiteRT's interpreters are not thread-safe: worker threads of one process (a Dask worker's threads, the
    in-process cluster of a small run) that shared one failed clips at random ("There is at least 1 reference to
    internal data in the interpreter").
    """
    return FaceFrontEnd()


def alignment(face: Face, size: int, margin: float = 0.0) -> np.ndarray:
    """The 2x3 similarity transform from frame pixels to a ``size`` x ``size`` crop with the eyes level and fixed.

    ``margin`` widens the tight crop by that share of its side on every side (the face shrinks by ``1 + 2 * margin``).
    """
    right, left = face.eyes
    src_mid = (right + left) / 2
    dx, dy = left - right
    dist = math.hypot(dx, dy)
    if dist < 1e-3:
        raise RejectedInput("the face's landmarks put its eyes at one point (the eyes coincide): it cannot be aligned")
    shrink = 1 + 2 * margin
    scale = (EYE_X[1] - EYE_X[0]) * size / dist / shrink
    angle = math.atan2(dy, dx)
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    dst_mid = np.array([0.5 * size + ((EYE_X[0] + EYE_X[1]) / 2 - 0.5) * size / shrink,
                        0.5 * size + (EYE_Y - 0.5) * size / shrink])
    # crop = scale * R(-angle) (p - src_mid) + dst_mid
    return np.array([[cos, sin, dst_mid[0] - (cos * src_mid[0] + sin * src_mid[1])],
                     [-sin, cos, dst_mid[1] - (-sin * src_mid[0] + cos * src_mid[1])]], dtype=np.float32)


def align(image: np.ndarray, face: Face, size: int, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The aligned crop of ``face`` from ``image`` (gray or RGB) and its landmarks in the crop's pixels."""
    import cv2

    m0 = alignment(face, size, margin)
    m = m0
    scale = float(np.hypot(m[0, 0], m[0, 1]))
    src = image
    if scale < 0.7:  # a large shrink: average the pixels first (warpAffine only interpolates)
        f = min(1.0, scale * 1.5)
        shape = (max(1, round(image.shape[1] * f)), max(1, round(image.shape[0] * f)))
        src = cv2.resize(image, shape, interpolation=cv2.INTER_AREA)
        m = m.copy()
        m[:, :2] /= f
    crop = cv2.warpAffine(src, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    pts = face.landmarks @ m0[:, :2].T + m0[:, 2]
    return crop, pts.astype(np.float32)
