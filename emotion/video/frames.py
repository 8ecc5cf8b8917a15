"""Video clips into sampled frames: decode, keep every Nth, gray, resize, optional face crop.

Decoding uses PyAV (FFmpeg inside the wheel; H.264 in mp4 as RAVDESS ships
it). Every frame must be decoded, but only the kept ones are converted to
gray and resized: the colour conversion of the others is skipped.

With ``face_crop``, the face front end (:mod:`emotion.video.face`, ``detector="mesh"``,
the default) finds the face and its 468 landmarks, and the kept image is the
face aligned (eyes level, at a fixed distance and height) and cropped tight,
as FER2013's faces were; each frame keeps its landmarks in the crop's
coordinates, the number of faces detected in it (one face is followed
through a clip, so a clip with several people in view is told by this count)
and whether the clip's track switched person in it (the face followed was
lost and another taken: the crops from there on may show someone else).
``detector="haar"`` is the first release's front end, kept so that its stores
and models still load: OpenCV's Haar cascade finds the
largest face and the crop is a square around it with a margin. A frame
without a face keeps the whole frame and says so (``face_found`` is false):
face models skip such frames, and the frames without a face are counted per clip.

Every kept frame is first turned upright (:func:`upright`): a phone stores the
pixels as its sensor reads them and the turn that shows them in the mp4's
display matrix, which decoding alone does not apply.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from emotion.core.errors import DecodeError, NoVideoError, RejectedInput, UsageError
from emotion.core.media import ffmpeg_reason, open_container
from emotion.core.names import FRAME_EVERY, FRAME_SIZE
from emotion.core.params import stable_hash
from emotion.core.threads import per_thread

MAX_FRAMES = 30 * 60 * 10  # 10 minutes at 30 fps: longer clips are refused
MAX_PIXELS = 4096 * 2160  # 4K
DETECTORS = ("mesh", "haar")
KINDS = ("full", "haar", "mesh")  # whole frames, and the face crops of each front end
# what each revision of the frame code changed: 2, every kind (frames turned upright by the clip's display matrix;
# phone videos stored turned were kept turned before) and the mesh crops (the full-range detector when short range
# finds no face, one face followed through each clip, the largest first); 3, the mesh crops only (a clip's track
# tries full range for the face it follows before it takes another). A set's revision is the last that changed its
# kind, so a revision that changes one kind does not rename (and re-extract) the sets of the others.
REVISION_CHANGES: dict[int, frozenset[str]] = {1: frozenset(KINDS), 2: frozenset(KINDS), 3: frozenset({"mesh"})}
LATEST_REVISION = max(REVISION_CHANGES)


def set_revision(kind: str, revision: int) -> int:
    """The revision of a frame set of ``kind`` made by the code of ``revision``: the last up to it that changed
    ``kind`` (revisions this code does not know, of a newer release's records, count as changing every kind)."""
    return max(r for r in range(1, revision + 1) if kind in REVISION_CHANGES.get(r, KINDS))


@dataclass(frozen=True, eq=False)
class FrameParams:
    """Everything that changes the stored frames; its hash names the frame set."""

    every: int = FRAME_EVERY
    size: int = FRAME_SIZE
    face_crop: bool = False
    margin: float = 0.0  # widening of the crop on every side, as a share of the tight face (haar: of its box)
    detect_width: int = 320  # haar only: frames are downscaled to this width for face detection
    # the frame code's revision (REVISION_CHANGES); a set records the last that changed its kind (stored_revision): 3
    # for mesh face crops, 2 for whole frames and Haar crops (the landmark set's key follows the mesh crops' revision:
    # LandmarkParams.frame_revision)
    revision: int = LATEST_REVISION
    detector: str = "mesh"  # the face front end: "mesh" (emotion.video.face) or "haar" (the first release's)

    def __post_init__(self) -> None:
        if self.every < 1 or self.size < 8 or not 0 <= self.margin <= 2 or self.detect_width < 64:
            raise UsageError("frame parameters out of range (every >= 1, size >= 8, 0 <= margin <= 2)")
        if self.detector not in DETECTORS:
            raise UsageError(f"unknown face detector {self.detector!r}; choose from {', '.join(DETECTORS)}")
        if self.revision < 1:
            raise UsageError(f"frame revision {self.revision} out of range (>= 1)")

    def __eq__(self, other: object) -> bool:
        """Parameters are equal when they name the same set (the same record: a whole-frame set of code revision 3
        is the one of revision 2)."""
        return isinstance(other, FrameParams) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def stored_revision(self) -> int:
        """The revision of the set these parameters name: the last revision up to :attr:`revision` that changed
        its kind (:func:`set_revision`)."""
        return set_revision(self.kind, self.revision)

    @property
    def kind(self) -> str:
        """"full" (whole frames) or the face front end of the crops ("mesh", "haar")."""
        return self.detector if self.face_crop else "full"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["revision"] = self.stored_revision
        if self.detector == "haar":  # the first release's records: same dict, same hash, same store key
            del d["detector"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrameParams:
        """The parameters recorded as ``d``; records without a ``detector`` are the first release's (Haar)."""
        d = dict(d)
        d.setdefault("detector", "haar")
        return cls(**d)

    @property
    def landmarks(self) -> bool:
        """Whether the frames carry face landmarks (face crops of the mesh front end)."""
        return self.face_crop and self.detector == "mesh"

    def hash(self) -> str:
        return stable_hash(self.to_dict())

    @property
    def key(self) -> str:
        return f"{'face' if self.face_crop else 'full'}{self.size}-every{self.every}-{self.hash()}"


@dataclass(frozen=True)
class Frame:
    index: int  # frame number in the clip, from 0
    time: float  # seconds from the start
    image: np.ndarray  # uint8 [size, size]
    face_found: bool | None  # None when no detection was asked for
    face_box: tuple[int, int, int, int] | None  # x, y, w, h in the source frame (turned upright)
    landmarks: np.ndarray | None = None  # [468, 2] in the crop, as shares of its side (mesh front end)
    faces: int | None = None  # faces detected in the frame (mesh front end; None: not counted)
    # whether the clip's face track switched person in this frame (FaceTrack.switches; mesh front end; None: not
    # recorded). A frame without a face is no switch
    track_switched: bool | None = None


@per_thread
def face_detector() -> Any:
    """This thread's OpenCV face detector (--face-detector haar): a CascadeClassifier is not safe to share between
    threads, so each has its own."""
    import cv2

    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
    det = cv2.CascadeClassifier(path)
    if det.empty():
        raise RuntimeError(f"OpenCV's face model is missing at {path}; reinstall opencv-python-headless<5")
    return det


def detect_face(gray: np.ndarray, detect_width: int) -> tuple[int, int, int, int] | None:
    """The largest frontal face in a gray frame as (x, y, w, h), or None."""
    import cv2

    h, w = gray.shape
    scale = min(1.0, detect_width / w)
    small = gray
    if scale < 1:
        small = cv2.resize(gray, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    faces = face_detector().detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    if len(faces) == 0:
        return None
    x, y, fw, fh = max(faces, key=lambda f: int(f[2]) * int(f[3]))
    return int(x / scale), int(y / scale), int(fw / scale), int(fh / scale)


def square_crop_box(box: tuple[int, int, int, int], margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """A square (x0, y0, x1, y1) around ``box`` grown by ``margin`` per side, kept inside the frame."""
    x, y, w, h = box
    side = int(round(max(w, h) * (1 + 2 * margin)))
    side = min(side, width, height)
    cx, cy = x + w / 2, y + h / 2
    x0 = int(round(min(max(cx - side / 2, 0), width - side)))
    y0 = int(round(min(max(cy - side / 2, 0), height - side)))
    return x0, y0, x0 + side, y0 + side


def upright(frame: Any, format: str) -> np.ndarray:
    """A decoded PyAV video frame as an array of ``format`` (``"gray"``, ``"rgb24"``), turned as it is shown.

    The turn is the display matrix's (``frame.rotation``: degrees counter-clockwise), rounded to a quarter turn; a
    mirroring in the matrix is not applied. OpenCV turns a 720p RGB frame in 0.2 ms (``numpy.rot90`` and a copy: 5).
    """
    import cv2

    image = frame.to_ndarray(format=format)
    quarters = round(frame.rotation / 90) % 4
    if not quarters:
        return image
    return cv2.rotate(image, (cv2.ROTATE_90_COUNTERCLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_CLOCKWISE)[quarters - 1])


def _prepare_mesh(rgb: np.ndarray, params: FrameParams, track: Any) -> Frame:
    """The aligned crop of the face ``track`` (a clip's :class:`~emotion.video.face.FaceTrack`) follows in an RGB frame
    and its landmarks; the whole frame (``face_found`` false) without a face. Either way with the number of faces
    detected in the frame and whether the track switched person in it."""
    import cv2

    from emotion.video.face import align

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    face = track.find(rgb)
    faces, switched = int(track.counts[-1]), bool(track.switches[-1])
    if face is None:
        return Frame(0, 0.0, cv2.resize(gray, (params.size, params.size), interpolation=cv2.INTER_AREA), False, None,
                     faces=faces, track_switched=switched)
    crop, pts = align(gray, face, params.size, margin=params.margin)
    return Frame(0, 0.0, crop, True, face.box(), (pts / params.size).astype(np.float32), faces, switched)


def _face_track() -> Any:
    from emotion.video.face import FaceTrack

    return FaceTrack()


def _prepare(gray: np.ndarray, params: FrameParams) -> tuple[np.ndarray, bool | None, tuple[int, int, int, int] | None]:
    import cv2

    found: bool | None = None
    box = None
    if params.face_crop:
        box = detect_face(gray, params.detect_width)
        found = box is not None
        if box is not None:
            x0, y0, x1, y1 = square_crop_box(box, params.margin, gray.shape[1], gray.shape[0])
            gray = gray[y0:y1, x0:x1]
    out = cv2.resize(gray, (params.size, params.size), interpolation=cv2.INTER_AREA)
    return out, found, box


def sample_frames(data: bytes, params: FrameParams) -> Iterator[Frame]:
    """Decode ``data`` (an mp4) and yield every ``params.every``-th frame, prepared.

    Raises :class:`DecodeError` for bytes that are not a video, a container
    without a video stream, or a stream cut off before its first kept frame.
    """
    import av

    container = open_container(data)
    with container:
        if not container.streams.video:
            raise NoVideoError("no video stream in the file")
        stream = container.streams.video[0]
        stream.thread_type = "NONE"  # one core per worker: threads would only contend
        if stream.codec_context.width * stream.codec_context.height > MAX_PIXELS:
            raise RejectedInput(f"video is {stream.codec_context.width}x{stream.codec_context.height}, over the 4K limit")
        tb = float(stream.time_base) if stream.time_base else 0.0
        fps = float(stream.average_rate) if stream.average_rate else 30.0
        n = kept = 0
        track = _face_track() if params.landmarks else None  # one face followed through the clip's kept frames
        try:
            for frame in container.decode(stream):
                if n % params.every == 0:
                    t = round(float(frame.pts) * tb if frame.pts is not None and tb else n / fps, 4)
                    if params.landmarks:  # only kept frames are converted
                        yield replace(_prepare_mesh(upright(frame, "rgb24"), params, track), index=n, time=t)
                    else:
                        image, found, box = _prepare(upright(frame, "gray"), params)
                        yield Frame(n, t, image, found, box)
                    kept += 1
                n += 1
                if n > MAX_FRAMES:
                    raise RejectedInput(f"video has more than {MAX_FRAMES} frames (over 10 minutes)")
        except av.FFmpegError as exc:
            if kept == 0:
                raise DecodeError(f"video stream is corrupt: {ffmpeg_reason(exc)}") from None
        declared = int(stream.frames or 0)
        if n == 0:
            raise DecodeError(f"video is cut off: none of its {declared} frames decode" if declared
                              else "video stream has no decodable frames")
        if declared and n < declared - max(2, declared // 50):  # complete files decode all but at most a frame
            raise DecodeError(f"video is cut off: {n} of its {declared} frames decode")


def encode_png(image: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return bytes(buf)


def decode_png(data: bytes) -> np.ndarray:
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError("not a PNG image")
    return np.asarray(image, dtype=np.uint8)
