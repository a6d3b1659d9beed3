"""``rtcbot demo``: a robot page with live video and keyboard/gamepad control.

The robot side of the demo: a video source (the first camera, or a moving test pattern when
there is none), one :class:`~rtcbot.RTCConnection` per browser tab (through
:class:`~rtcbot.web.ConnectionServer`), control messages printed as they change, and a control
timeout that "stops the motors" when the operator's commands stop arriving.

What the page shows on top of the video: end-to-end latency (the pattern codes each frame's
index in its pixels; the robot sends each frame's capture time; the page decodes the index of
the frame on screen and compares), frames per second, bitrate and round-trip time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aiohttp import web

from ..base import SubscriptionClosed, SubscriptionFull, SubscriptionProducer
from ..base._compat import TIMEOUT_ERRORS
from ..base.subscriptions import MostRecentSubscription
from ..web import ConnectionServer

__all__ = ["DemoOptions", "make_app", "run_demo"]

_log = logging.getLogger("rtcbot.demo")


@dataclass
class DemoOptions:
    """Settings of ``rtcbot demo``.

    ``host``/``port``: where to listen (default ``127.0.0.1:8080``: this machine only).
    ``token``: required by ``/connect`` when set; ``"auto"`` makes one when listening beyond
    this machine. ``camera``: OpenCV camera index, or None for the first one if any.
    ``pattern``: always use the test pattern. ``width``, ``height``, ``fps``: video format.
    ``control_timeout``: seconds without a control message before the robot stops.
    ``ice_servers``: ICE servers for the connections (default none: same network only).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = "auto"
    camera: int | None = None
    pattern: bool = False
    width: int = 640
    height: int = 480
    fps: float = 30.0
    control_timeout: float = 0.5
    ice_servers: list[Any] = field(default_factory=list)
    out: Any = None  # where to print (default sys.stdout)


def _say(options: DemoOptions, text: str) -> None:
    print(text, file=options.out or sys.stdout, flush=True)


def _has_camera(index: int | None) -> bool:
    """True when OpenCV is installed and a camera device exists (Linux: /dev/videoN)."""
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    if sys.platform.startswith("linux"):
        if index is not None:
            return os.path.exists(f"/dev/video{index}")
        return any(name.startswith("video") for name in os.listdir("/dev"))
    return True


class VideoHub(SubscriptionProducer):
    """The video every viewer watches: frames of whichever source is active (the camera, or
    the test pattern after the camera failed), newest frame wins."""

    def __init__(self) -> None:
        super().__init__(defaultSubscriptionClass=MostRecentSubscription)
        self.source: Any = None
        self.description = ""


def _open_source(options: DemoOptions, hub: VideoHub) -> None:
    from ..devices.sources import TestPattern

    def use_pattern(reason: str) -> None:
        pattern = TestPattern(width=options.width, height=options.height, fps=options.fps)
        pattern.subscribe(hub.put_nowait)
        hub.source = pattern
        hub.description = f"test pattern {options.width}x{options.height} at {options.fps:g} fps"
        if reason:
            _say(options, f"video: {reason}; showing the test pattern")

    if options.pattern or not _has_camera(options.camera):
        use_pattern("")
        return
    from ..devices.camera import CVCamera

    camera = CVCamera(width=options.width, height=options.height,
                      cameranumber=options.camera or 0, fps=options.fps)
    camera.subscribe(hub.put_nowait)
    hub.source = camera
    hub.description = f"camera {options.camera or 0}"

    def camera_failed(err: BaseException) -> None:
        if not hub.closed:
            use_pattern(f"the camera failed ({err})")

    camera.onError(camera_failed)


class Robot:
    """What the demo robot does with each operator: stream video, follow control messages,
    stop when they stop."""

    def __init__(self, options: DemoOptions, hub: VideoHub) -> None:
        self.options = options
        self.hub = hub
        self.state: dict[str, Any] = {"forward": 0, "turn": 0}
        self.stopped = True
        self.frame_times_skipped = 0

    def on_connection(self, conn: Any) -> None:
        video = self.hub.subscribe()
        conn.video.putSubscription(video)
        frames = self.hub.subscribe(lambda frame: self._frame_time(conn, frame))
        conn.subscribe(lambda message: self._on_message(conn, message))
        conn.set_control_timeout(self.options.control_timeout, self.stop)
        conn.onReady(lambda: _say(self.options, "operator connected"))

        def closed() -> None:
            for subscription in (video, frames):
                try:
                    self.hub.unsubscribe(subscription)
                except KeyError:
                    pass
            _say(self.options, "operator disconnected")

        conn.onClose(closed)

    def _frame_time(self, conn: Any, frame: Any) -> None:
        from ..devices.sources import frame_info

        info = frame_info(frame)
        if info is not None and conn.ready:
            try:
                conn.put_nowait({"type": "frame", "index": info.index,
                                 "t": info.capture_time * 1000})
            except (SubscriptionFull, SubscriptionClosed):
                self.frame_times_skipped += 1  # a full or closing channel: one overlay sample


    def _on_message(self, conn: Any, message: Any) -> None:
        if not isinstance(message, dict):
            _log.warning("ignored a message that is not an object: %r", message)
            return
        kind = message.get("type")
        if kind == "clock":
            conn.put_nowait({"type": "clock", "page": message.get("page"),
                             "robot": time.time() * 1000})
        elif kind == "control":
            self.control(message)

    def control(self, message: dict[str, Any]) -> None:
        """A control message from the page: ``{"type": "control", "forward": -1..1,
        "turn": -1..1, "source": "keyboard" | "gamepad"}``."""
        state = {}
        for key in ("forward", "turn"):
            value = message.get(key, 0)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                _log.warning("ignored a control message with %s=%r", key, value)
                return
            state[key] = round(max(-1.0, min(1.0, float(value))), 2)
        self.stopped = False
        if state != self.state:
            self.state = state
            source = message.get("source", "?")
            _say(self.options,
                 f"control: forward={state['forward']:+.2f} turn={state['turn']:+.2f} ({source})")

    def stop(self) -> None:
        """The control timeout: no command for a while (or the operator left). Stop."""
        if not self.stopped:
            self.stopped = True
            self.state = {"forward": 0, "turn": 0}
            _say(self.options, "control timeout: stopping the robot")


def _page() -> str:
    return resources.files("rtcbot.demo").joinpath("page.html").read_text(encoding="utf-8")


def make_app(options: DemoOptions) -> web.Application:
    """The demo's aiohttp application (its video source starts with the app)."""
    hub = VideoHub()
    robot = Robot(options, hub)
    server = ConnectionServer(
        robot.on_connection,
        token=options.token,
        rtc_configuration=options.ice_servers,
        max_connections=4,
    )
    app = web.Application()
    page = _page()

    async def index(request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text=page)

    app.router.add_get("/", index)
    server.add_routes(app)

    async def start(app: web.Application) -> None:
        _open_source(options, hub)

    async def stop(app: web.Application) -> None:
        source = hub.source
        if source is not None:
            source.close()
            try:  # its thread releases the camera
                await asyncio.wait_for(source, 5)
            except TIMEOUT_ERRORS:
                _log.warning("the video source had not stopped after 5 s")
        hub.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app[_ROBOT] = robot
    app[_SERVER] = server
    return app


_ROBOT = web.AppKey("robot", Robot)
_SERVER = web.AppKey("server", ConnectionServer)


def run_demo(options: DemoOptions) -> None:
    """Serve the demo until Ctrl-C."""
    local = options.host in ("127.0.0.1", "localhost", "::1")
    if options.token == "auto":
        options.token = None if local else secrets.token_urlsafe(12)
    app = make_app(options)
    shown = "localhost" if local else options.host
    url = f"http://{shown}:{options.port}/"
    if options.token:
        url += f"?token={options.token}"

    async def announce(app: web.Application) -> None:
        hub = app[_ROBOT].hub
        _say(options, f"rtcbot demo: open {url}  (video: {hub.description}; Ctrl-C to stop)")

    app.on_startup.append(announce)
    web.run_app(app, host=options.host, port=options.port, print=None,
                handle_signals=True, shutdown_timeout=5)
    _say(options, "rtcbot demo stopped")

