"""Benchmark of rtcbot's RTCConnection data path against raw aiortc (same process, same run)
and RTCBot 0.2.5 (its own virtualenv, in a subprocess).

Usage::

    python bench/connection_data.py           # full run (about 40 s), JSON on stdout
    python bench/connection_data.py --quick   # smoke run (about 10 s)
    python bench/connection_data.py --out bench/results/connection_data.json

Figures (two peers in one process over loopback, no ICE server):

* ``round_trip``: a small JSON message sent by A, echoed by B, received by A. p50 and p99 in
  ms; rtcbot and raw aiortc measured in alternating batches on two live pairs. Target: rtcbot
  within 1.1x of raw aiortc.
* ``small_messages``: small JSON messages per second, A to B (best of the repeats). Target: at
  least raw aiortc's.
* ``bulk_16k``: 16 KB binary messages in MB/s with backpressure (rtcbot ``await put()``, raw
  aiortc the same high/low water marks on ``bufferedAmount``). Target: at least raw aiortc's.
* ``connect``: time from creating two peers to both default channels open, median, in ms.
  Target: under 100 ms.
* ``vanished_peer``: time from killing a peer process (``python -m rtcbot.testing.connection``)
  to ``onClose``. Target: under 3 s. Raw aiortc has no heartbeat: it is measured once with a cap.

Raw aiortc does the same work as rtcbot: ``json.dumps`` before sending, ``json.loads`` on
receipt. RTCBot 0.2.5's round trip is measured if ``bench/.venv-rtcbot025`` exists (create it
with ``python bench/_venv.py``).
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
import textwrap
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(REPO_DIR / "src"))

from aiortc import RTCConfiguration, RTCPeerConnection  # noqa: E402

from rtcbot import RTCConnection  # noqa: E402
from rtcbot.connection import _datachannel  # noqa: E402
from rtcbot.testing.connection import connect  # noqa: E402

FULL = {"rt_batches": 10, "rt_batch": 200, "rt_warmup": 200, "small_n": 20_000,
        "small_repeats": 5, "bulk_n": 1_000, "bulk_repeats": 4, "connect_reps": 15,
        "vanish_reps": 3, "raw_vanish_cap_s": 6.0}
QUICK = {"rt_batches": 4, "rt_batch": 100, "rt_warmup": 50, "small_n": 5_000,
         "small_repeats": 2, "bulk_n": 300, "bulk_repeats": 2, "connect_reps": 5,
         "vanish_reps": 1, "raw_vanish_cap_s": 0.0}
STEP_TIMEOUT_S = 60.0
SMALL_MESSAGE = {"type": "gamepad", "axis": 3, "value": 0.25, "i": 0}


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


# ---------------------------------------------------------------------------------- raw aiortc


class RawPair:
    """Two raw aiortc peers with a "default" channel; A sends JSON, B's behaviour is set per
    figure by ``on_b``."""

    def __init__(self) -> None:
        self.a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.ca = None
        self.cb = None
        self.on_a = lambda value: None
        self.on_b = lambda value: None

    async def connect(self) -> None:
        self.ca = self.a.createDataChannel("default")
        opened = asyncio.get_running_loop().create_future()
        got_b = asyncio.get_running_loop().create_future()

        def on_channel(channel) -> None:
            self.cb = channel
            channel.on("message", lambda m: self.on_b(m))
            got_b.set_result(None)

        self.b.on("datachannel", on_channel)
        self.ca.on("open", lambda: opened.done() or opened.set_result(None))
        self.ca.on("message", lambda m: self.on_a(m))
        await self.a.setLocalDescription(await self.a.createOffer())
        await self.b.setRemoteDescription(self.a.localDescription)
        await self.b.setLocalDescription(await self.b.createAnswer())
        await self.a.setRemoteDescription(self.b.localDescription)
        await asyncio.gather(opened, got_b)

    async def close(self) -> None:
        await self.a.close()
        await self.b.close()


# ---------------------------------------------------------------------------------- figures


async def round_trip(sizes: dict) -> dict:
    raw = RawPair()
    await raw.connect()
    ra, rb = RTCConnection(rtcConfiguration=[]), RTCConnection(rtcConfiguration=[])
    await connect(ra, rb)

    # rtcbot: B echoes with a plain callback; A reads with get()
    rb.subscribe(rb.put_nowait)

    async def rtcbot_once(i: int) -> float:
        msg = dict(SMALL_MESSAGE, i=i)
        t0 = time.perf_counter()
        ra.put_nowait(msg)
        reply = await ra.get()
        t1 = time.perf_counter()
        assert reply["i"] == i
        return t1 - t0

    # raw aiortc: the same work (dumps, loads, echo, dumps, loads)
    replies: asyncio.Queue = asyncio.Queue()
    raw.on_b = lambda m: raw.cb.send(json.dumps(json.loads(m)))
    raw.on_a = lambda m: replies.put_nowait(json.loads(m))

    async def raw_once(i: int) -> float:
        msg = dict(SMALL_MESSAGE, i=i)
        t0 = time.perf_counter()
        raw.ca.send(json.dumps(msg))
        reply = await replies.get()
        t1 = time.perf_counter()
        assert reply["i"] == i
        return t1 - t0

    samples: dict[str, list[float]] = {"rtcbot": [], "raw_aiortc": []}
    for i in range(sizes["rt_warmup"]):
        await rtcbot_once(i)
        await raw_once(i)
    for batch in range(sizes["rt_batches"]):
        order = [("rtcbot", rtcbot_once), ("raw_aiortc", raw_once)]
        if batch % 2:
            order.reverse()
        for name, once in order:
            for i in range(sizes["rt_batch"]):
                samples[name].append(await once(i))
    await raw.close()
    await ra.close()
    await rb.close()
    result: dict = {}
    for name, values in samples.items():
        ms = [v * 1000 for v in values]
        result[name] = {"p50_ms": round(_percentile(ms, 0.5), 4),
                        "p99_ms": round(_percentile(ms, 0.99), 4), "n": len(ms)}
    return result


async def small_messages(sizes: dict) -> dict:
    n = sizes["small_n"]
    best = {"rtcbot": 0.0, "raw_aiortc": 0.0}
    for rep in range(sizes["small_repeats"]):
        for name in (("rtcbot", "raw_aiortc") if rep % 2 == 0 else ("raw_aiortc", "rtcbot")):
            rate = await (_small_rtcbot(n) if name == "rtcbot" else _small_raw(n))
            best[name] = max(best[name], rate)
    return {name: {"messages_per_s": round(rate), "n": n} for name, rate in best.items()}


async def _small_rtcbot(n: int) -> float:
    a, b = RTCConnection(rtcConfiguration=[]), RTCConnection(rtcConfiguration=[])
    await connect(a, b)
    done = asyncio.get_running_loop().create_future()
    count = 0

    def on_message(value) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set_result(None)

    b.subscribe(on_message)
    t0 = time.perf_counter()
    for i in range(n):
        a.put_nowait(dict(SMALL_MESSAGE, i=i))
    async with asyncio.timeout(STEP_TIMEOUT_S):
        await done
    elapsed = time.perf_counter() - t0
    await a.close()
    await b.close()
    return n / elapsed


async def _small_raw(n: int) -> float:
    raw = RawPair()
    await raw.connect()
    done = asyncio.get_running_loop().create_future()
    count = 0

    def on_message(m) -> None:
        nonlocal count
        json.loads(m)
        count += 1
        if count == n:
            done.set_result(None)

    raw.on_b = on_message
    t0 = time.perf_counter()
    for i in range(n):
        raw.ca.send(json.dumps(dict(SMALL_MESSAGE, i=i)))
    async with asyncio.timeout(STEP_TIMEOUT_S):
        await done
    elapsed = time.perf_counter() - t0
    await raw.close()
    return n / elapsed


async def bulk(sizes: dict) -> dict:
    n = sizes["bulk_n"]
    best = {"rtcbot": 0.0, "raw_aiortc": 0.0}
    for rep in range(sizes["bulk_repeats"]):
        for name in (("rtcbot", "raw_aiortc") if rep % 2 == 0 else ("raw_aiortc", "rtcbot")):
            rate = await (_bulk_rtcbot(n) if name == "rtcbot" else _bulk_raw(n))
            best[name] = max(best[name], rate)
    return {name: {"mb_per_s": round(rate, 2), "n": n, "message_bytes": 16384}
            for name, rate in best.items()}


async def _bulk_rtcbot(n: int) -> float:
    a, b = RTCConnection(rtcConfiguration=[]), RTCConnection(rtcConfiguration=[])
    await connect(a, b)
    block = b"\x5a" * 16384
    done = asyncio.get_running_loop().create_future()
    count = 0

    def on_message(value) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set_result(None)

    b.subscribe(on_message)
    t0 = time.perf_counter()
    async with asyncio.timeout(STEP_TIMEOUT_S):
        for _ in range(n):
            await a.put(block)
        await done
    elapsed = time.perf_counter() - t0
    await a.close()
    await b.close()
    return n * 16384 / elapsed / 1e6


async def _bulk_raw(n: int) -> float:
    raw = RawPair()
    await raw.connect()
    block = b"\x5a" * 16384
    done = asyncio.get_running_loop().create_future()
    count = 0

    def on_message(m) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set_result(None)

    raw.on_b = on_message
    channel = raw.ca
    channel.bufferedAmountLowThreshold = _datachannel.LOW_WATER_BYTES
    low = asyncio.Event()
    channel.on("bufferedamountlow", low.set)
    t0 = time.perf_counter()
    async with asyncio.timeout(STEP_TIMEOUT_S):
        for _ in range(n):
            while channel.bufferedAmount > _datachannel.HIGH_WATER_BYTES:
                low.clear()
                await low.wait()
            channel.send(block)
        await done
    elapsed = time.perf_counter() - t0
    await raw.close()
    return n * 16384 / elapsed / 1e6


async def connect_time(sizes: dict) -> dict:
    result: dict[str, list[float]] = {"rtcbot": [], "raw_aiortc": []}
    for _ in range(sizes["connect_reps"]):
        t0 = time.perf_counter()
        a, b = RTCConnection(rtcConfiguration=[]), RTCConnection(rtcConfiguration=[])
        await connect(a, b)
        result["rtcbot"].append(time.perf_counter() - t0)
        await a.close()
        await b.close()
        t0 = time.perf_counter()
        raw = RawPair()
        await raw.connect()
        result["raw_aiortc"].append(time.perf_counter() - t0)
        await raw.close()
    return {name: {"median_ms": round(statistics.median(v) * 1000, 2),
                   "max_ms": round(max(v) * 1000, 2), "n": len(v)}
            for name, v in result.items()}


async def vanished_peer(sizes: dict) -> dict:
    times = []
    for _ in range(sizes["vanish_reps"]):
        times.append(await _vanish_rtcbot())
    out: dict = {"rtcbot": {"median_s": round(statistics.median(times), 3),
                            "max_s": round(max(times), 3), "n": len(times)}}
    cap = sizes["raw_vanish_cap_s"]
    if cap:
        detected = await _vanish_raw(cap)
        out["raw_aiortc"] = {"detected_s": detected, "cap_s": cap,
                             "note": "null: not noticed within the cap (no heartbeat)"}
    return out


async def _peer_process(*args: str) -> asyncio.subprocess.Process:
    env = dict(os.environ, PYTHONPATH=str(REPO_DIR / "src"))
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rtcbot.testing.connection", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)


async def _vanish_rtcbot() -> float:
    proc = await _peer_process("--offer")
    conn = RTCConnection(rtcConfiguration=[])
    try:
        async with asyncio.timeout(STEP_TIMEOUT_S):
            offer = json.loads(await proc.stdout.readline())
            proc.stdin.write((json.dumps(await conn.getLocalDescription(offer)) + "\n").encode())
            await conn.onReady()
            while not conn._heartbeat.statistics().peer_speaks_heartbeat:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            t0 = time.perf_counter()
            proc.kill()
            await conn.onClose()
            return time.perf_counter() - t0
    finally:
        await conn.close()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _vanish_raw(cap: float) -> float | None:
    """Raw aiortc answering a peer process that is then killed: when is it noticed?"""
    proc = await _peer_process("--offer")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    noticed = asyncio.Event()
    pc.on("connectionstatechange",
          lambda: pc.connectionState in ("failed", "closed") and noticed.set())
    opened = asyncio.Event()
    pc.on("datachannel", lambda ch: opened.set())
    try:
        async with asyncio.timeout(STEP_TIMEOUT_S):
            from aiortc import RTCSessionDescription

            offer = json.loads(await proc.stdout.readline())
            await pc.setRemoteDescription(RTCSessionDescription(**offer))
            await pc.setLocalDescription(await pc.createAnswer())
            desc = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
            proc.stdin.write((json.dumps(desc) + "\n").encode())
            await opened.wait()
        t0 = time.perf_counter()
        proc.kill()
        try:
            async with asyncio.timeout(cap):
                await noticed.wait()
            return round(time.perf_counter() - t0, 3)
        except TimeoutError:
            return None
    finally:
        await pc.close()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


# ---------------------------------------------------------------------------------- RTCBot 0.2.5

_RTCBOT025 = textwrap.dedent(
    """
    import asyncio, json, sys, time, warnings
    warnings.simplefilter("ignore")
    from aiortc import RTCConfiguration
    from rtcbot import RTCConnection

    async def main(batches, batch, warmup):
        a = RTCConnection(rtcConfiguration=RTCConfiguration(iceServers=[]))
        b = RTCConnection(rtcConfiguration=RTCConfiguration(iceServers=[]))
        ready = asyncio.Event()
        b.subscribe(b.put_nowait)
        a.onReady(lambda: ready.set())
        offer = await a.getLocalDescription()
        answer = await b.getLocalDescription(offer)
        await a.setRemoteDescription(answer)
        await asyncio.wait_for(ready.wait(), 30)
        q = a.subscribe()
        samples = []
        msg = %r
        for n in range(warmup + batches * batch):
            m = dict(msg, i=n)
            t0 = time.perf_counter()
            a.put_nowait(m)
            reply = await asyncio.wait_for(q.get(), 10)
            t1 = time.perf_counter()
            assert reply["i"] == n, reply
            if n >= warmup:
                samples.append(t1 - t0)
        await a.close()
        await b.close()
        print(json.dumps(samples))

    asyncio.run(main(*map(int, sys.argv[1:4])))
    """
) % (SMALL_MESSAGE,)


def rtcbot025_round_trip(sizes: dict) -> dict:
    sys.path.insert(0, str(BENCH_DIR))
    from _venv import STAMP, venv_python

    python = venv_python()
    if not python.exists() or not STAMP.exists():
        return {"skipped": "bench/.venv-rtcbot025 not found; run python bench/_venv.py"}
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        # -P: bench/ (the working directory) must not shadow modules (bench/serial.py)
        [str(python), "-P", "-c", _RTCBOT025, str(sizes["rt_batches"]), str(sizes["rt_batch"]),
         str(sizes["rt_warmup"])],
        capture_output=True, text=True, timeout=300, cwd=BENCH_DIR, env=env, check=False)
    if proc.returncode != 0:
        return {"skipped": f"RTCBot 0.2.5 run failed: {proc.stderr.strip()[-500:]}"}
    ms = [v * 1000 for v in json.loads(proc.stdout.strip().splitlines()[-1])]
    return {"p50_ms": round(_percentile(ms, 0.5), 4), "p99_ms": round(_percentile(ms, 0.99), 4),
            "n": len(ms), "note": "measured in its own process (bench/.venv-rtcbot025)"}


# ---------------------------------------------------------------------------------- main


async def run(sizes: dict) -> dict:
    rt = await round_trip(sizes)
    small = await small_messages(sizes)
    big = await bulk(sizes)
    conn = await connect_time(sizes)
    vanish = await vanished_peer(sizes)
    rt["rtcbot_0_2_5"] = await asyncio.to_thread(rtcbot025_round_trip, sizes)
    rt["ratio_p50"] = _ratio(rt["rtcbot"]["p50_ms"], rt["raw_aiortc"]["p50_ms"])
    rt["ratio_p99"] = _ratio(rt["rtcbot"]["p99_ms"], rt["raw_aiortc"]["p99_ms"])
    rt["target"] = "ratio_p50 and ratio_p99 <= 1.1 (rtcbot / raw aiortc)"
    small["ratio"] = _ratio(small["rtcbot"]["messages_per_s"],
                            small["raw_aiortc"]["messages_per_s"])
    small["target"] = "ratio >= 1.0 (rtcbot / raw aiortc)"
    big["ratio"] = _ratio(big["rtcbot"]["mb_per_s"], big["raw_aiortc"]["mb_per_s"])
    big["target"] = "ratio >= 1.0 (rtcbot / raw aiortc)"
    conn["ratio"] = _ratio(conn["rtcbot"]["median_ms"], conn["raw_aiortc"]["median_ms"])
    conn["target"] = "rtcbot median < 100 ms"
    vanish["target"] = "rtcbot < 3 s"
    return {"round_trip": rt, "small_messages": small, "bulk_16k": big, "connect": conn,
            "vanished_peer": vanish}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    import aiortc

    results = {
        "benchmark": "connection_data",
        "machine": {"python": platform.python_version(), "aiortc": aiortc.__version__,
                    "cpus": os.cpu_count(), "platform": platform.platform()},
        "sizes": sizes,
        **asyncio.run(run(sizes)),
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
