"""Benchmark of reaching a robot beyond the LAN: the signalling relay and a TURN relay, each
against the direct path measured in the same run.

Usage::

    python bench/relay.py            # full run (about 40 s), JSON on stdout
    python bench/relay.py --quick    # smoke run
    python bench/relay.py --out bench/results/relay.json

Figures (one process, loopback; coturn from Debian started on 127.0.0.1 for the TURN figures):

* ``connect``: time from a new client connection to its default channel open, median ms:
  through the relay (``connect_to_robot`` -> relay -> ``connect_robot``) against the robot's
  own ``POST /connect`` (``add_rtcbot_routes``). Ratio relay/direct.
* ``round_trip``: a small JSON message echoed by the peer, p50/p99 ms, through coturn
  (relay-only ICE on both peers) against a direct loopback connection. Ratio turn/direct.
* ``video_latency``: 320x240 test-pattern frames at 30 fps, from ``put_nowait`` to the decoded
  frame read on the other side (frame index read from the pixels), p50/p90 ms, through coturn
  against direct. Ratio turn/direct.
* ``signalling``: offers answered per second with 100 concurrent clients, each sending offers
  one after another, through the relay to a robot that answers at once (the relay's own cost)
  against an aiohttp endpoint answering the same POST itself (the HTTP floor). Ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "src"))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from rtcbot import RTCConnection  # noqa: E402
from rtcbot.devices.sources import PatternRenderer, TestPattern  # noqa: E402
from rtcbot.relay import connect_robot, connect_to_robot, create_relay_app  # noqa: E402
from rtcbot.testing.connection import connect  # noqa: E402
from rtcbot.web import add_rtcbot_routes  # noqa: E402
from rtcbot.websocket import Websocket  # noqa: E402

FULL = {"connect_reps": 15, "rt_n": 400, "video_frames": 150, "clients": 100, "offers": 10}
QUICK = {"connect_reps": 4, "rt_n": 100, "video_frames": 60, "clients": 100, "offers": 3}
SECRET, TOKEN = "bench-secret", "bench-token"
FAKE_SDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 x\r\n"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


async def _site(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def _echo(conn: RTCConnection) -> None:
    conn.subscribe(conn.put_nowait)


# ---------------------------------------------------------------------------- connect


async def connect_times(sizes: dict) -> dict:
    direct_app = web.Application()
    add_rtcbot_routes(direct_app, _echo, token=TOKEN, rtc_configuration=[])
    direct_runner, direct_url = await _site(direct_app)
    relay_runner, relay_url = await _site(create_relay_app(SECRET, token=TOKEN, ice=[]))
    robot = connect_robot(relay_url, "bench", SECRET, _echo, rtc_configuration=[])
    await robot.onReady()

    async def direct() -> float:
        t0 = time.perf_counter()
        conn = RTCConnection(rtcConfiguration=[])
        offer = await conn.getLocalDescription()
        async with aiohttp.ClientSession() as s, s.post(
            direct_url + "/connect", data=json.dumps(offer),
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as resp:
            answer = await resp.json()
        await conn.setRemoteDescription(answer)
        await conn.onReady()
        elapsed = time.perf_counter() - t0
        await conn.close()
        return elapsed

    async def relayed() -> float:
        t0 = time.perf_counter()
        conn = RTCConnection(rtcConfiguration=[])
        await connect_to_robot(relay_url, "bench", conn, token=TOKEN)
        await conn.onReady()
        elapsed = time.perf_counter() - t0
        await conn.close()
        return elapsed

    samples: dict[str, list[float]] = {"direct": [], "relay": []}
    for i in range(sizes["connect_reps"]):
        order = [("direct", direct), ("relay", relayed)]
        for name, fn in order if i % 2 == 0 else order[::-1]:
            async with asyncio.timeout(30):
                samples[name].append(await fn() * 1000)
    robot.close()
    await robot
    await relay_runner.cleanup()
    await direct_runner.cleanup()
    result = {k: {"median_ms": round(_pct(v, 0.5), 2), "n": len(v)} for k, v in samples.items()}
    result["ratio_relay_vs_direct"] = _ratio(result["relay"]["median_ms"],
                                             result["direct"]["median_ms"])
    return result


# ---------------------------------------------------------------------------- TURN


class Coturn:
    """Debian's coturn on 127.0.0.1 (loopback peers allowed), long-term credentials."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="rtcbot-bench-turn-"))
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            ["turnserver", "-n", "--lt-cred-mech", "--user=bench:bench", "--realm=bench",
             "--no-tls", "--no-dtls", "--no-cli", "--no-rfc5780", "--fingerprint",
             "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--allow-loopback-peers",
             f"--listening-port={self.port}", "--min-port=50000", "--max-port=50400",
             f"--userdb={self.tmp / 'db'}", f"--pidfile={self.tmp / 'pid'}",
             f"--log-file={self.tmp / 'log'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        request = struct.pack("!HHI12s", 1, 0, 0x2112A442, os.urandom(12))
        deadline = time.monotonic() + 10
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            while time.monotonic() < deadline:
                s.sendto(request, ("127.0.0.1", self.port))
                try:
                    s.recvfrom(2048)
                    return
                except OSError:
                    pass
        raise RuntimeError("coturn did not start")

    def configuration(self) -> dict:
        return {"iceServers": [{"urls": f"turn:127.0.0.1:{self.port}", "username": "bench",
                                "credential": "bench"}], "iceTransportPolicy": "relay"}

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.tmp, ignore_errors=True)


async def _pair(config) -> tuple[RTCConnection, RTCConnection, object]:
    from rtcbot.ice import load_ice_config

    def make() -> RTCConnection:
        if config is None:
            return RTCConnection(rtcConfiguration=[])
        return RTCConnection(rtcConfiguration=load_ice_config(config, environ={})
                             .rtc_configuration())

    a, b = make(), make()
    sub = b.video.subscribe()
    a.video.put_nowait(PatternRenderer(320, 240).render(0))
    _echo(b)
    await connect(a, b, timeout=20)
    return a, b, sub


async def _round_trips(a: RTCConnection, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        a.put_nowait({"i": i})
        reply = await a.get()
        out.append((time.perf_counter() - t0) * 1000)
        assert reply == {"i": i}
    return out


async def _video(a: RTCConnection, sub, frames: int) -> list[float]:
    renderer = PatternRenderer(320, 240)
    sent: dict[int, float] = {}
    latencies: list[float] = []

    async def send() -> None:
        for i in range(1, frames + 60):
            frame = renderer.render(i)
            sent[i] = time.perf_counter()
            a.video.put_nowait(frame)
            await asyncio.sleep(1 / 30)

    sender = asyncio.ensure_future(send())
    try:
        async with asyncio.timeout(frames / 30 + 20):
            while len(latencies) < frames:
                frame = await sub.get()
                now = time.perf_counter()
                index = TestPattern.read_index(frame)
                if index in sent and index > 15:  # skip the start (encoder ramp-up)
                    latencies.append((now - sent[index]) * 1000)
    finally:
        sender.cancel()
    return latencies


async def turn_figures(sizes: dict) -> dict:
    if shutil.which("turnserver") is None:
        return {"skipped": "turnserver (coturn) is not installed"}
    coturn = Coturn()
    coturn.start()
    try:
        result: dict = {"round_trip": {}, "video_latency": {}, "connect_ms": {}}
        for name, config in (("direct", None), ("turn", coturn.configuration())):
            t0 = time.perf_counter()
            a, b, sub = await _pair(config)
            result["connect_ms"][name] = round((time.perf_counter() - t0) * 1000, 1)
            await _round_trips(a, 20)  # warm-up
            rtt = await _round_trips(a, sizes["rt_n"])
            video = await _video(a, sub, sizes["video_frames"])
            result["round_trip"][name] = {"p50_ms": round(_pct(rtt, 0.5), 3),
                                          "p99_ms": round(_pct(rtt, 0.99), 3), "n": len(rtt)}
            result["video_latency"][name] = {"p50_ms": round(_pct(video, 0.5), 2),
                                             "p90_ms": round(_pct(video, 0.9), 2),
                                             "n": len(video)}
            await a.close()
            await b.close()
        for key, q in (("round_trip", "p50_ms"), ("video_latency", "p50_ms")):
            result[key]["ratio_turn_vs_direct"] = _ratio(result[key]["turn"][q],
                                                         result[key]["direct"][q])
        result["connect_ms"]["ratio_turn_vs_direct"] = _ratio(result["connect_ms"]["turn"],
                                                              result["connect_ms"]["direct"])
        return result
    finally:
        coturn.stop()


# ---------------------------------------------------------------------------- signalling


async def _fake_robot(relay_url: str) -> Websocket:
    """A robot that answers every offer at once (the relay's cost alone is measured)."""
    ws = Websocket(relay_url + "/ws")
    ws.put_nowait({"type": "register", "name": "fast", "secret": SECRET})
    reply = await ws.get()
    assert reply["type"] == "registered", reply
    ws.subscribe(lambda m: ws.put_nowait(
        {"type": "answer", "id": m["id"], "answer": {"type": "answer", "sdp": FAKE_SDP}}))
    return ws


async def _load(url: str, clients: int, offers: int) -> float:
    offer = json.dumps({"type": "offer", "sdp": FAKE_SDP})
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            for _ in range(offers):
                async with session.post(url, data=offer, headers=headers) as resp:
                    assert resp.status == 200, await resp.text()
                    await resp.read()

        await asyncio.gather(*(client() for _ in range(2)))  # warm the connections up
        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return clients * offers / (time.perf_counter() - t0)


async def signalling(sizes: dict) -> dict:
    clients, offers = sizes["clients"], sizes["offers"]
    relay_runner, relay_url = await _site(
        create_relay_app(SECRET, token=TOKEN, ice=[], max_pending=clients + 10))
    robot = await _fake_robot(relay_url)

    async def plain(request: web.Request) -> web.Response:
        await request.json()
        return web.json_response({"type": "answer", "sdp": FAKE_SDP})

    plain_app = web.Application()
    plain_app.router.add_post("/connect", plain)
    plain_runner, plain_url = await _site(plain_app)
    best = {"relay": 0.0, "plain_http": 0.0}
    for rep in range(3):
        order = [("relay", relay_url + "/robots/fast/connect"), ("plain_http",
                                                                   plain_url + "/connect")]
        for name, url in order if rep % 2 == 0 else order[::-1]:
            async with asyncio.timeout(120):
                best[name] = max(best[name], await _load(url, clients, offers))
    robot.close()
    await robot
    await relay_runner.cleanup()
    await plain_runner.cleanup()
    return {"clients": clients, "offers_per_client": offers,
            "relay_requests_per_s": round(best["relay"]),
            "plain_http_requests_per_s": round(best["plain_http"]),
            "ratio_relay_vs_plain_http": _ratio(best["relay"], best["plain_http"])}


async def main(sizes: dict) -> dict:
    return {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "connect": await connect_times(sizes),
        "turn": await turn_figures(sizes),
        "signalling": await signalling(sizes),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = asyncio.run(main(QUICK if args.quick else FULL))
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
