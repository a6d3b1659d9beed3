"""Video over WebRTC, Python to Python on loopback: delivered frame rate, loss, latency, CPU.

Usage::

    python bench/video_latency.py                  # 640x480 and 1280x720 at 30 fps, JSON out
    python bench/video_latency.py --seconds 5      # shorter measurement windows
    python bench/video_latency.py --sizes 640x480 --impls rtcbot,aiortc

Each implementation runs in its own child process (one after the other), which both sends and
receives: a 30 fps source puts synthetic frames whose index is drawn in the pixels (16
black/white columns, robust to compression) over a moving texture; the receiver reads the index
back. A table of send times (by index) gives each frame's latency; frames never delivered are
lost (a receiver that keeps only the newest frame counts skipped ones as lost: that is what a
viewer sees). CPU is the child process's CPU seconds per second of wall time, both peers
included.

* ``rtcbot``: this checkout -- ``conn.video.put_nowait(frame)`` / ``conn.video.subscribe()``.
* ``rtcbot_stock_jitter``: the same with aiortc's stock receive jitter buffer (shows what the
  marker-bit buffer saves).
* ``aiortc``: raw aiortc doing the same work -- its ``VideoStreamTrack`` with its default VP8
  encoder, frames converted with ``VideoFrame.from_ndarray`` / ``to_ndarray``.
* ``rtcbot025``: the original RTCBot 0.2.5 in ``bench/.venv-rtcbot025`` (made by
  ``bench/_venv.py``), skipped if that venv does not exist.

Targets (issue 3): at least 29 fps delivered, under 1 % lost, latency p50 at most 0.75x
RTCBot 0.2.5's, CPU at most RTCBot 0.2.5's.
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
IMPLS = ("rtcbot", "rtcbot_stock_jitter", "aiortc", "rtcbot025")
BITS = 16
FPS = 30.0
WARMUP_S = 2.0


# ------------------------------------------------------------------------------ frames


class Frames:
    """Pre-rendered moving texture; ``frame(i)`` stamps index ``i`` into a copy."""

    def __init__(self, width: int, height: int) -> None:
        rng = np.random.default_rng(1)
        coarse = rng.integers(40, 216, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8)
        texture = np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)
        self.backgrounds = [
            np.ascontiguousarray(np.roll(texture, 4 * k, axis=1)[:height, :width])
            for k in range(30)
        ]
        self.width, self.height = width, height
        self.column = width // BITS
        self.strip = height // 4

    def frame(self, index: int) -> np.ndarray:
        out = self.backgrounds[index % len(self.backgrounds)].copy()
        strip = out[: self.strip]
        for bit in range(BITS):
            value = 255 if (index >> bit) & 1 else 0
            strip[:, bit * self.column : (bit + 1) * self.column] = value
        return out

    def index(self, frame: np.ndarray) -> int:
        col, top = self.column, self.strip
        value = 0
        for bit in range(BITS):
            block = frame[
                top // 4 : 3 * top // 4, bit * col + col // 4 : (bit + 1) * col - col // 4
            ]
            if block.mean() > 128:
                value |= 1 << bit
        return value


class Meter:
    """Send-time table, receive times, and the CPU/wall clocks of the measurement window."""

    def __init__(self, frames: Frames, seconds: float) -> None:
        self.frames = frames
        self.seconds = seconds
        self.sent: dict[int, float] = {}
        self.received: dict[int, float] = {}
        self.window: tuple[float, float] | None = None
        self.cpu: tuple[float, float] | None = None
        self.done = asyncio.Event()

    def on_frame(self, frame: np.ndarray) -> None:
        now = time.perf_counter()
        index = self.frames.index(frame)
        if index in self.sent and index not in self.received:
            self.received[index] = now

    async def source(self, put) -> None:
        """Put frames at 30 fps for warm-up + window + 1 s of drain, recording send times."""
        start = time.perf_counter()
        total = int((WARMUP_S + self.seconds) * FPS)
        cpu0 = wall0 = None
        for i in range(total + int(FPS)):
            due = start + i / FPS
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if i == int(WARMUP_S * FPS):
                cpu0, wall0 = time.process_time(), time.perf_counter()
            if i == total:
                self.cpu = (cpu0, time.process_time())
                self.window = (wall0, time.perf_counter())
            frame = self.frames.frame(i)
            self.sent[i] = time.perf_counter()
            put(frame)
        self.done.set()

    def result(self) -> dict:
        first, last = int(WARMUP_S * FPS), int((WARMUP_S + self.seconds) * FPS)
        indices = range(first, last)
        latencies = [
            (self.received[i] - self.sent[i]) * 1000.0 for i in indices if i in self.received
        ]
        delivered = len(latencies)
        wall = self.window[1] - self.window[0]
        out = {
            "frames_sent": len(indices),
            "frames_delivered": delivered,
            "delivered_fps": delivered / wall,
            "loss_pct": 100.0 * (len(indices) - delivered) / len(indices),
            "cpu_s_per_s": (self.cpu[1] - self.cpu[0]) / wall,
        }
        if latencies:
            latencies.sort()
            out["latency_ms_p50"] = statistics.median(latencies)
            out["latency_ms_p99"] = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
            out["latency_ms_mean"] = statistics.fmean(latencies)
        return out


async def _drain(meter: Meter, get) -> None:
    while True:
        meter.on_frame(await get())


async def _run(meter: Meter, put, get) -> dict:
    reader = asyncio.create_task(_drain(meter, get))
    try:
        await meter.source(put)
    finally:
        reader.cancel()
    return meter.result()


# ------------------------------------------------------------------------------ implementations


async def run_rtcbot(meter: Meter, stock_jitter: bool) -> dict:
    from rtcbot import RTCConnection

    if stock_jitter:
        import rtcbot.connection._media as media

        media.install_jitter_buffer = lambda receiver, buffer: False
    a = RTCConnection(rtcConfiguration=[])
    b = RTCConnection(rtcConfiguration=[])
    a.video.put_nowait(meter.frames.frame(0))
    sub = b.video.subscribe()
    offer = await a.getLocalDescription()
    await a.setRemoteDescription(await b.getLocalDescription(offer))
    try:
        result = await _run(meter, a.video.put_nowait, sub.get)
        result["sender_stats"] = (await a.stats())["video"]["senders"][0]
        result["receiver_stats"] = (await b.stats())["video"]["receivers"][0]
        return result
    finally:
        await a.close()
        await b.close()


async def run_aiortc(meter: Meter) -> dict:
    from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack
    from av import VideoFrame

    latest: asyncio.Queue = asyncio.Queue(maxsize=1)

    class Track(VideoStreamTrack):
        async def recv(self):
            array = await latest.get()
            pts, time_base = await self.next_timestamp_now()
            frame = VideoFrame.from_ndarray(array, format="bgr24")
            frame.pts, frame.time_base = pts, time_base
            return frame

        async def next_timestamp_now(self):
            # wall-clock pts (the source paces itself), as a camera track would
            if not hasattr(self, "_t0"):
                self._t0 = time.perf_counter()
            from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE

            return int((time.perf_counter() - self._t0) * VIDEO_CLOCK_RATE), VIDEO_TIME_BASE

    def put(array):
        if latest.full():
            latest.get_nowait()
        latest.put_nowait(array)

    received: asyncio.Queue = asyncio.Queue()
    config = RTCConfiguration(iceServers=[])
    pa, pb = RTCPeerConnection(config), RTCPeerConnection(config)
    tasks = []

    @pb.on("track")
    def on_track(track):
        async def read():
            while True:
                frame = await track.recv()
                received.put_nowait(frame.to_ndarray(format="bgr24"))

        tasks.append(asyncio.ensure_future(read()))

    put(meter.frames.frame(0))
    pa.addTrack(Track())
    await pa.setLocalDescription(await pa.createOffer())
    await pb.setRemoteDescription(pa.localDescription)
    await pb.setLocalDescription(await pb.createAnswer())
    await pa.setRemoteDescription(pb.localDescription)
    try:
        return await _run(meter, put, received.get)
    finally:
        for t in tasks:
            t.cancel()
        await pa.close()
        await pb.close()


async def run_rtcbot025(meter: Meter) -> dict:
    from aiortc import RTCConfiguration

    from rtcbot import RTCConnection
    from rtcbot.subscriptions import MostRecentSubscription

    a = RTCConnection(rtcConfiguration=RTCConfiguration(iceServers=[]))
    b = RTCConnection(rtcConfiguration=RTCConfiguration(iceServers=[]))
    source = MostRecentSubscription()
    source.put_nowait(meter.frames.frame(0))
    a.video.putSubscription(source)
    sub = b.video.subscribe()
    offer = await a.getLocalDescription()
    await a.setRemoteDescription(await b.getLocalDescription(offer))
    try:
        return await _run(meter, source.put_nowait, sub.get)
    finally:
        await a.close()
        await b.close()


async def run_impl(impl: str, width: int, height: int, seconds: float) -> dict:
    meter = Meter(Frames(width, height), seconds)
    if impl in ("rtcbot", "rtcbot_stock_jitter"):
        result = await run_rtcbot(meter, impl == "rtcbot_stock_jitter")
    elif impl == "aiortc":
        result = await run_aiortc(meter)
    elif impl == "rtcbot025":
        result = await run_rtcbot025(meter)
    else:
        raise SystemExit(f"unknown --impl {impl!r}")
    result["impl"] = impl
    return result


# ------------------------------------------------------------------------------ orchestrator


def _child(impl: str, size: str, seconds: float) -> dict:
    python = sys.executable
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    if impl == "rtcbot025":
        python = str(BENCH_DIR / ".venv-rtcbot025" / "bin" / "python")
        if not Path(python).exists():
            return {"impl": impl, "skipped": "bench/.venv-rtcbot025 does not exist"}
        env.pop("PYTHONPATH", None)
    else:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_DIR / "src"), env.get("PYTHONPATH")) if p
        )
    # -P: do not put bench/ first on the child's path (bench/serial.py would shadow pyserial,
    # which RTCBot 0.2.5 imports).
    cmd = [
        python,
        "-P",
        str(Path(__file__).resolve()),
        "--impl",
        impl,
        "--sizes",
        size,
        "--seconds",
        str(seconds),
    ]
    print(f"== {impl} {size}", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=BENCH_DIR,
            timeout=seconds * 4 + 60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"impl": impl, "error": "timed out"}
    try:
        return json.loads(proc.stdout)
    except ValueError:
        return {
            "impl": impl,
            "error": f"exit code {proc.returncode}",
            "stdout_tail": proc.stdout[-1000:],
        }


def _ratio(a, b):
    try:
        return round(a / b, 3)
    except (TypeError, ZeroDivisionError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--impl", help="run one implementation in this process")
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--sizes", default="640x480,1280x720")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    sizes = args.sizes.split(",")

    if args.impl:
        width, height = (int(v) for v in sizes[0].split("x"))
        doc = asyncio.run(run_impl(args.impl, width, height, args.seconds))
        print(json.dumps(doc, default=str))
        return 0

    doc: dict = {
        "benchmark": "video_latency",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "fps": FPS,
        "seconds": args.seconds,
        "results": {},
    }
    for size in sizes:
        runs = {impl: _child(impl, size, args.seconds) for impl in args.impls.split(",")}
        ours, raw, old = runs.get("rtcbot", {}), runs.get("aiortc", {}), runs.get("rtcbot025", {})
        runs["ratios"] = {
            "latency_p50_vs_rtcbot025": _ratio(
                ours.get("latency_ms_p50"), old.get("latency_ms_p50")
            ),
            "latency_p50_vs_aiortc": _ratio(ours.get("latency_ms_p50"), raw.get("latency_ms_p50")),
            "latency_p99_vs_rtcbot025": _ratio(
                ours.get("latency_ms_p99"), old.get("latency_ms_p99")
            ),
            "cpu_vs_rtcbot025": _ratio(ours.get("cpu_s_per_s"), old.get("cpu_s_per_s")),
            "cpu_vs_aiortc": _ratio(ours.get("cpu_s_per_s"), raw.get("cpu_s_per_s")),
            "fps_vs_aiortc": _ratio(ours.get("delivered_fps"), raw.get("delivered_fps")),
        }
        runs["targets"] = {
            "fps_at_least_29": (ours.get("delivered_fps") or 0) >= 29,
            "loss_under_1pct": (ours.get("loss_pct", 100) < 1),
            "latency_p50_at_most_0.75x_rtcbot025": (
                runs["ratios"]["latency_p50_vs_rtcbot025"] is not None
                and runs["ratios"]["latency_p50_vs_rtcbot025"] <= 0.75
            ),
            "cpu_at_most_rtcbot025": (
                runs["ratios"]["cpu_vs_rtcbot025"] is not None
                and runs["ratios"]["cpu_vs_rtcbot025"] <= 1.0
            ),
        }
        doc["results"][size] = runs
    text = json.dumps(doc, indent=1, default=str)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
