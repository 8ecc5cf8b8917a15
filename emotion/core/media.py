"""Opening media containers (mp4 and whatever else PyAV reads) from memory, for audio and video alike."""

from __future__ import annotations

import io
from typing import Any

from emotion.core.errors import DecodeError


def ffmpeg_reason(exc: BaseException) -> str:
    """What FFmpeg (through PyAV) found, in words: its message without the error number and the C function it came
    from (``[Errno 1094995529] Invalid data found when processing input: 'avcodec_send_packet()'``)."""
    import av

    if isinstance(exc, av.error.InvalidDataError):
        return "invalid data (the file is damaged, cut off or not an MP4)"
    text = getattr(exc, "strerror", None) or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return str(text)


def open_container(data: bytes) -> Any:
    """An mp4 (or any container PyAV reads) opened from memory; :class:`DecodeError` with the reason if it cannot be,
    or if it holds no stream at all (a file cut off inside its header opens as an empty container)."""
    import av

    if not data:
        raise DecodeError("empty file (0 bytes)")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise DecodeError(f"cannot open video: {ffmpeg_reason(exc)}") from None
    if not container.streams:
        container.close()
        raise DecodeError(f"cannot open video: no audio or video stream in its {len(data)} bytes (the file is cut off "
                          "or not an MP4)")
    return container
