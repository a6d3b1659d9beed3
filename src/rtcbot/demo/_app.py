"""``rtcbot demo``: a robot page with live video and keyboard/gamepad control.

The robot side of the demo: a video source (the first camera, or a moving test pattern when
there is none), one :class:`~rtcbot.RTCConnection` per browser tab (through
:class:`~rtcbot.web.ConnectionServer`), and a :class:`~rtcbot.safety.SafetyGate` between the
pages and the "motors" (whose setpoints are printed as they change): one page drives, the others
watch; a latched E-stop (the page's button, Space, gamepad button 1, or the driver's link
lost); limits; a slow-down when the latency grows.

What the page shows on top of the video: end-to-end latency (the pattern codes each frame's
index in its pixels; the robot sends each frame's capture time; the page decodes the index of
the frame on screen and compares), frames per second, bitrate and round-trip time.
"""

from __future__ import annotations

import asyncio
import logging
import math
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
    ``control_timeout``: seconds without a message from the driving page before the robot's
    E-stop latches. ``admin_token``: lets a page take control at once (None: nobody can).
    ``slow_ms``, ``stop_ms``: the latency above which the robot drives at half speed, and
    stops (see :class:`rtcbot.safety.LatencyLimits`).
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
    admin_token: str | None = None
    slow_ms: float = 300.0
    stop_ms: float = 800.0
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
    """What the demo robot does with each operator: stream video, and drive its "motors"
    (printed setpoints) through a safety gate."""

    def __init__(self, options: DemoOptions, hub: VideoHub) -> None:
        from ..safety import Axis, LatencyLimits, SafetyGate

        self.options = options
        self.hub = hub
        self.state: dict[str, Any] = {"forward": 0.0, "turn": 0.0}
        self.source = "?"
        self.stops = 0
        self.frame_times_skipped = 0
        self.gate = SafetyGate(
            [Axis("forward", -1.0, 1.0, rate=4.0), Axis("turn", -1.0, 1.0, rate=8.0)],
            on_stop=self.stop,
            hold_time=max(options.control_timeout, 0.3),
            max_age=0.5,
            link_timeout=options.control_timeout,
            latency=LatencyLimits(slow_ms=options.slow_ms, stop_ms=options.stop_ms,
                                  hysteresis_ms=min(50.0, options.slow_ms / 2)),
            admin_token=options.admin_token,
        )
        self.gate.subscribe(self.motors)
        self.gate.events.subscribe(self._event)

    def on_connection(self, conn: Any) -> None:
        video = self.hub.subscribe()
        conn.video.putSubscription(video)
        frames = self.hub.subscribe(lambda frame: self._frame_time(conn, frame))
        conn.subscribe(lambda message: self._on_message(conn, message))
        client = self.gate.attach(conn, age_of=_age_of)
        conn.onReady(lambda: _say(self.options, f"operator connected ({client})"))

        def closed() -> None:
            for subscription in (video, frames):
                try:
                    self.hub.unsubscribe(subscription)
                except KeyError:
                    pass
            _say(self.options, f"operator disconnected ({client})")

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
            source = message.get("source")
            if source in ("keyboard", "gamepad"):
                self.source = source

    def motors(self, setpoint: dict[str, float]) -> None:
        """The gate's output: what real motors would be set to. Printed when it changes."""
        state = {key: round(value, 2) for key, value in setpoint.items()}
        if state != self.state:
            self.state = state
            _say(self.options, f"control: forward={state['forward']:+.2f} "
                               f"turn={state['turn']:+.2f} ({self.source})")

    def _event(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "driver":
            who = event["driver"]
            _say(self.options, f"safety: {'nobody' if who is None else f'operator {who}'} "
                               f"drives ({event['reason']})")
        elif kind == "release":
            _say(self.options, f"safety: E-stop released by operator {event['by']}")
        elif kind == "slowdown":
            _say(self.options, f"safety: {event['mode']} (scale {event['scale']:g}, "
                               f"{event['cause']} {event['latency_ms']:.0f} ms)")
        elif kind == "request":
            _say(self.options, f"safety: operator {event['client']} asks for control")

    def stop(self) -> None:
        """The gate's stop callback: the E-stop latched (a page, or the driver's link lost)."""
        self.stops += 1
        reason = self.gate.state["estop_reason"]
        _say(self.options, f"safety stop: {reason}; stopping the robot")


def _age_of(message: dict[str, Any]) -> float | None:
    """A command's age in seconds from its ``sent`` field (the robot's clock in ms, as the
    page estimates it); None when it has none."""
    sent = message.get("sent")
    if isinstance(sent, bool) or not isinstance(sent, (int, float)) or not math.isfinite(sent):
        return None
    age = time.time() - sent / 1000.0
    return age if age > -3600 else None  # a time far in the future is no clock of ours


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
        robot.gate.close()

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

