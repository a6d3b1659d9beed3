"""Cameras: OpenCV (:class:`CVCamera`) and the Raspberry Pi camera stacks (:class:`PiCamera2`,
and :class:`PiCamera` for the legacy one).

Each is a video producer (see :mod:`rtcbot.devices.sources`): BGR ``uint8`` arrays of shape
``(height, width, 3)`` at ``fps`` frames per second, newest-frame subscriptions, one array per
subscriber, capture times through :func:`~rtcbot.devices.sources.frame_info`. Capture runs in a
thread. The camera library is imported when a camera is created; if it is missing, the
constructor raises ``ImportError`` saying what to install. A camera that cannot be opened, or
that stops giving frames, reaches ``onError`` as a :class:`~rtcbot.devices.sources.DeviceError`
and closes (after a few retries with a growing pause: never a busy loop).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .sources import (
    DeviceError,
    FramePacer,
    VideoSource,
    _check_fps,
    _check_size,
    _finish_at_exit,
)

__all__ = ["CVCamera", "PiCamera", "PiCamera2"]


def _import_cv2(what: str) -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise ImportError(
            f'{what} needs OpenCV: pip install "rtcbot[camera]" (opencv-python-headless)'
        ) from exc
    return cv2


def _identity(frame: np.ndarray) -> np.ndarray:
    return frame


class _Camera(VideoSource):
    """What all cameras share: size, rate, ``preprocessframe``, and reading with back-off."""

    #: Consecutive failed reads before the camera is declared broken; the pauses between them
    #: grow from 10 ms to 0.5 s (about 2.5 s in all).
    max_read_failures = 10

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        preprocessframe: Callable[[np.ndarray], np.ndarray],
        logger: logging.Logger | None,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.width = _check_size("width", width, 2)
        self.height = _check_size("height", height, 2)
        self.fps = _check_fps(fps)
        if not callable(preprocessframe):
            raise TypeError(f"preprocessframe must be callable, got {preprocessframe!r}")
        self._preprocess = preprocessframe
        super().__init__(logger, loop)
        _finish_at_exit(self)

    def _fit(self, frame: np.ndarray) -> np.ndarray:
        """Make a captured image a BGR uint8 array of the requested size."""
        if frame.ndim == 2:
            frame = np.repeat(frame[:, :, None], 3, axis=2)
        elif frame.shape[2] == 4:
            frame = frame[:, :, :3]
        if frame.shape[:2] != (self.height, self.width):
            frame = self._resize(frame)
        if not frame.flags.c_contiguous:
            frame = np.ascontiguousarray(frame)
        return frame

    def _resize(self, frame: np.ndarray) -> np.ndarray:
        # Nearest neighbour without OpenCV (the Pi cameras may run without it).
        rows = np.arange(self.height) * frame.shape[0] // self.height
        cols = np.arange(self.width) * frame.shape[1] // self.width
        return frame[rows][:, cols]

    def _capture_loop(self, read: Callable[[], np.ndarray | None], what: str) -> None:
        """Worker thread: call ``read()`` (an image, or None when the read failed) until
        closed, keeping frames at ``fps`` and backing off on failures."""
        closing = self._closing
        pacer = FramePacer(self.fps, time.monotonic())
        failures = 0
        pause = 0.01
        ready = False
        while not closing.is_set():
            image = read()
            if image is None:
                failures += 1
                if failures >= self.max_read_failures:
                    raise DeviceError(f"{what}: {failures} reads failed in a row")
                self._log.warning("%s: read failed (%d in a row); retrying", what, failures)
                if closing.wait(pause):
                    return
                pause = min(pause * 2, 0.5)
                continue
            failures = 0
            pause = 0.01
            mono = time.monotonic()
            if not pacer.due(mono):
                continue
            wall = time.time()
            frame = self._preprocess(self._fit(image))
            if not ready:
                self._setReady(True)
                ready = True
            self._publish(frame, wall, mono)
            pacer.advance(mono)


class CVCamera(_Camera):
    """A camera read with OpenCV's ``VideoCapture`` (a webcam, ``/dev/videoN``, or any path or
    URL that OpenCV opens), as in RTCBot 0.2.5.

    Frames are BGR ``uint8`` arrays ``(height, width, 3)`` at ``fps`` frames per second: the
    size and rate are asked of the camera and then enforced (frames are scaled, and frames
    beyond ``fps`` skipped). ``preprocessframe(frame)`` runs in the capture thread on each
    frame and returns the frame to publish. ``cameranumber`` is the OpenCV camera index (or a
    device path / URL string). ``loop`` binds the camera to that event loop at once.

    No camera, or a camera that stops giving frames: a :class:`DeviceError` reaches
    ``onError`` and the camera closes. ``CVCamera.available()`` tells whether one can be
    opened.
    """

    def __init__(
        self,
        width: int = 320,
        height: int = 240,
        cameranumber: int | str = 0,
        fps: float = 30,
        preprocessframe: Callable[[np.ndarray], np.ndarray] = _identity,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        logger: logging.Logger | None = None,
    ) -> None:
        self._cv2 = _import_cv2("CVCamera")
        if not isinstance(cameranumber, (int, str)) or isinstance(cameranumber, bool):
            raise TypeError(
                f"cameranumber must be an int index or a device path/URL, got {cameranumber!r}"
            )
        self.cameranumber = cameranumber
        super().__init__(width, height, fps, preprocessframe, logger, loop)

    @staticmethod
    def available(cameranumber: int | str = 0) -> bool:
        """True if OpenCV is installed and camera ``cameranumber`` opens (it is released at
        once). Blocks for as long as OpenCV takes to open the camera."""
        try:
            cv2 = _import_cv2("CVCamera")
        except ImportError:
            return False
        if (
            isinstance(cameranumber, int)
            and sys.platform.startswith("linux")
            and not os.path.exists(f"/dev/video{cameranumber}")
        ):
            return False
        cap = cv2.VideoCapture(cameranumber)
        try:
            return bool(cap.isOpened())
        finally:
            cap.release()

    def _producer(self) -> None:
        cv2 = self._cv2
        what = f"camera {self.cameranumber!r}"
        cap = cv2.VideoCapture(self.cameranumber)
        try:
            if not cap.isOpened():
                raise DeviceError(
                    f"cannot open {what} with OpenCV (is it connected, and not used by "
                    "another program?)"
                )
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)

            def read() -> np.ndarray | None:
                ok, image = cap.read()
                return image if ok and image is not None else None

            self._capture_loop(read, what)
        finally:
            cap.release()


class PiCamera2(_Camera):
    """A Raspberry Pi camera through ``picamera2`` (libcamera; Raspberry Pi OS Bullseye and
    later). Same frames and behaviour as :class:`CVCamera`; ``hflip``/``vflip`` mirror the
    image in the camera. The frame rate is set in the camera's video configuration.

    Needs ``picamera2`` (on Raspberry Pi OS: ``sudo apt install python3-picamera2``; in a
    virtual environment created with ``--system-site-packages``).
    """

    def __init__(
        self,
        hflip: bool = False,
        vflip: bool = False,
        *,
        width: int = 320,
        height: int = 240,
        fps: float = 30,
        preprocessframe: Callable[[np.ndarray], np.ndarray] = _identity,
        loop: asyncio.AbstractEventLoop | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        try:
            import picamera2
            from libcamera import Transform
        except ImportError as exc:
            raise ImportError(
                "PiCamera2 needs the picamera2 library: on Raspberry Pi OS, "
                "sudo apt install python3-picamera2 (use a virtual environment made with "
                "--system-site-packages)"
            ) from exc
        self._picamera2 = picamera2
        self._Transform = Transform
        self.hflip = bool(hflip)
        self.vflip = bool(vflip)
        super().__init__(width, height, fps, preprocessframe, logger, loop)

    def _producer(self) -> None:
        try:
            camera = self._picamera2.Picamera2()
        except Exception as exc:
            raise DeviceError(f"cannot open the Pi camera: {exc}") from exc
        try:
            frame_us = int(1_000_000 / self.fps)
            # "RGB888" is BGR in memory, as OpenCV expects.
            config = camera.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                transform=self._Transform(hflip=self.hflip, vflip=self.vflip),
                controls={"FrameDurationLimits": (frame_us, frame_us)},
            )
            camera.configure(config)
            camera.start()

            def read() -> np.ndarray | None:
                try:
                    return camera.capture_array("main")
                except Exception as exc:
                    self._log.warning("Pi camera read failed: %r", exc)
                    return None

            self._capture_loop(read, "Pi camera")
        finally:
            try:
                camera.stop()
            finally:
                camera.close()


class PiCamera(_Camera):
    """A Raspberry Pi camera through the legacy ``picamera`` library (Raspberry Pi OS Buster
    and older; use :class:`PiCamera2` on newer systems). Same frames and behaviour as
    :class:`CVCamera`; ``rotation`` is 0, 90, 180 or 270 degrees."""

    def __init__(
        self,
        rotation: int = 0,
        *,
        width: int = 320,
        height: int = 240,
        fps: float = 30,
        preprocessframe: Callable[[np.ndarray], np.ndarray] = _identity,
        loop: asyncio.AbstractEventLoop | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if rotation not in (0, 90, 180, 270):
            raise ValueError(f"rotation must be 0, 90, 180 or 270, got {rotation!r}")
        try:
            import picamera
        except ImportError as exc:
            raise ImportError(
                "PiCamera needs the legacy picamera library (Raspberry Pi OS Buster or older: "
                "pip install picamera); on newer systems use rtcbot.PiCamera2"
            ) from exc
        self._picamera = picamera
        self.rotation = rotation
        super().__init__(width, height, fps, preprocessframe, logger, loop)

    def _producer(self) -> None:
        try:
            camera = self._picamera.PiCamera()
        except Exception as exc:
            raise DeviceError(f"cannot open the Pi camera: {exc}") from exc
        try:
            camera.resolution = (self.width, self.height)
            camera.framerate = self.fps
            camera.rotation = self.rotation
            # The legacy stack pads rows to 32 pixels and columns to 16.
            padded = ((self.height + 15) // 16 * 16, (self.width + 31) // 32 * 32, 3)
            stream = camera.capture_continuous(
                np.empty(padded, np.uint8), "bgr", use_video_port=True
            )

            def read() -> np.ndarray | None:
                try:
                    buffer = next(stream)
                except Exception as exc:
                    self._log.warning("Pi camera read failed: %r", exc)
                    return None
                return np.array(buffer[: self.height, : self.width])

            self._capture_loop(read, "Pi camera")
        finally:
            camera.close()
