"""One camera, many viewers: the robot process's CPU with 1, 2, 4 and 8 viewers.

Usage::

    python bench/fanout.py                       # VP8 and H.264, 1/2/4/8 viewers, JSON out
    python bench/fanout.py --seconds 5 --viewers 1,4 --codecs VP8 --impls shared,aiortc

The robot runs in a child process of its own and serves ``POST /connect`` on 127.0.0.1, like a
robot that browsers connect to; each viewer is a Python receiver in a process of its own (raw
aiortc, with rtcbot's low-latency jitter buffer, the same for every implementation) that offers
to receive one video track with the codec asked for. The robot sends one 640x480, 30 fps source
(a moving texture with the frame index in 16 black/white columns) to every connection. Only the
robot's CPU is measured: ``time.process_time()`` over the measurement window, in CPU seconds per
second. Each viewer reads the index from the luma plane of every decoded frame; latency is from
the robot putting the frame to the viewer decoding it (both on the machine's monotonic clock).

Implementations (robot side):

* ``shared``: this checkout, every connection ``putSubscription(camera.subscribe())`` -- the
  connections share one encoder automatically.
* ``per_viewer``: the same program with ``rtcbot.media.set_encoder_sharing(False)``: one
  encode per connection (what aiortc and RTCBot 0.2.5 do).
* ``aiortc``: raw aiortc, one ``VideoStreamTrack`` per connection fed by the same frames (its
  sender encodes for each connection; VP8 only, with aiortc's own settings).
* ``rtcbot025``: the original RTCBot 0.2.5 from ``bench/.venv-rtcbot025`` (``bench/_venv.py``),
  skipped if that venv is missing (VP8 only).

Goal (issue 7): with ``shared``, 4 viewers cost at most 1.5x the robot CPU of one viewer (RTCBot
0.2.5: about 4x), with per-viewer delivered fps and latency no worse than a single viewer's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from video_latency import BITS, Frames  # noqa: E402

IMPLS = ("shared", "per_viewer", "aiortc", "rtcbot025")
FPS = 30.0
WIDTH, HEIGHT = 640, 480
WARMUP_S = 3.0


def read_index(frame) -> int:
    """The index drawn by ``Frames`` from a decoded ``av.VideoFrame``'s luma plane."""
    plane = frame.planes[0]
    luma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: frame.height]
    column = frame.width // BITS
    strip = frame.height // 4
    band = luma[strip // 4 : 3 * strip // 4]
    value = 0
    for bit in range(BITS):
        cell = band[:, bit * column + column // 4 : (bit + 1) * column - column // 4]
        if cell.mean() > 128:
            value |= 1 << bit
    return value


# ------------------------------------------------------------------------------ robot side


class Schedule:
    """The 30 fps source: waits for the viewers, then warm-up, window, drain; records when each
    frame was put and the process's CPU time over the window."""

    def __init__(self, viewers: int, seconds: float) -> None:
        self.viewers = viewers
        self.seconds = seconds
        self.frames = Frames(WIDTH, HEIGHT)
        self.connected = 0
        self.all_connected = asyncio.Event()
        self.sent: dict[int, float] = {}
        self.result: dict = {}

    def viewer_joined(self) -> None:
        self.connected += 1
        if self.connected >= self.viewers:
            self.all_connected.set()

    async def run(self, put) -> None:
        put(self.frames.frame(0))
        async with asyncio.timeout(60):
            await self.all_connected.wait()
        start = time.monotonic()
        first = int(WARMUP_S * FPS)
        last = first + int(self.seconds * FPS)
        cpu0 = wall0 = 0.0
        for i in range(1, last + int(FPS)):
            delay = start + i / FPS - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if i == first:
                cpu0, wall0 = time.process_time(), time.monotonic()
            if i == last:
                cpu = time.process_time() - cpu0
                wall = time.monotonic() - wall0
                self.result = {"cpu_s_per_s": cpu / wall, "window": [first, last]}
            self.sent[i] = time.monotonic()
            put(self.frames.frame(i))
        self.result["sent"] = {str(k): v for k, v in self.sent.items() if first <= k < last}


async def robot_rtcbot(schedule: Schedule, codec: str, shared: bool, connect_route) -> None:
    from rtcbot import RTCConnection
    from rtcbot.base.base import SubscriptionProducer
    from rtcbot.base.subscriptions import MostRecentSubscription
    from rtcbot.media import VideoEncoderSettings, set_encoder_sharing

    set_encoder_sharing(shared)
    camera = SubscriptionProducer()
    settings = VideoEncoderSettings(codec=codec)
    conns = []

    async def connect(offer):
        conn = RTCConnection(rtcConfiguration=[])
        conns.append(conn)
        conn.video.settings = settings
        conn.video.putSubscription(camera.subscribe(MostRecentSubscription()))
        answer = await conn.getLocalDescription(offer)
        schedule.viewer_joined()
        return answer

    async with connect_route(connect):
        await schedule.run(camera.put_nowait)
        for conn in conns:
            conn.close()
        for conn in conns:
            await conn


async def robot_aiortc(schedule: Schedule, connect_route) -> None:
    import av
    from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

    tracks = []

    class Track(VideoStreamTrack):
        def __init__(self) -> None:
            super().__init__()
            self.latest = None
            self.ready = asyncio.Event()

        async def recv(self):
            await self.ready.wait()
            self.ready.clear()
            frame = av.VideoFrame.from_ndarray(self.latest, format="bgr24")
            frame.pts, frame.time_base = await self.next_timestamp()
            return frame

    def put(array):
        for track in tracks:
            track.latest = array
            track.ready.set()

    pcs = []

    async def connect(offer):
        pc = RTCPeerConnection()
        pcs.append(pc)
        await pc.setRemoteDescription(RTCSessionDescription(**offer))
        track = Track()
        tracks.append(track)
        pc.addTrack(track)
        await pc.setLocalDescription(await pc.createAnswer())
        schedule.viewer_joined()
        return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}

    async with connect_route(connect):
        await schedule.run(put)
        for pc in pcs:
            await pc.close()


async def robot_rtcbot025(schedule: Schedule, connect_route) -> None:
    from aiortc import RTCConfiguration

    from rtcbot import RTCConnection
    from rtcbot.subscriptions import MostRecentSubscription

    subscriptions = []
    conns = []

    def put(array):
        for sub in subscriptions:
            sub.put_nowait(array)

    async def connect(offer):
        conn = RTCConnection(rtcConfiguration=RTCConfiguration(iceServers=[]))
        conns.append(conn)
        sub = MostRecentSubscription()
        sub.put_nowait(schedule.frames.frame(0))
        subscriptions.append(sub)
        conn.video.putSubscription(sub)
        answer = await conn.getLocalDescription(offer)
        schedule.viewer_joined()
        return answer

    async with connect_route(connect):
        await schedule.run(put)
        for conn in conns:
            await conn.close()


def _route_maker():
    import contextlib

    from aiohttp import web

    @contextlib.asynccontextmanager
    async def route(connect):
        async def handler(request):
            return web.json_response(await connect(await request.json()))

        app = web.Application()
        app.add_routes([web.post("/connect", handler)])
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print("PORT", runner.addresses[0][1], flush=True)
        try:
            yield
        finally:
            await runner.cleanup()

    return route


async def robot_main(impl: str, codec: str, viewers: int, seconds: float) -> None:
    schedule = Schedule(viewers, seconds)
    route = _route_maker()
    if impl in ("shared", "per_viewer"):
        await robot_rtcbot(schedule, codec, impl == "shared", route)
    elif impl == "aiortc":
        await robot_aiortc(schedule, route)
    elif impl == "rtcbot025":
        await robot_rtcbot025(schedule, route)
    else:
        raise SystemExit(f"unknown impl {impl!r}")
    print("RESULT", json.dumps(schedule.result), flush=True)


# ------------------------------------------------------------------------------ viewer side


async def viewer_main(port: int, codec: str, limit: float) -> None:
    import aiohttp
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    from rtcbot.connection._media_hooks import install_jitter_buffer
    from rtcbot.media import MarkerJitterBuffer

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.createDataChannel("default")  # as rtcbot.js does (an rtcbot peer expects one)
    transceiver = pc.addTransceiver("video", direction="recvonly")
    transceiver.setCodecPreferences(
        [c for c in RTCRtpReceiver.getCapabilities("video").codecs if c.name in (codec, "rtx")]
    )
    install_jitter_buffer(transceiver.receiver, MarkerJitterBuffer())
    received: dict[int, float] = {}
    done = asyncio.Event()
    readers = []

    @pc.on("track")
    def on_track(track):
        async def read():
            try:
                while True:
                    frame = await track.recv()
                    now = time.monotonic()
                    received.setdefault(read_index(frame), now)
            except MediaStreamError:
                pass
            finally:
                done.set()

        readers.append(asyncio.ensure_future(read()))

    await pc.setLocalDescription(await pc.createOffer())
    offer = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{port}/connect", json=offer) as response:
            answer = await response.json()
    await pc.setRemoteDescription(RTCSessionDescription(**answer))
    try:
        async with asyncio.timeout(limit):
            await done.wait()
    except TimeoutError:
        pass
    await pc.close()
    print("RESULT", json.dumps({str(k): v for k, v in received.items()}), flush=True)


# ------------------------------------------------------------------------------ orchestrator


def _env(impl: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if impl != "rtcbot025":
        env["PYTHONPATH"] = str(REPO_DIR / "src")
    return env


def _python(impl: str) -> str | None:
    if impl != "rtcbot025":
        return sys.executable
    from _venv import VENV_DIR, venv_python

    python = venv_python(VENV_DIR)
    return str(python) if python.exists() else None


def _result(text: str) -> dict:
    for line in text.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"no result in: {text[-2000:]}")


def run_case(impl: str, codec: str, viewers: int, seconds: float) -> dict | None:
    python = _python(impl)
    if python is None:
        return None
    me = str(Path(__file__).resolve())
    robot = subprocess.Popen(
        [python, me, "--role", "robot", "--impl", impl, "--codecs", codec,
         "--viewers", str(viewers), "--seconds", str(seconds)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=BENCH_DIR,
        env=_env(impl),
    )
    procs = []
    try:
        line = robot.stdout.readline()
        if not line.startswith("PORT "):
            robot.kill()
            raise RuntimeError(f"robot did not start: {line}{robot.stderr.read()[-2000:]}")
        port = int(line.split()[1])
        limit = WARMUP_S + seconds + 30
        for _ in range(viewers):
            procs.append(subprocess.Popen(
                [sys.executable, me, "--role", "viewer", "--port", str(port), "--codecs", codec,
                 "--seconds", str(limit)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=BENCH_DIR,
                env=_env("shared"),
            ))
        out, err = robot.communicate(timeout=limit + 30)
        robot_result = _result(out + err)
        seen = []
        for proc in procs:
            v_out, v_err = proc.communicate(timeout=60)
            seen.append(_result(v_out + v_err))
    finally:
        for proc in [robot, *procs]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    first, last = robot_result["window"]
    sent = {int(k): v for k, v in robot_result["sent"].items()}
    span = (last - first) / FPS
    per_viewer = []
    for received in seen:
        got = {int(k): v for k, v in received.items()}
        latencies = sorted((got[i] - sent[i]) * 1000 for i in sent if i in got)
        delivered = len(latencies)
        per_viewer.append({
            "fps": delivered / span,
            "lost_pct": 100.0 * (len(sent) - delivered) / len(sent),
            "latency_p50_ms": statistics.median(latencies) if latencies else None,
            "latency_p99_ms": latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
        })
    p50s = [v["latency_p50_ms"] for v in per_viewer if v["latency_p50_ms"] is not None]
    return {
        "impl": impl,
        "codec": codec,
        "viewers": viewers,
        "robot_cpu_s_per_s": round(robot_result["cpu_s_per_s"], 3),
        "fps_min": round(min(v["fps"] for v in per_viewer), 2),
        "lost_pct_max": round(max(v["lost_pct"] for v in per_viewer), 2),
        "latency_p50_ms_median": round(statistics.median(p50s), 1) if p50s else None,
        "latency_p99_ms_max": round(max(v["latency_p99_ms"] or 0 for v in per_viewer), 1),
        "per_viewer": [{k: (round(x, 2) if isinstance(x, float) else x) for k, x in v.items()}
                       for v in per_viewer],
    }


def _ratio(a, b):
    return None if a is None or not b else round(a / b, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("main", "robot", "viewer"), default="main")
    parser.add_argument("--impl", default="shared")
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--codecs", default="VP8,H264")
    parser.add_argument("--viewers", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.role == "robot":
        asyncio.run(robot_main(args.impl, args.codecs, int(args.viewers), args.seconds))
        return 0
    if args.role == "viewer":
        asyncio.run(viewer_main(args.port, args.codecs, args.seconds))
        return 0
    counts = [int(n) for n in args.viewers.split(",")]
    runs = []
    for codec in args.codecs.split(","):
        for impl in args.impls.split(","):
            if codec != "VP8" and impl in ("aiortc", "rtcbot025"):
                continue
            for n in counts:
                result = run_case(impl, codec, n, args.seconds)
                if result is None:
                    print(f"skipped {impl}: no bench/.venv-rtcbot025", file=sys.stderr)
                    break
                print(json.dumps({k: v for k, v in result.items() if k != "per_viewer"}),
                      file=sys.stderr)
                runs.append(result)
    # Each figure as a ratio against a baseline of the same run: the same implementation with
    # one viewer (CPU, fps, latency), and the shared encoder against one encode per viewer.
    summary = {}
    for run in runs:
        one = next((r for r in runs if r["impl"] == run["impl"] and r["codec"] == run["codec"]
                    and r["viewers"] == 1), None)
        per_viewer = next((r for r in runs if r["impl"] == "per_viewer"
                           and r["codec"] == run["codec"] and r["viewers"] == run["viewers"]),
                          None)
        key = f"{run['codec']} {run['impl']} x{run['viewers']}"
        summary[key] = {
            "robot_cpu_s_per_s": run["robot_cpu_s_per_s"],
            "cpu_vs_1_viewer": _ratio(run["robot_cpu_s_per_s"], one and one["robot_cpu_s_per_s"]),
            "cpu_vs_per_viewer_encode": _ratio(
                run["robot_cpu_s_per_s"], per_viewer and per_viewer["robot_cpu_s_per_s"]),
            "fps_min": run["fps_min"],
            "fps_vs_1_viewer": _ratio(run["fps_min"], one and one["fps_min"]),
            "lost_pct_max": run["lost_pct_max"],
            "latency_p50_ms": run["latency_p50_ms_median"],
            "latency_p50_vs_1_viewer": _ratio(
                run["latency_p50_ms_median"], one and one["latency_p50_ms_median"]),
            "latency_p99_ms_max": run["latency_p99_ms_max"],
        }
    out = {
        "benchmark": "fanout",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "source": f"{WIDTH}x{HEIGHT} at {FPS:g} fps",
        "seconds": args.seconds,
        "summary": summary,
        "runs": runs,
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
