"""Video frames: checking what users send, converting what the network delivers, and pacing.

Everything here is plain (no event loop, no aiortc): numpy arrays and PyAV frames in, numpy
arrays, PyAV frames and decisions out.

* :func:`check_bgr_frame` -- the one rule for outgoing frames: a numpy ``uint8`` array of shape
  ``(height, width, 3)`` in BGR order (OpenCV's layout), or a PyAV ``VideoFrame``.
* :func:`to_video_frame` / :func:`to_bgr_array` -- conversions in both directions; received
  frames are always C-contiguous (RTCBot 0.2.5 delivered reversed-stride views).
* :class:`TimestampedFrame` / :func:`timestamped` -- a frame that carries its capture time, so a
  camera can say when the picture was taken and the stream's timestamps follow the camera, not
  the moment the frame happened to be sent.
* :class:`FramePacer` -- limits a stream to a frame rate, skipping or delaying frames.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "FramePacer",
    "PacerDecision",
    "TimestampedFrame",
    "capture_time",
    "check_bgr_frame",
    "timestamped",
    "to_bgr_array",
    "to_video_frame",
]


class TimestampedFrame(np.ndarray):
    """A BGR frame (a numpy array) that remembers when it was captured.

    ``timestamp`` is in seconds on the :func:`time.monotonic` clock. Only differences between the
    frames of one stream matter: they become the stream's RTP timestamps. Create one with
    :func:`timestamped`.
    """

    timestamp: float | None

    def __array_finalize__(self, obj: Any) -> None:
        self.timestamp = getattr(obj, "timestamp", None)


def timestamped(frame: np.ndarray, timestamp: float | None = None) -> TimestampedFrame:
    """Return ``frame`` (no copy) as a :class:`TimestampedFrame` captured at ``timestamp``
    (seconds, :func:`time.monotonic` clock; default: now)."""
    view = np.asarray(frame).view(TimestampedFrame)
    view.timestamp = time.monotonic() if timestamp is None else float(timestamp)
    return view


def capture_time(frame: Any) -> float | None:
    """The capture time (seconds, monotonic clock) a frame carries, or None.

    A :class:`TimestampedFrame` carries ``timestamp``; a PyAV ``VideoFrame`` with ``pts`` and
    ``time_base`` set carries ``frame.time`` (its own clock: consistent within one stream).
    """
    value = getattr(frame, "timestamp", None)
    if value is not None:
        return float(value)
    av_time = getattr(frame, "time", None)
    if av_time is not None and getattr(frame, "pts", None) is not None:
        return float(av_time)
    return None


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"numpy array shape={value.shape} dtype={value.dtype}"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}"


def check_bgr_frame(frame: Any) -> None:
    """Raise if ``frame`` cannot be sent as video; return None if it can.

    Accepted: a numpy ``uint8`` array of shape ``(height, width, 3)`` (BGR, any strides, at least
    2x2 pixels), or a PyAV ``av.VideoFrame``. ``TypeError`` names a value of the wrong type or
    dtype, ``ValueError`` one of the wrong shape.
    """
    if isinstance(frame, np.ndarray):
        if frame.dtype != np.uint8:
            raise TypeError(
                f"video frames must be uint8 BGR arrays of shape (height, width, 3), got "
                f"{_describe(frame)}"
            )
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 2 or frame.shape[1] < 2:
            raise ValueError(
                f"video frames must have shape (height, width, 3) (BGR), got {_describe(frame)}"
            )
        return
    import av

    if isinstance(frame, av.VideoFrame):
        return
    raise TypeError(
        f"video frames must be numpy uint8 arrays of shape (height, width, 3) or av.VideoFrame, "
        f"got {_describe(frame)}"
    )


def to_video_frame(frame: Any, pix_fmt: str = "yuv420p") -> Any:
    """Convert a checked frame (see :func:`check_bgr_frame`) to a PyAV ``VideoFrame`` in
    ``pix_fmt`` (what encoders take). Odd sizes are rounded down to even ones (4:2:0 chroma).
    Releases the GIL while converting: run it in a worker thread."""
    import av

    if isinstance(frame, np.ndarray):
        height, width = frame.shape[0] & ~1, frame.shape[1] & ~1
        if (height, width) != frame.shape[:2]:
            frame = frame[:height, :width]
        if not frame.flags.c_contiguous:
            frame = np.ascontiguousarray(frame)
        video = av.VideoFrame.from_ndarray(np.asarray(frame), format="bgr24")
    else:
        video = frame
        if video.width % 2 or video.height % 2:
            return video.reformat(width=video.width & ~1, height=video.height & ~1, format=pix_fmt)
    if video.format.name != pix_fmt:
        video = video.reformat(format=pix_fmt)
    return video


def to_bgr_array(frame: Any) -> np.ndarray:
    """A decoded PyAV ``VideoFrame`` as a new C-contiguous numpy ``uint8`` array of shape
    ``(height, width, 3)`` in BGR order."""
    array = frame.to_ndarray(format="bgr24")
    if not array.flags.c_contiguous:  # pragma: no cover - PyAV returns packed arrays
        array = np.ascontiguousarray(array)
    return array


@dataclass(frozen=True)
class PacerDecision:
    """What :meth:`FramePacer.decide` says about one frame.

    * ``send`` -- False: skip this frame (only when skipping is allowed).
    * ``wait`` -- seconds to wait before sending it (only when skipping is not allowed).
    * ``time`` -- the frame's media time in seconds from the first frame (becomes its RTP
      timestamp).
    """

    send: bool
    wait: float
    time: float


class FramePacer:
    """Frame-rate limit and timestamps of one outgoing video stream (plain: give it ``now``).

    ``fps`` is the most frames per second to send (None: no limit). With ``can_skip`` (the
    default, for live video), a frame that comes too soon after the previous one is skipped, so
    the stream never lags its source; a half-interval tolerance absorbs capture jitter, and the
    average rate never exceeds ``fps``. Without ``can_skip`` no frame is skipped: one that comes
    too soon waits for its slot (``wait``).

    Media time follows the frame's capture time when it has one (see :func:`capture_time`), else
    the time it is offered (``now``); it is strictly increasing. Without ``can_skip`` and with an
    ``fps``, frames are a fixed-rate sequence (frame ``k`` at ``k / fps``), as from a file; if the
    source falls more than ``resync_after`` seconds behind that schedule, the schedule restarts
    from the present (counted in ``resyncs``) instead of sending a burst.
    """

    def __init__(
        self, fps: float | None = None, can_skip: bool = True, resync_after: float = 1.0
    ) -> None:
        if fps is not None and (not isinstance(fps, (int, float)) or not fps > 0):
            raise ValueError(f"fps must be a positive number or None, got {fps!r}")
        if fps is not None and math.isinf(fps):
            fps = None
        self.fps = fps
        self.can_skip = bool(can_skip)
        self.resync_after = resync_after
        self._interval = 1.0 / fps if fps else 0.0
        self._origin: float | None = None  # capture/offer time of the first frame
        self._due: float | None = None  # earliest time of the next frame (can_skip)
        self._last_time = -1.0
        self._count = 0  # frames sent in fixed-rate mode since the last resync
        self._fixed_origin: float | None = None  # wall time of frame 0 in fixed-rate mode
        self._fixed_base = 0.0  # media time of frame 0 in fixed-rate mode
        self.sent = 0
        self.skipped = 0
        self.resyncs = 0

    def decide(self, now: float, captured: float | None = None) -> PacerDecision:
        """Decide about a frame offered at ``now`` (seconds, monotonic) and captured at
        ``captured`` (same clock, or None)."""
        stamp = now if captured is None else captured
        if self._origin is None:
            self._origin = stamp
        if not self.can_skip and self._interval:
            return self._fixed_rate(now)
        if self._interval:
            due = self._due
            if due is not None and stamp < due - self._interval / 2:
                self.skipped += 1
                return PacerDecision(False, 0.0, self._last_time)
            if due is None or stamp >= due:
                self._due = stamp + self._interval
            else:
                self._due = due + self._interval
        media = max(stamp - self._origin, self._last_time + 1e-6 if self.sent else 0.0)
        self._last_time = media
        self.sent += 1
        return PacerDecision(True, 0.0, media)

    def _fixed_rate(self, now: float) -> PacerDecision:
        if self._fixed_origin is None:
            self._fixed_origin = now
        slot = self._fixed_origin + self._count * self._interval
        if now - slot > self.resync_after:
            # The source fell behind: restart the schedule here (the stream's media time keeps
            # increasing from where it was), rather than rushing out a burst of late frames.
            self.resyncs += 1
            self._fixed_base = self._last_time + self._interval if self.sent else 0.0
            self._fixed_origin = now
            self._count = 0
            slot = now
        media = self._fixed_base + self._count * self._interval
        self._count += 1
        self._last_time = media
        self.sent += 1
        return PacerDecision(True, max(0.0, slot - now), media)
