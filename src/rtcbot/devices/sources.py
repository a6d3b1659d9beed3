"""Video sources: the common base of rtcbot's cameras, a test pattern and a video file reader.

Every video source is a producer of plain ``numpy`` arrays: BGR, ``uint8``, shape
``(height, width, 3)``, at a set rate, like an OpenCV camera. Its default subscription is a
:class:`~rtcbot.base.subscriptions.MostRecentSubscription` (a slow reader skips frames and never
falls behind).

**Capture time.** Frames stay plain arrays (code written for RTCBot keeps working), and what is
known about each frame travels beside it: :func:`frame_info` returns a :class:`FrameInfo`
(``index``, ``capture_time``, ``monotonic``, ``stream_time``) for any array a source delivered,
for as long as that array is alive::

    @camera.subscribe
    def onFrame(frame):
        info = frame_info(frame)
        print(info.index, time.time() - info.capture_time)

**Each subscriber owns its frame.** One subscriber of a frame receives the array the source
made; every other subscriber receives its own copy, made before any of them sees the frame, so
any of them may keep or modify its frame without disturbing the others (a copy of a 640x480
frame costs about 0.1 ms; see ``bench/sources.py``). One subscriber costs no copy at all.

Sources here need no hardware: :class:`TestPattern` (moving, with a clock, a frame counter and
the frame index coded in the pixels) and :class:`VideoFile` (a file or stream URL decoded with
PyAV). Cameras are in :mod:`rtcbot.devices.camera`.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base.errors import DeviceError
from ..base.subscriptions import MostRecentSubscription
from ..base.thread import ThreadedSubscriptionProducer

__all__ = [
    "DeviceError",
    "FrameInfo",
    "FramePacer",
    "PatternRenderer",
    "TestPattern",
    "VideoFile",
    "VideoSource",
    "frame_info",
]

_log = logging.getLogger("rtcbot.devices")


# --------------------------------------------------------------------------- frame information


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """What a source knows about one frame.

    * ``index`` -- the frame's number from its source, counting from 0 (consecutive: a gap
      means a reader skipped frames).
    * ``capture_time`` -- when the frame was captured or made, in seconds since the epoch
      (``time.time()``; comparable between machines whose clocks are synchronised).
    * ``monotonic`` -- the same moment on ``time.monotonic()`` (for intervals on this machine).
    * ``stream_time`` -- for a file or stream, the frame's time in the media in seconds; else
      None.
    """

    index: int
    capture_time: float
    monotonic: float
    stream_time: float | None = None


# id(array) -> (weak reference to the array, its info). An entry goes when its array is freed.
_infos: dict[int, tuple[weakref.ref[np.ndarray], FrameInfo]] = {}


def _tag(frame: np.ndarray, info: FrameInfo) -> None:
    key = id(frame)

    def forget(ref: weakref.ref[np.ndarray], key: int = key) -> None:
        entry = _infos.get(key)
        if entry is not None and entry[0] is ref:
            _infos.pop(key, None)

    _infos[key] = (weakref.ref(frame, forget), info)


def frame_info(frame: Any) -> FrameInfo | None:
    """The :class:`FrameInfo` of an array delivered by a video source, or None for any other
    object (an array made by the program, a copy or a view of a frame). Thread-safe; costs a
    dictionary lookup."""
    entry = _infos.get(id(frame))
    if entry is not None and entry[0]() is frame:
        return entry[1]
    return None


def _own_copy(frame: np.ndarray) -> np.ndarray:
    copy = frame.copy()
    info = frame_info(frame)
    if info is not None:
        _tag(copy, info)
    return copy


# --------------------------------------------------------------------------- ending at exit

# Devices whose worker thread holds a native resource (a camera, a sound stream). A program
# that closes them and returns at once (as RTCBot's tutorials do: close() in a finally clause
# after the loop) would otherwise end while their threads still release the device, and a
# library killed in the middle of that can abort the process (libpulse does).
_devices: weakref.WeakSet[Any] = weakref.WeakSet()
_AT_EXIT_SECONDS = 2.0


def _finish_at_exit(device: Any) -> None:
    """Let ``device``'s worker thread release its device before the interpreter ends (it is
    asked to stop if still running; waits at most 2 s for all devices together). Call it
    after the device's library is imported: exit handlers run last-registered first, and ours
    must run before the library's own (sounddevice's terminates PortAudio)."""
    _devices.add(device)
    atexit.unregister(_release_devices)
    atexit.register(_release_devices)


def _release_devices() -> None:
    deadline = time.monotonic() + _AT_EXIT_SECONDS
    devices = list(_devices)
    for device in devices:
        device._closing.set()
        wake: Callable[[], None] | None = getattr(device, "_wakeAtExit", None)
        if wake is not None:
            wake()
    for device in devices:
        thread: threading.Thread | None = getattr(device, "_thread", None)
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


# --------------------------------------------------------------------------- pacing


class FramePacer:
    """Decides when frames are due at a rate of ``fps`` frames per second (a plain class: it is
    given ``now`` and keeps no clock of its own).

    For a source that makes frames, :meth:`delay` says how long to wait. For one that captures
    them at its own rate, :meth:`due` says whether a captured frame should be kept: frames
    that come more than 40 % of a period early are skipped, so a 60 fps camera read at
    ``fps=30`` gives every other frame, and a 30 fps camera with some jitter gives them all.
    A source that falls more than one period behind starts again from ``now`` rather than
    bursting to catch up.
    """

    __slots__ = ("_next", "period")

    def __init__(self, fps: float, start: float) -> None:
        if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not fps > 0:
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        self.period = 1.0 / float(fps)
        self._next = float(start)

    @property
    def next(self) -> float:
        """When the next frame is due (same clock as ``now``)."""
        return self._next

    def delay(self, now: float) -> float:
        """Seconds to wait before the next frame is due (0 if it is due)."""
        return max(0.0, self._next - now)

    def due(self, now: float) -> bool:
        """Whether a frame captured at ``now`` should be used."""
        return now >= self._next - 0.4 * self.period

    def advance(self, now: float) -> None:
        """A frame was used at ``now``: schedule the next one."""
        self._next += self.period
        if self._next < now - self.period:
            self._next = now + self.period


# --------------------------------------------------------------------------- base class


def _check_size(name: str, value: Any, minimum: int = 1) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int of at least {minimum}, got {value!r}")
    return int(value)


def _check_fps(value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"fps must be a positive number, got {value!r}")
    return float(value)


class VideoSource(ThreadedSubscriptionProducer):
    """Base of rtcbot's video producers: a worker thread makes or captures frames and hands
    each to :meth:`_publish`.

    Subscribers receive BGR ``uint8`` arrays of shape ``(height, width, 3)``; the default
    subscription keeps only the newest frame. Each subscriber gets its own array (see the
    module docstring) and :func:`frame_info` gives a frame's index and capture time.
    ``frames`` counts the frames published so far.
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        ThreadedSubscriptionProducer.__init__(self, MostRecentSubscription, logger, loop)
        self._index = 0

    # Each subscriber beyond the first gets its own copy of every frame (with its FrameInfo).
    _copyForSubscriber = staticmethod(_own_copy)

    @property
    def frames(self) -> int:
        """Frames published so far (the index of the next frame)."""
        return self._index

    def _publish(
        self,
        frame: np.ndarray,
        capture_time: float | None = None,
        monotonic: float | None = None,
        stream_time: float | None = None,
    ) -> FrameInfo:
        """Worker thread: number ``frame``, record its info and send it to the subscribers."""
        info = FrameInfo(
            self._index,
            time.time() if capture_time is None else capture_time,
            time.monotonic() if monotonic is None else monotonic,
            stream_time,
        )
        self._index += 1
        _tag(frame, info)
        self._put_nowait(frame)
        return info

    def subscribe(self, subscription: Any = None) -> Any:
        """Add a subscriber and return it (works as a decorator). It receives BGR ``uint8``
        arrays ``(height, width, 3)`` that it may keep or modify. ``subscription`` is None (a
        new :class:`MostRecentSubscription`: read it with ``await sub.get()``), an object with
        ``put_nowait`` (a display, a connection's video), an ``async def`` callback or a plain
        callable."""
        return super().subscribe(subscription)

    def close(self) -> None:
        """Stop the source: its thread ends and releases the device, and every reader gets
        :class:`~rtcbot.base.errors.SubscriptionClosed` after the frames it holds. Returns at
        once; ``await source`` waits for the thread."""
        if self._closedFlag:
            return
        super().close()


# --------------------------------------------------------------------------- test pattern

# A 5x7 bitmap font for the pattern's clock and counter: each glyph is 7 rows of 5 bits.
_FONT = {
    "0": ("01110", "10001", "10011", "10101", "11001", "10001", "01110"),
    "1": ("00100", "01100", "00100", "00100", "00100", "00100", "01110"),
    "2": ("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
    "3": ("11111", "00010", "00100", "00010", "00001", "10001", "01110"),
    "4": ("00010", "00110", "01010", "10010", "11111", "00010", "00010"),
    "5": ("11111", "10000", "11110", "00001", "00001", "10001", "01110"),
    "6": ("00110", "01000", "10000", "11110", "10001", "10001", "01110"),
    "7": ("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
    "8": ("01110", "10001", "10001", "01110", "10001", "10001", "01110"),
    "9": ("01110", "10001", "10001", "01111", "00001", "00010", "01100"),
    ":": ("00000", "01100", "01100", "00000", "01100", "01100", "00000"),
    ".": ("00000", "00000", "00000", "00000", "00000", "01100", "01100"),
    "#": ("01010", "01010", "11111", "01010", "11111", "01010", "01010"),
    "-": ("00000", "00000", "00000", "11111", "00000", "00000", "00000"),
    " ": ("00000",) * 7,
}

#: Bits of the frame index coded in the pattern's bottom stripe (the index modulo 2**24).
INDEX_BITS = 24
_CELLS = INDEX_BITS + 2  # a white guard cell, the bits (most significant first), a black one

# 75 % colour bars, BGR: white, yellow, cyan, green, magenta, red, blue.
_BARS = np.array(
    [
        (191, 191, 191),
        (0, 191, 191),
        (191, 191, 0),
        (0, 191, 0),
        (191, 0, 191),
        (0, 0, 191),
        (191, 0, 0),
    ],
    dtype=np.uint8,
)


@dataclass(frozen=True)
class _Layout:
    width: int
    height: int
    scale: int  # font pixel size
    bars_h: int  # colour bars: rows [0, bars_h)
    box: int  # side of the moving square
    box_y: int
    step: int  # pixels the square moves per frame
    text_x: int
    clock_y: int
    counter_y: int
    code_y: int  # index stripe rows [code_y, code_y + code_h)
    code_h: int
    code_x: int
    cell_w: int

    @classmethod
    def of(cls, width: int, height: int) -> _Layout:
        scale = max(1, min(height // 120, width // 80))
        code_h = max(4, height // 40)
        cell_w = width // _CELLS
        line = 8 * scale
        code_y = height - code_h - max(1, scale)
        counter_y = code_y - line - scale
        clock_y = counter_y - line
        bars_h = max(1, min(clock_y - 2 * scale, height * 2 // 3))
        box = max(4, min(bars_h - 2, height // 8))
        return cls(
            width=width,
            height=height,
            scale=scale,
            bars_h=bars_h,
            box=box,
            box_y=max(0, (bars_h - box) // 2),
            step=max(1, round(width / 90)),
            text_x=2 * scale,
            clock_y=clock_y,
            counter_y=counter_y,
            code_y=code_y,
            code_h=code_h,
            code_x=(width - _CELLS * cell_w) // 2,
            cell_w=cell_w,
        )


class PatternRenderer:
    """Draws test-pattern frames: colour bars with a square that moves a few pixels each
    frame, a clock (``HH:MM:SS.mmm``, local time), a frame counter (``#0000123``) and the frame
    index coded as 24 black/white cells in a stripe at the bottom (:meth:`read_index` decodes
    it, also after lossy video coding).

    A plain class: ``render(index, now)`` returns a new BGR ``uint8`` array
    ``(height, width, 3)``. Everything that does not change is drawn once, here; a frame costs
    one copy of the background plus a few small pastes (needs no OpenCV).
    """

    MIN_WIDTH = 64
    MIN_HEIGHT = 48

    def __init__(self, width: int = 640, height: int = 480) -> None:
        width = _check_size("width", width, self.MIN_WIDTH)
        height = _check_size("height", height, self.MIN_HEIGHT)
        self.width = width
        self.height = height
        lay = self._layout = _Layout.of(width, height)
        bg = np.zeros((height, width, 3), np.uint8)
        # Colour bars, then a grey ramp down to the text band.
        bar_of_column = np.minimum(np.arange(width) * len(_BARS) // width, len(_BARS) - 1)
        bg[: lay.bars_h] = _BARS[bar_of_column][None, :, :]
        ramp = (np.arange(width) * 255 // max(1, width - 1)).astype(np.uint8)
        bg[lay.bars_h : lay.clock_y - lay.scale] = ramp[None, :, None]
        # The code stripe's guard cells.
        self._paint_cell(bg, 0, 255)
        self._paint_cell(bg, _CELLS - 1, 0)
        self._background = bg
        # Glyph tiles: white on black, one font pixel of spacing on the right.
        s = lay.scale
        self._glyphs: dict[str, np.ndarray] = {}
        for char, rows in _FONT.items():
            bits = np.array([[c == "1" for c in row] + [False] for row in rows])
            tile = np.kron(bits, np.ones((s, s), bool))
            self._glyphs[char] = np.where(tile[:, :, None], np.uint8(255), np.uint8(0))
        self._box = np.full((lay.box, lay.box, 3), 255, np.uint8)
        inner = max(1, lay.box // 6)
        self._box[inner:-inner, inner:-inner] = (0, 0, 0)
        mid = lay.box // 2
        self._box[mid - inner // 2 : mid + (inner + 1) // 2, :] = (0, 0, 255)

    def _paint_cell(self, frame: np.ndarray, cell: int, value: int) -> None:
        lay = self._layout
        x = lay.code_x + cell * lay.cell_w
        frame[lay.code_y : lay.code_y + lay.code_h, x : x + lay.cell_w] = value

    def _text(self, frame: np.ndarray, x: int, y: int, text: str) -> None:
        glyphs = self._glyphs
        for char in text:
            tile = glyphs[char]
            h, w = tile.shape[:2]
            if x + w > self.width:
                return
            frame[y : y + h, x : x + w] = tile
            x += w

    def box_x(self, index: int) -> int:
        """Left edge of the moving square in frame ``index`` (it bounces between the edges)."""
        lay = self._layout
        travel = max(1, self.width - lay.box)
        pos = (index * lay.step) % (2 * travel)
        return pos if pos <= travel else 2 * travel - pos

    def render(self, index: int, now: float | None = None) -> np.ndarray:
        """Frame number ``index`` showing the wall-clock time ``now`` (seconds since the epoch;
        default: the current time). Returns a new BGR ``uint8`` array (height, width, 3)."""
        if now is None:
            now = time.time()
        lay = self._layout
        frame = self._background.copy()
        x = self.box_x(index)
        frame[lay.box_y : lay.box_y + lay.box, x : x + lay.box] = self._box
        local = time.localtime(now)
        millis = int((now % 1.0) * 1000)
        self._text(
            frame,
            lay.text_x,
            lay.clock_y,
            f"{local.tm_hour:02d}:{local.tm_min:02d}:{local.tm_sec:02d}.{millis:03d}",
        )
        self._text(frame, lay.text_x, lay.counter_y, f"#{index % 10_000_000:07d}")
        code = index % (1 << INDEX_BITS)
        for bit in range(INDEX_BITS):
            if code >> (INDEX_BITS - 1 - bit) & 1:
                self._paint_cell(frame, bit + 1, 255)
        return frame

    @staticmethod
    def read_index(frame: np.ndarray) -> int | None:
        """The frame index coded in a test-pattern frame (modulo 2**24), read from its
        pixels; None if ``frame`` does not carry a readable code. Works on frames that went
        through lossy video coding or a colour conversion, as long as their size is kept."""
        arr = np.asarray(frame)
        if arr.ndim not in (2, 3) or arr.shape[0] < PatternRenderer.MIN_HEIGHT:
            return None
        height, width = arr.shape[:2]
        if width < PatternRenderer.MIN_WIDTH:
            return None
        lay = _Layout.of(width, height)
        gray = arr if arr.ndim == 2 else arr.astype(np.float32).mean(axis=2)
        # The middle half of each cell, both ways.
        y0 = lay.code_y + lay.code_h // 4
        y1 = lay.code_y + max(lay.code_h * 3 // 4, lay.code_h // 4 + 1)
        levels = []
        for cell in range(_CELLS):
            x = lay.code_x + cell * lay.cell_w
            x0 = x + lay.cell_w // 4
            x1 = x + max(lay.cell_w * 3 // 4, lay.cell_w // 4 + 1)
            levels.append(float(np.mean(gray[y0:y1, x0:x1])))
        white, black = levels[0], levels[-1]
        if white - black < 64:
            return None
        threshold = (white + black) / 2
        value = 0
        for level in levels[1:-1]:
            value = value << 1 | (level > threshold)
        return value


class TestPattern(VideoSource):
    """A camera that needs no hardware: a moving test pattern at ``fps`` frames per second.

    Frames are BGR ``uint8`` arrays ``(height, width, 3)`` drawn by :class:`PatternRenderer`:
    colour bars, a moving square, a clock, a frame counter, and the frame index coded in the
    bottom stripe (``TestPattern.read_index(frame)`` reads it back, also after video coding).
    ``frame_info(frame).index`` gives the same index. ``count`` stops the source after that
    many frames (its readers then get the end of stream); default: run until closed.

    The demo's default source when no camera is present. Costs about 0.1 ms of CPU per
    640x480 frame (see ``bench/sources.py``).
    """

    __test__ = False  # not a pytest test class

    read_index = staticmethod(PatternRenderer.read_index)

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 30,
        *,
        count: int | None = None,
        logger: logging.Logger | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.fps = _check_fps(fps)
        if count is not None:
            count = _check_size("count", count, 0)
        self.count = count
        self.renderer = PatternRenderer(width, height)
        self.width = self.renderer.width
        self.height = self.renderer.height
        super().__init__(logger, loop)

    def _producer(self) -> None:
        render = self.renderer.render
        pacer = FramePacer(self.fps, time.monotonic())
        closing = self._closing
        self._setReady(True)
        while self.count is None or self._index < self.count:
            delay = pacer.delay(time.monotonic())
            if (delay > 0 and closing.wait(delay)) or closing.is_set():
                return
            mono = time.monotonic()
            wall = time.time()
            self._publish(render(self._index, wall), wall, mono)
            pacer.advance(mono)


# --------------------------------------------------------------------------- video files


def _is_url(source: str) -> bool:
    return "://" in source and not source.startswith("file://")


class VideoFile(VideoSource):
    """Frames of a video file or stream URL (anything FFmpeg reads: ``.mp4``, ``.webm``,
    ``rtsp://``, ``http://``...), decoded with PyAV in a thread.

    Frames are BGR ``uint8`` arrays ``(height, width, 3)``: the file's own size, or
    ``width`` x ``height`` if given (scaled). ``realtime`` plays frames at their timestamps
    (default for files) rather than as fast as they decode (default for URLs, whose server
    sets the pace); ``fps`` caps the rate by skipping frames. ``repeat`` starts a file again
    at its end; otherwise the source closes at the end (readers get ``SubscriptionClosed``).
    ``options`` are FFmpeg options (e.g. ``{"rtsp_transport": "tcp"}``); ``timeout`` bounds
    opening and each read of a stream, in seconds.

    ``frame_info(frame).stream_time`` is the frame's time in the media. A file that cannot be
    opened or decoded reaches ``onError`` as a :class:`DeviceError` and closes the source.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        realtime: bool | None = None,
        repeat: bool = False,
        options: dict[str, str] | None = None,
        timeout: float = 10.0,
        logger: logging.Logger | None = None,
    ) -> None:
        if not isinstance(source, (str, os.PathLike)):
            raise TypeError(f"source must be a path or a URL string, got {source!r}")
        self.source = os.fspath(source)
        if (width is None) != (height is None):
            raise ValueError(f"give both width and height or neither, got {width!r}x{height!r}")
        self.width = None if width is None else _check_size("width", width, 2)
        self.height = None if height is None else _check_size("height", height, 2)
        self.fps = None if fps is None else _check_fps(fps)
        self.realtime = (not _is_url(self.source)) if realtime is None else bool(realtime)
        self.repeat = bool(repeat)
        self.options = dict(options or {})
        if not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        super().__init__(logger)

    def _producer(self) -> None:
        import av  # core dependency; imported here so that `import rtcbot` stays cheap

        try:
            container = av.open(
                self.source, options=self.options, timeout=(self.timeout, self.timeout)
            )
        except (av.FFmpegError, OSError) as exc:
            raise DeviceError(f"cannot open video {self.source!r}: {exc}") from exc
        try:
            if not container.streams.video:
                raise DeviceError(f"{self.source!r} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            self._setReady(True)
            self._play(av, container, stream)
        finally:
            container.close()

    def _play(self, av: Any, container: Any, stream: Any) -> None:
        closing = self._closing
        cap = None if self.fps is None else FramePacer(self.fps, 0.0)
        start: float | None = None  # monotonic time of stream time 0 (realtime)
        offset = 0.0  # stream time added by repeats
        while True:
            last = 0.0
            try:
                for frame in container.decode(stream):
                    if closing.is_set():
                        return
                    t = frame.time
                    t = last if t is None else float(t)
                    last = t
                    t += offset
                    if cap is not None:
                        if not cap.due(t):
                            continue
                        cap.advance(t)
                    if self.realtime:
                        now = time.monotonic()
                        if start is None or now - (start + t) > 1.0:
                            start = now - t  # first frame, or too late: restart the clock
                        delay = start + t - now
                        if delay > 0 and closing.wait(delay):
                            return
                    if self.width is not None:
                        image = frame.to_ndarray(
                            format="bgr24", width=self.width, height=self.height
                        )
                    else:
                        image = frame.to_ndarray(format="bgr24")
                    self._publish(np.ascontiguousarray(image), stream_time=t)
            except av.FFmpegError as exc:
                raise DeviceError(f"cannot decode video {self.source!r}: {exc}") from exc
            if not self.repeat or closing.is_set():
                return
            period = 1.0 / float(stream.average_rate or 30)
            offset += last + period
            container.seek(0)
