"""Benchmark of a robot watched and driven from a browser: rtcbot (this checkout, rtcbot.js)
against RTCBot 0.2.5 (its own virtualenv and its own rtcbot.js) and raw aiortc with a raw
browser ``RTCPeerConnection`` page, in headless Chromium on this machine, in the same run.

Usage::

    python bench/browser.py                       # all three, JSON on stdout (about 2 minutes)
    python bench/browser.py --impls rtcbot --seconds 5
    python bench/browser.py --out bench/results/browser.json

Each implementation runs as a robot server in its own process (``--serve IMPL``; RTCBot 0.2.5
with the interpreter of ``bench/.venv-rtcbot025``, made by ``bench/_venv.py``), one new
connection per page. The robot sends the same synthetic 640x480 camera at 30 fps (colour bars,
a moving square, and the frame index coded in 20 black/white cells at the top), and, over the
data channel, each frame's capture time (the Python clock). The page (the same measuring code
for all three; only the few lines that connect differ) measures:

* ``latency_ms``: capture to display. For each frame painted (``requestVideoFrameCallback``)
  the page reads the index from the pixels (canvas), takes its ``expectedDisplayTime``, and
  subtracts the capture time sent by Python, corrected by the clock offset estimated by ping
  over the data channel (the reply of the lowest round trip). p50, p99, frames painted per
  second. Target: p50 at most 25 ms.
* ``round_trip_ms``: a small JSON message sent by the page, echoed by Python, received back
  (one at a time, while the video plays). p50, p99. Target: p50 under 1 ms.
* ``tab_close_s``: the tab is closed (``page.close()``, as a user closes it) until the robot's
  connection reports closed (rtcbot and RTCBot: ``onClose``; raw aiortc: the connection state
  ``closed``/``failed``). Waits at most ``--close-cap`` s. Target: under 1 s.
* ``load_to_playing_ms``: navigation start until the first video frame is painted, for fresh
  page loads (page, library, offer, answer, ICE, DTLS, first keyframe). Target: under 500 ms.
* ``server_cpu``: CPU seconds per second of the robot's process while the latency is measured.

Ratios compare rtcbot with each baseline measured in this run (below 1 is better for times).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
BENCH_DIR = SCRIPT.parent
REPO_DIR = BENCH_DIR.parent
IMPLS = ("rtcbot", "rtcbot025", "aiortc")
CHROMIUM_PATH = os.environ.get("RTCBOT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# 29.5 fps, not 30: a real camera's clock is not locked to the display's 60 Hz refresh, so its
# frames wait for a vsync for anything from 0 to 16.7 ms. A camera at exactly 30 fps would keep
# one such wait for the whole run (a different one each run); at 29.5 fps the frames drift across
# the refresh once a second and the percentiles include every wait.
WIDTH, HEIGHT, FPS = 640, 480, 29.5
BITS, CELL_W, CELL_H = 20, 32, 24  # the index code: 20 cells of 32x24 px at the top, MSB first
TARGETS = {"latency_p50_ms": 25.0, "round_trip_p50_ms": 1.0, "tab_close_s": 1.0,
           "load_to_playing_ms": 500.0}


# ============================================================================ the robot side
# This part runs in the server process, under this checkout or under RTCBot 0.2.5's venv: it
# imports only numpy, aiohttp and aiortc (and the rtcbot of its interpreter).


class Latest:
    """Keeps the newest frame; ``await get()`` returns the next one (a video subscription)."""

    def __init__(self) -> None:
        self._frame: Any = None
        self._event = asyncio.Event()

    def put_nowait(self, frame: Any) -> None:
        self._frame = frame
        self._event.set()

    async def get(self) -> Any:
        await self._event.wait()
        self._event.clear()
        return self._frame


class Camera:
    """A synthetic camera: a thread renders WIDTH x HEIGHT BGR frames at FPS; on the loop each
    frame goes to every subscription and to ``on_frame(index, capture_time_ms)``."""

    def __init__(self, on_frame: Any) -> None:
        import numpy as np

        self.np = np
        self.on_frame = on_frame
        bars = np.array([(191, 191, 191), (0, 191, 191), (191, 191, 0), (0, 191, 0),
                         (191, 0, 191), (0, 0, 191), (191, 0, 0)], np.uint8)
        columns = np.minimum(np.arange(WIDTH) * len(bars) // WIDTH, len(bars) - 1)
        self.base = np.ascontiguousarray(np.broadcast_to(bars[columns], (HEIGHT, WIDTH, 3)))
        self.subscriptions: set[Latest] = set()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def render(self, index: int) -> Any:
        frame = self.base.copy()
        x = (index * 7) % (WIDTH - 64)
        frame[200:264, x : x + 64] = (255, 255, 255)
        for bit in range(BITS):
            on = (index >> (BITS - 1 - bit)) & 1
            frame[:CELL_H, bit * CELL_W : (bit + 1) * CELL_W] = 255 if on else 0
        return frame

    def subscribe(self) -> Latest:
        sub = Latest()
        self.subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Latest) -> None:
        self.subscriptions.discard(sub)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        start = time.monotonic()
        index = 0
        while not self._stop.wait(max(0.0, start + index / FPS - time.monotonic())):
            frame = self.render(index)
            captured = time.time() * 1000
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._publish, index, frame, captured)
            except RuntimeError:  # the loop closed
                return
            index += 1

    def _publish(self, index: int, frame: Any, captured: float) -> None:
        for sub in list(self.subscriptions):
            sub.put_nowait(frame)
        self.on_frame(index, captured)


def emit(event: str, **fields: Any) -> None:
    """A line of the server's protocol on stdout (JSON)."""
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


def answer_message(message: Any, reply: Any) -> None:
    """The robot's side of the page's measurements: echo, and the clock for the offset."""
    if not isinstance(message, dict):
        return
    if message.get("type") == "echo":
        reply(message)
    elif message.get("type") == "clock":
        reply({"type": "clock", "id": message.get("id"), "t": time.time() * 1000})


def rtcbot_app(impl: str) -> Any:
    """The robot with rtcbot (``impl="rtcbot"``) or RTCBot 0.2.5 (``"rtcbot025"``): the code
    is the same; only what each needs differs."""
    from aiohttp import web

    from rtcbot import RTCConnection, getRTCBotJS

    connections: dict[Any, Latest] = {}

    def on_frame(index: int, captured: float) -> None:
        for conn in list(connections):
            if conn.ready:
                conn.put_nowait({"type": "frame", "i": index, "t": captured})

    camera = Camera(on_frame)

    def new_connection() -> Any:
        if impl == "rtcbot025":
            from aiortc import RTCConfiguration

            # 0.2.5's default is Google's public STUN server: none here, as for the others.
            return RTCConnection(rtcConfiguration=RTCConfiguration([]))
        return RTCConnection()

    def closed(conn: Any) -> None:
        if conn in connections:
            camera.unsubscribe(connections.pop(conn))
            emit("closed")

    async def connect(request: web.Request) -> web.Response:
        offer = await request.json()
        conn = new_connection()
        sub = camera.subscribe()
        connections[conn] = sub
        conn.video.putSubscription(sub)
        conn.subscribe(lambda m: answer_message(m, conn.put_nowait))
        conn.onClose(lambda: closed(conn))
        answer = await conn.getLocalDescription(offer)
        return web.json_response(answer)

    async def reset(request: web.Request) -> web.Response:
        conns = list(connections)
        for conn in conns:
            connections.pop(conn, None)
            result = conn.close()
            if result is not None:
                await result
        return web.json_response({"closed": len(conns)})

    page = page_html(impl)

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    async def rtcbotjs(request: web.Request) -> web.Response:
        return web.Response(text=getRTCBotJS(), content_type="application/javascript")

    async def startup(app: web.Application) -> None:
        camera.start()

    async def shutdown(app: web.Application) -> None:
        camera.stop()
        await reset(None)  # type: ignore[arg-type]

    app = web.Application()
    app.add_routes([web.get("/", index), web.get("/rtcbot.js", rtcbotjs),
                    web.post("/connect", connect), web.post("/reset", reset)])
    app.on_startup.append(startup)
    app.on_shutdown.append(shutdown)
    return app


def aiortc_app() -> Any:
    """The robot with raw aiortc: what a user writes without rtcbot."""
    from fractions import Fraction

    from aiohttp import web
    from aiortc import (
        RTCConfiguration,
        RTCPeerConnection,
        RTCSessionDescription,
        VideoStreamTrack,
    )
    from av import VideoFrame

    peers: dict[Any, Any] = {}  # pc -> (subscription, channels)

    class CameraTrack(VideoStreamTrack):
        def __init__(self, sub: Latest) -> None:
            super().__init__()
            self.sub = sub
            self.start: float | None = None

        async def recv(self) -> VideoFrame:
            frame = await self.sub.get()
            now = time.time()
            if self.start is None:
                self.start = now
            video = VideoFrame.from_ndarray(frame, format="bgr24")
            video.pts = int((now - self.start) * 90000)
            video.time_base = Fraction(1, 90000)
            return video

    def on_frame(index: int, captured: float) -> None:
        text = json.dumps({"type": "frame", "i": index, "t": captured})
        for _sub, channels in list(peers.values()):
            for channel in channels:
                if channel.readyState == "open":
                    channel.send(text)

    camera = Camera(on_frame)

    def closed(pc: Any) -> None:
        if pc in peers:
            camera.unsubscribe(peers.pop(pc)[0])
            emit("closed")

    async def connect(request: web.Request) -> web.Response:
        offer = await request.json()
        pc = RTCPeerConnection(RTCConfiguration([]))
        sub = camera.subscribe()
        channels: list[Any] = []
        peers[pc] = (sub, channels)

        @pc.on("datachannel")
        def on_channel(channel: Any) -> None:
            channels.append(channel)

            @channel.on("message")
            def on_message(text: Any) -> None:
                answer_message(json.loads(text), lambda m: channel.send(json.dumps(m)))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("closed", "failed"):
                closed(pc)

        await pc.setRemoteDescription(RTCSessionDescription(**offer))
        pc.addTrack(CameraTrack(sub))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.json_response({"sdp": pc.localDescription.sdp,
                                  "type": pc.localDescription.type})

    async def reset(request: web.Request) -> web.Response:
        pcs = list(peers)
        for pc in pcs:
            peers.pop(pc, None)
            await pc.close()
        return web.json_response({"closed": len(pcs)})

    page = page_html("aiortc")

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    async def startup(app: web.Application) -> None:
        camera.start()

    async def shutdown(app: web.Application) -> None:
        camera.stop()
        await reset(None)  # type: ignore[arg-type]

    app = web.Application()
    app.add_routes([web.get("/", index), web.post("/connect", connect),
                    web.post("/reset", reset)])
    app.on_startup.append(startup)
    app.on_shutdown.append(shutdown)
    return app


def serve(impl: str, port: int) -> None:
    from aiohttp import web

    app = aiortc_app() if impl == "aiortc" else rtcbot_app(impl)

    async def ready(app: web.Application) -> None:
        emit("ready")

    app.on_startup.append(ready)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


# ============================================================================ the page

# How each implementation's page connects; each defines connect() and send(value), and hands
# every received value to onMessage(value).
ADAPTERS = {
    "rtcbot": """
<script src="/rtcbot.js"></script>
<script>
const conn = new rtcbot.RTCConnection();
conn.video.subscribe((stream) => { video.srcObject = stream; });
conn.subscribe(onMessage);
function send(value) { conn.put_nowait(value); }
async function connect() {
    const offer = await conn.getLocalDescription();
    mark("offer");
    const response = await fetch("/connect", {method: "POST", body: JSON.stringify(offer)});
    const answer = await response.json();
    mark("answer");
    await conn.setRemoteDescription(answer);
}
</script>""",
    "rtcbot025": """
<script src="/rtcbot.js"></script>
<script>
const conn = new rtcbot.RTCConnection(true, {iceServers: []});
conn.video.subscribe((stream) => { video.srcObject = stream; });
conn.subscribe((text) => onMessage(JSON.parse(text)));  // 0.2.5 hands over the raw JSON text
function send(value) { conn.put_nowait(value); }
async function connect() {
    const offer = await conn.getLocalDescription();
    mark("offer");
    const response = await fetch("/connect", {method: "POST", body: JSON.stringify(offer)});
    const answer = await response.json();
    mark("answer");
    await conn.setRemoteDescription(answer);
}
</script>""",
    "aiortc": """
<script>
const pc = new RTCPeerConnection({iceServers: []});
const channel = pc.createDataChannel("default");
const unsent = [];
channel.onopen = () => { for (const text of unsent.splice(0)) channel.send(text); };
channel.onmessage = (event) => onMessage(JSON.parse(event.data));
function send(value) {
    const text = JSON.stringify(value);
    if (channel.readyState === "open") channel.send(text); else unsent.push(text);
}
pc.addTransceiver("video", {direction: "recvonly"});
pc.ontrack = (event) => { video.srcObject = event.streams[0] || new MediaStream([event.track]); };
async function connect() {
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
        if (pc.iceGatheringState === "complete") return resolve();
        pc.addEventListener("icegatheringstatechange", () => {
            if (pc.iceGatheringState === "complete") resolve();
        });
    });
    const offer = {sdp: pc.localDescription.sdp, type: pc.localDescription.type};
    mark("offer");
    const response = await fetch("/connect", {method: "POST", body: JSON.stringify(offer)});
    const answer = await response.json();
    mark("answer");
    await pc.setRemoteDescription(answer);
}
</script>""",
}

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>bench</title></head>
<body><video id="video" autoplay muted playsinline></video>
<script>
const video = document.getElementById("video");
const handlers = [];
function onMessage(value) { for (const handler of handlers) handler(value); }
const marks = {};
function mark(name) { marks[name] = performance.now(); }
</script>
__ADAPTER__
<script>
const BITS = __BITS__, CELL_W = __CELL_W__, CELL_H = __CELL_H__;
mark("script");
const bench = window.bench = {firstFrame: null, captures: new Map(), offset: null, marks};
const pending = new Map();
const wall = () => performance.timeOrigin + performance.now();
handlers.push((m) => {
    if (m.type === "frame") bench.captures.set(m.i, m.t);
    else if (pending.has(m.id)) {
        const resolve = pending.get(m.id);
        pending.delete(m.id);
        resolve(m);
    }
});
video.requestVideoFrameCallback((now, meta) => {
    bench.firstFrame = meta.expectedDisplayTime;
    marks.firstFrame = meta.expectedDisplayTime;
});
connect().then(() => mark("connected"), (error) => { bench.error = String(error); });

let nextId = 0;
function request(message) {
    message.id = nextId++;
    return new Promise((resolve) => { pending.set(message.id, resolve); send(message); });
}
bench.clock = async (n) => {
    let best = null;
    for (let k = 0; k < n; k++) {
        const t0 = wall();
        const reply = await request({type: "clock"});
        const t1 = wall();
        if (best === null || t1 - t0 < best.rtt) {
            best = {rtt: t1 - t0, offset: reply.t - (t0 + t1) / 2};
        }
    }
    bench.offset = best.offset;
    return best;
};
bench.echo = async (n) => {
    const rtts = [];
    for (let k = 0; k < n; k++) {
        const t0 = performance.now();
        await request({type: "echo", pad: "0123456789abcdef"});
        rtts.push(performance.now() - t0);
    }
    return rtts;
};
const canvas = document.createElement("canvas");
function readIndex() {
    const w = video.videoWidth;
    if (canvas.width !== w || canvas.height !== CELL_H) {
        canvas.width = w;
        canvas.height = CELL_H;
    }
    const ctx = canvas.getContext("2d", {willReadFrequently: true});
    ctx.drawImage(video, 0, 0, w, CELL_H, 0, 0, w, CELL_H);
    const data = ctx.getImageData(0, 0, w, CELL_H).data;
    let value = 0;
    for (let bit = 0; bit < BITS; bit++) {
        let sum = 0, n = 0;
        for (let y = CELL_H / 4; y < CELL_H * 3 / 4; y++) {
            for (let x = bit * CELL_W + CELL_W / 4; x < (bit + 1) * CELL_W - CELL_W / 4; x++) {
                const p = (y * w + x) * 4; sum += data[p] + data[p + 1] + data[p + 2]; n += 3;
            }
        }
        value = value * 2 + (sum / n > 128 ? 1 : 0);
    }
    return value;
}
bench.latency = (seconds) => new Promise((resolve) => {
    const seen = [];
    let start = null;
    const onFrame = (now, meta) => {
        if (start === null) start = now;
        seen.push({i: readIndex(), display: performance.timeOrigin + meta.expectedDisplayTime});
        if (now - start < seconds * 1000) { video.requestVideoFrameCallback(onFrame); return; }
        // the capture times travel beside the video: let the last ones arrive
        setTimeout(() => {
            const latencies = [];
            let unknown = 0;
            for (const s of seen) {
                const captured = bench.captures.get(s.i);
                if (captured === undefined) { unknown++; continue; }
                latencies.push(s.display - (captured - bench.offset));
            }
            resolve({latencies, painted: seen.length, unknown, seconds: (now - start) / 1000});
        }, 300);
    };
    video.requestVideoFrameCallback(onFrame);
});
</script></body></html>
"""


def page_html(impl: str) -> str:
    return (PAGE.replace("__ADAPTER__", ADAPTERS[impl]).replace("__BITS__", str(BITS))
            .replace("__CELL_W__", str(CELL_W)).replace("__CELL_H__", str(CELL_H)))


# ============================================================================ the driver


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float], digits: int = 2) -> dict[str, Any]:
    return {"p50": _round(percentile(values, 50), digits),
            "p99": _round(percentile(values, 99), digits), "n": len(values)}


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """A robot server process (``--serve impl``) and the events it prints."""

    def __init__(self, impl: str, python: str) -> None:
        self.impl = impl
        self.python = python
        self.port = free_port()
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.process: asyncio.subprocess.Process | None = None
        self.stderr: list[str] = []

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> Server:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        if self.impl != "rtcbot025":
            env["PYTHONPATH"] = str(REPO_DIR / "src")
        # -P: the bench folder is not put on sys.path (bench/serial.py would shadow pyserial)
        self.process = await asyncio.create_subprocess_exec(
            self.python, "-P", str(SCRIPT), "--serve", self.impl,
            "--port", str(self.port), cwd=BENCH_DIR, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        self._tasks = [asyncio.create_task(self._read_events()),
                       asyncio.create_task(self._read_stderr())]
        await self.expect("ready", 60)
        return self

    async def _read_events(self) -> None:
        assert self.process and self.process.stdout
        while line := await self.process.stdout.readline():
            try:
                self.events.put_nowait(json.loads(line))
            except ValueError:
                pass

    async def _read_stderr(self) -> None:
        assert self.process and self.process.stderr
        while line := await self.process.stderr.readline():
            self.stderr.append(line.decode(errors="replace").rstrip())
            del self.stderr[:-50]

    async def expect(self, event: str, timeout: float) -> dict[str, Any] | None:
        """The next event named ``event`` (others are dropped), or None after ``timeout`` s."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    item = await self.events.get()
                    if item["event"] == event:
                        return item
        except TimeoutError:
            return None

    def drain(self) -> None:
        while not self.events.empty():
            self.events.get_nowait()

    async def reset(self, page: Any) -> None:
        """Close every connection on the robot's side (so slow closes do not pile up)."""
        await page.request.post(self.url("/reset"))

    async def __aexit__(self, *exc: object) -> None:
        process = self.process
        assert process is not None
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def wait_playing(page: Any, timeout: float = 20.0) -> dict[str, float]:
    """Wait for the page's first painted frame; the page's marks, in ms from navigation start:
    ``script`` (the page's code runs), ``offer`` (made), ``answer`` (received), ``connected``
    (answer applied) and ``firstFrame`` (painted)."""
    handle = await page.wait_for_function(
        "window.bench && (bench.firstFrame !== null || bench.error)", timeout=timeout * 1000
    )
    await handle.dispose()
    error = await page.evaluate("bench.error || null")
    if error:
        raise RuntimeError(f"the page could not connect: {error}")
    return await page.evaluate("bench.marks")


async def measure(impl: str, python: str, browser: Any, args: argparse.Namespace) -> dict:
    result: dict[str, Any] = {}
    context = await browser.new_context()
    try:
        async with Server(impl, python) as server:
            loads: list[dict[str, float]] = []
            page = await context.new_page()
            await page.goto(server.url("/"))
            loads.append(await wait_playing(page))
            await page.evaluate("bench.echo(50)")  # warm up
            offset = await page.evaluate("bench.clock(30)")
            result["clock"] = {"offset_ms": round(offset["offset"], 3),
                               "ping_rtt_ms": round(offset["rtt"], 3)}
            rtts = await page.evaluate(f"bench.echo({args.echoes})")
            result["round_trip_ms"] = summary(rtts, 3)
            assert server.process is not None
            cpu0, t0 = cpu_seconds(server.process.pid), time.monotonic()
            seen = await page.evaluate(f"bench.latency({args.seconds})")
            cpu = (cpu_seconds(server.process.pid) - cpu0) / (time.monotonic() - t0)
            result["latency_ms"] = {
                **summary(seen["latencies"], 1),
                "painted_fps": round(seen["painted"] / seen["seconds"], 1),
                "unmatched_frames": seen["unknown"],
            }
            result["server_cpu"] = round(cpu, 3)

            # tab closed -> the robot notices
            closes: list[float] = []
            result["tab_close_s"] = {"samples": closes, "cap_s": args.close_cap}
            for k in range(args.close_samples if impl == "rtcbot" else 1):
                if k > 0:
                    page = await context.new_page()
                    await page.goto(server.url("/"))
                    loads.append(await wait_playing(page))
                server.drain()
                start = time.time()
                await page.close()
                event = await server.expect("closed", args.close_cap)
                if event is None:
                    result["tab_close_s"]["not_closed_within_cap"] = True
                    break
                closes.append(round(event["t"] - start, 3))
            result["tab_close_s"]["p50"] = _round(percentile(closes, 50), 3)

            # page loads: navigation start to the first frame painted
            helper = await context.new_page()
            while len(loads) < args.loads:
                await server.reset(helper)
                page = await context.new_page()
                await page.goto(server.url("/"))
                loads.append(await wait_playing(page))
                await page.close()
            await server.reset(helper)
            result["load_to_playing_ms"] = summary([m["firstFrame"] for m in loads], 1)
            result["load_to_playing_ms"]["phases_p50"] = {
                name: _round(percentile([m[name] for m in loads if name in m], 50), 1)
                for name in ("script", "offer", "answer", "connected", "firstFrame")
            }
    except Exception as exc:  # one implementation failing must not lose the others' figures
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        await context.close()
    return result


def ratios(results: dict[str, dict]) -> dict[str, Any]:
    """rtcbot's figure divided by each baseline's (below 1: rtcbot is faster)."""
    ours = results.get("rtcbot", {})
    out: dict[str, Any] = {}
    figures = {
        "latency_p50": lambda r: r.get("latency_ms", {}).get("p50"),
        "latency_p99": lambda r: r.get("latency_ms", {}).get("p99"),
        "round_trip_p50": lambda r: r.get("round_trip_ms", {}).get("p50"),
        "tab_close": lambda r: r.get("tab_close_s", {}).get("p50"),
        "load_to_playing_p50": lambda r: r.get("load_to_playing_ms", {}).get("p50"),
        "server_cpu": lambda r: r.get("server_cpu"),
    }
    for base in ("rtcbot025", "aiortc"):
        if base not in results or "error" in results[base]:
            continue
        row = {}
        for name, get in figures.items():
            a, b = get(ours), get(results[base])
            row[name] = float(f"{a / b:.3g}") if a is not None and b else None
        out[f"rtcbot_vs_{base}"] = row
    return out


def targets(results: dict[str, dict]) -> dict[str, Any]:
    ours = results.get("rtcbot", {})
    got = {
        "latency_p50_ms": ours.get("latency_ms", {}).get("p50"),
        "round_trip_p50_ms": ours.get("round_trip_ms", {}).get("p50"),
        "tab_close_s": ours.get("tab_close_s", {}).get("p50"),
        "load_to_playing_ms": ours.get("load_to_playing_ms", {}).get("p50"),
    }
    return {name: {"target": TARGETS[name], "value": value,
                   "met": value is not None and value <= TARGETS[name]}
            for name, value in got.items()}


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    results: dict[str, Any] = {}
    pythons = {"rtcbot": sys.executable, "aiortc": sys.executable}
    if "rtcbot025" in args.impls:
        sys.path.insert(0, str(BENCH_DIR))
        try:
            from _venv import ensure_rtcbot025

            pythons["rtcbot025"] = str(ensure_rtcbot025())
        except Exception as exc:
            results["rtcbot025"] = {"error": f"cannot make RTCBot 0.2.5's venv: {exc!r}"}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS, headless=True
        )
        try:
            for impl in args.impls:
                if impl in pythons:
                    results[impl] = await measure(impl, pythons[impl], browser, args)
            version = browser.version
        finally:
            await browser.close()
    return {
        "benchmark": "browser",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "chromium": version},
        "settings": {"video": f"{WIDTH}x{HEIGHT}@{FPS:g}", "seconds": args.seconds,
                     "echoes": args.echoes, "loads": args.loads},
        "notes": [
            "latency: capture (Python clock) to expectedDisplayTime of the painted frame (page "
            "clock, offset by ping); includes the wait for the display's refresh (0-16.7 ms), "
            "sampled evenly by a 29.5 fps camera",
            "tab_close for the baselines: one sample each (they take about 30 s)",
        ],
        "results": results,
        "ratios": ratios(results),
        "targets": targets(results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impls", default=",".join(IMPLS),
                        help=f"comma-separated, from {', '.join(IMPLS)}")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency window")
    parser.add_argument("--echoes", type=int, default=500, help="round trips")
    parser.add_argument("--loads", type=int, default=8, help="page loads")
    parser.add_argument("--close-samples", type=int, default=3, help="tab closes (rtcbot)")
    parser.add_argument("--close-cap", type=float, default=45.0, help="s to wait for a close")
    parser.add_argument("--out", help="also write the JSON to this file")
    parser.add_argument("--serve", choices=IMPLS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=8080, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    args.impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    unknown = set(args.impls) - set(IMPLS)
    if unknown:
        parser.error(f"unknown implementations {sorted(unknown)}; choose from {IMPLS}")
    report = asyncio.run(drive(args))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
