"""Opening media containers (mp4 and whatever else PyAV reads) from memory, for audio and video alike."""

from __future__ import annotations

import io
from typing import Any

from emotion.core.errors import DecodeError


def open_container(data: bytes) -> Any:
    """An mp4 (or any container PyAV reads) opened from memory; :class:`DecodeError` with the reason if it cannot be."""
    import av

    if not data:
        raise DecodeError("empty file (0 bytes)")
    try:
        return av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise DecodeError(f"cannot open video: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
