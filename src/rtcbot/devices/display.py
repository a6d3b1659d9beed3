"""Showing video: :class:`CVDisplay` (an OpenCV window) and :class:`FrameRecorder` (its stand-in
on machines without a screen).

Both are video consumers: give them BGR (or grayscale) ``uint8`` arrays with ``put_nowait``, or a
source with ``putSubscription``. They keep only the newest frame waiting (a slow screen skips
frames; it never builds a backlog).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
import threading
from collections import deque
from fractions import Fraction
from typing import Any

import numpy as np

from ..base.errors import SubscriptionClosed
from ..base.subscriptions import MostRecentSubscription, describe
from ..base.thread import ThreadedSubscriptionConsumer
from .sources import DeviceError, FrameInfo, frame_info

__all__ = ["CVDisplay", "FrameRecorder", "display_problem"]


def _check_frame(frame: Any) -> None:
    if (
        not isinstance(frame, np.ndarray)
        or frame.ndim not in (2, 3)
        or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4))
        or frame.size == 0
    ):
        raise ValueError(
            f"expected an image: a numpy array (height, width) or (height, width, 3), got "
            f"{describe(frame)}"
        )


def display_problem() -> str | None:
    """Why OpenCV windows cannot be shown here, or None if they can (as far as can be told
    without opening one): OpenCV missing, an OpenCV build without GUI support (such as
    ``opencv-python-headless``), no ``$DISPLAY`` on Linux, or macOS."""
    try:
        import cv2
    except ImportError:
        return (
            'OpenCV is not installed: pip install opencv-python (the "camera" extra '
            "installs the headless build, which has no windows)"
        )
    gui = [
        line.split(":", 1)[1].strip()
        for line in cv2.getBuildInformation().splitlines()
        if line.strip().startswith("GUI:")
    ]
    if gui and gui[0].upper() == "NONE":
        return (
            "this OpenCV build has no GUI support (opencv-python-headless?): "
            "pip install opencv-python to show windows"
        )
    if sys.platform == "darwin":
        return "CVDisplay does not work on macOS: OpenCV windows must run on the main thread"
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display: $DISPLAY is not set (no screen, or an ssh session without -X)"
    return None


class _Gui:
    """The one thread that owns every OpenCV window (GUI toolkits want a single thread).

    Displays hand it their newest frame; it shows them and keeps calling ``cv2.waitKey`` (about
    every 20 ms) while any window is open, so windows stay responsive with no frames coming. It
    ends when the last display closes and is started again by the next one.
    """

    _lock = threading.Lock()
    _instance: _Gui | None = None

    def __init__(self) -> None:
        self._frames: dict[CVDisplay, Any] = {}  # display -> newest frame (or _CLOSE)
        self._displays: list[CVDisplay] = []
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtcbot-CVDisplay-gui", daemon=True)

    _CLOSE = object()

    @classmethod
    def attach(cls, display: CVDisplay) -> _Gui:
        with cls._lock:
            gui = cls._instance
            if gui is None:
                gui = cls._instance = _Gui()
                gui._displays.append(display)
                gui._thread.start()
            else:
                gui._displays.append(display)
            gui._wake.set()
            return gui

    def show(self, display: CVDisplay, frame: Any) -> None:
        with self._lock:
            self._frames[display] = frame
        self._wake.set()

    def detach(self, display: CVDisplay) -> None:
        self.show(display, self._CLOSE)

    def _run(self) -> None:
        cv2 = None
        windows: dict[CVDisplay, str] = {}
        try:
            problem = display_problem()
            if problem is not None:
                raise DeviceError(problem)
            import cv2
            while True:
                with self._lock:
                    pending = list(self._displays)
                    frames, self._frames = self._frames, {}
                    self._wake.clear()
                for display in pending:
                    if display not in windows and frames.get(display) is not self._CLOSE:
                        try:
                            cv2.namedWindow(display.name, cv2.WINDOW_AUTOSIZE)
                        except cv2.error as exc:
                            raise DeviceError(f"cannot open an OpenCV window: {exc}") from exc
                        windows[display] = display.name
                        display._setReady(True)
                for display, frame in frames.items():
                    if frame is self._CLOSE:
                        self._forget(display, windows, cv2)
                    elif display in windows:
                        cv2.imshow(display.name, frame)
                        display._shown()
                with self._lock:
                    if not self._displays:
                        _Gui._instance = None
                        return
                cv2.waitKey(1)
                self._wake.wait(0.02)
        except Exception as exc:
            with self._lock:
                if _Gui._instance is self:
                    _Gui._instance = None
                displays = list(self._displays)
                self._displays.clear()
            error = exc if isinstance(exc, DeviceError) else DeviceError(f"CVDisplay: {exc!r}")
            if error is not exc:
                error.__cause__ = exc
            for display in displays:
                display._setError(error)
        finally:
            if cv2 is not None and windows:
                try:
                    cv2.destroyAllWindows()
                    cv2.waitKey(1)
                except Exception:  # pragma: no cover - the GUI is gone already
                    pass

    def _forget(self, display: CVDisplay, windows: dict[CVDisplay, str], cv2: Any) -> None:
        name = windows.pop(display, None)
        with self._lock:
            if display in self._displays:
                self._displays.remove(display)
        if name is not None:
            cv2.destroyWindow(name)
            cv2.waitKey(1)


class CVDisplay(ThreadedSubscriptionConsumer):
    """Shows the frames it is given in an OpenCV window (as in RTCBot 0.2.5).

    Input: BGR or grayscale ``uint8`` arrays ``(height, width[, 3])``, through ``put_nowait``
    (a bad value raises ``ValueError`` there) or a source given to ``putSubscription``. Only the
    newest frame waits: a slow window skips frames. ``name`` is the window title (default
    ``"1"``, ``"2"``...). All displays share one GUI thread, which ends when the last display
    closes; ``close()`` removes the window. ``frames`` counts the frames shown.

    Needs OpenCV *with* GUI support (``pip install opencv-python``: the headless build in the
    ``camera`` extra has no windows) and a screen. Without one, a :class:`DeviceError` saying
    why reaches ``onError`` and the display closes (no hang). Does not work on macOS.
    ``CVDisplay.available()`` tells whether windows can be shown.
    """

    _names = itertools.count(1)

    def __init__(
        self,
        name: str | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        logger: logging.Logger | None = None,
    ) -> None:
        try:
            import cv2  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "CVDisplay needs OpenCV with GUI support: pip install opencv-python"
            ) from exc
        self.name = str(next(self._names)) if name is None else str(name)
        self._count = 0
        super().__init__(MostRecentSubscription, logger, loop)

    @staticmethod
    def available() -> bool:
        """True if OpenCV windows can probably be shown here (see :func:`display_problem`)."""
        return display_problem() is None

    @property
    def frames(self) -> int:
        """Frames shown so far."""
        return self._count

    def _shown(self) -> None:
        self._count += 1

    def put_nowait(self, frame: np.ndarray) -> None:
        """Show ``frame`` (replacing a frame not shown yet). Raises ``ValueError`` naming the
        value if it is not an image, :class:`SubscriptionClosed` after close."""
        _check_frame(frame)
        super().put_nowait(frame)

    def _consumer(self) -> None:
        gui = _Gui.attach(self)
        try:
            while True:
                try:
                    frame = self._get()
                except SubscriptionClosed:
                    if self._shouldClose:
                        return
                    continue  # the putSubscription source ended: keep showing put_nowait data
                try:
                    _check_frame(frame)
                except ValueError as exc:
                    self._log.error("%s: not shown: %s", self.name, exc)
                    continue
                gui.show(self, frame)
        finally:
            gui.detach(self)


class FrameRecorder(ThreadedSubscriptionConsumer):
    """A display for machines without a screen: records what it is given instead of showing it.

    Takes the same input as :class:`CVDisplay` (images, newest kept). Keeps ``frames`` (how
    many), ``last_frame``, ``shape`` of the last one, and ``infos``: the
    :class:`~rtcbot.devices.sources.FrameInfo` of the last ``keep`` frames that came from an
    rtcbot video source (their ``index`` shows skipped frames, their ``capture_time`` the
    latency). With ``path``, frames are also written to a video file with PyAV (the format from
    the extension: ``.mp4``, ``.mkv``, ``.webm``...; size from the first frame; ``fps`` sets the
    file's frame rate). ``ready`` once the first frame arrived.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        fps: float = 30,
        keep: int = 1000,
        logger: logging.Logger | None = None,
    ) -> None:
        self.path = None if path is None else os.fspath(path)
        self.fps = fps
        self.frames = 0
        self.last_frame: np.ndarray | None = None
        self.infos: deque[FrameInfo] = deque(maxlen=keep)
        self._writer: Any = None
        super().__init__(MostRecentSubscription, logger)

    @property
    def shape(self) -> tuple[int, ...] | None:
        """Shape of the last frame, or None."""
        return None if self.last_frame is None else self.last_frame.shape

    def put_nowait(self, frame: np.ndarray) -> None:
        """Record ``frame``. Raises ``ValueError`` naming the value if it is not an image."""
        _check_frame(frame)
        super().put_nowait(frame)

    def _consumer(self) -> None:
        try:
            while True:
                try:
                    frame = self._get()
                except SubscriptionClosed:
                    if self._shouldClose:
                        return
                    continue
                try:
                    _check_frame(frame)
                except ValueError as exc:
                    self._log.error("not recorded: %s", exc)
                    continue
                info = frame_info(frame)
                if info is not None:
                    self.infos.append(info)
                self.last_frame = frame
                self.frames += 1
                if self.path is not None:
                    self._write(frame)
                if self.frames == 1:
                    self._setReady(True)
        finally:
            if self._writer is not None:
                self._writer.close()

    def _write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            self._writer = _VideoWriter(self.path, frame, self.fps)
        self._writer.write(frame)


class _VideoWriter:
    """Encodes BGR frames into a file with PyAV (H.264 or VP8/VP9, as the container allows)."""

    def __init__(self, path: str, first: np.ndarray, fps: float) -> None:
        import av

        self._av = av
        self._container = av.open(path, "w")
        codec = "libvpx" if path.endswith(".webm") else "libx264"
        height, width = first.shape[:2]
        self._stream = self._container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        self._stream.width = width - width % 2
        self._stream.height = height - height % 2
        self._stream.pix_fmt = "yuv420p"
        self._size = (self._stream.height, self._stream.width)

    def write(self, frame: np.ndarray) -> None:
        if frame.ndim == 2 or frame.shape[2] == 1:
            frame = np.repeat(frame.reshape(frame.shape[0], frame.shape[1], 1), 3, axis=2)
        elif frame.shape[2] == 4:
            frame = frame[:, :, :3]
        h, w = self._size
        vf = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")
        if frame.shape[:2] != (h, w):  # the size changed mid-stream: scale to the file's
            vf = vf.reformat(width=w, height=h)
        for packet in self._stream.encode(vf):
            self._container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
