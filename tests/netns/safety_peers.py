"""The two parties of the safety field-lab test, each run in its own namespace as
``ip netns exec NS python safety_peers.py ROLE ...``. Every line printed is a JSON event.

``robot``: ``POST /connect`` and a :class:`~rtcbot.safety.SafetyGate` in front of "motors"
that print each setpoint (``motor``) with the time it was applied (``time.monotonic()``, a
clock shared by every process of the machine); its stop callback prints ``stop``; on SIGTERM
it prints ``summary`` (the gate's counters).

``viewer``: connects, then drives at 20 Hz for ``--seconds``: ``forward`` 0.5 and a unique
``turn`` per command (``seq / 10000``, an axis that is neither scaled nor rate-limited) so the
test can tell which command reached the motors, with ``sent`` = its monotonic time in ms. It
releases a latched E-stop as soon as the robot reports one, and prints ``sent`` (seq -> time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time

from aiohttp import ClientSession, web

from rtcbot import RTCConnection
from rtcbot.safety import Axis, LatencyLimits, SafetyGate
from rtcbot.web import ConnectionServer


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def age_of(message: dict) -> float | None:
    sent = message.get("sent")
    if isinstance(sent, (int, float)) and not isinstance(sent, bool):
        return time.monotonic() - sent / 1000.0
    return None


async def robot(args: argparse.Namespace) -> None:
    def stopped() -> None:
        emit("stop", at=time.monotonic(), reason=gate.state["estop_reason"])

    gate = SafetyGate(
        [Axis("forward", -1, 1), Axis("turn", -1, 1, scaled=False)],
        on_stop=stopped, hold_time=0.5, max_age=args.max_age, link_timeout=args.link_timeout,
        latency=LatencyLimits(slow_ms=args.slow_ms, stop_ms=args.stop_ms, slow_scale=0.5),
    )
    gate.subscribe(lambda s: emit("motor", at=time.monotonic(), **s))
    gate.events.subscribe(
        lambda e: emit("safety", safety=e["event"], **{k: v for k, v in e.items() if k != "event"})
    )

    def on_connection(conn: RTCConnection) -> None:
        gate.attach(conn, age_of=age_of, rtt_interval=0.25)

    server = ConnectionServer(on_connection)
    app = web.Application()
    server.add_routes(app)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    emit("listening")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    emit("summary", **gate.statistics())
    gate.close()
    await runner.cleanup()


async def viewer(args: argparse.Namespace) -> None:
    conn = RTCConnection()
    latched = asyncio.Event()

    @conn.subscribe
    def on_message(message) -> None:
        if isinstance(message, dict) and message.get("type") == "safety":
            state = message.get("state") or {}
            if state.get("estop") and message.get("role") == "driver":
                latched.set()

    async with ClientSession() as session:
        offer = await conn.getLocalDescription()
        async with session.post(args.url, json=offer) as response:
            answer = await response.json()
    await conn.setRemoteDescription(answer)
    await asyncio.wait_for(conn.onReady(), 20)
    emit("connected")
    sent: dict[int, float] = {}
    releases = 0
    end = time.monotonic() + args.seconds
    seq = 0
    while time.monotonic() < end and not conn.closed:
        if latched.is_set():
            latched.clear()
            conn.put_nowait({"type": "safety", "action": "release"})
            releases += 1
        seq += 1
        now = time.monotonic()
        sent[seq] = now
        conn.put_nowait({"type": "control", "forward": 0.5, "turn": seq / 10000,
                         "sent": now * 1000})
        await asyncio.sleep(0.05)
    emit("sent", sent=sent, releases=releases)
    conn.close()
    await asyncio.wait_for(conn, 10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["robot", "viewer"])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--url")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--max-age", type=float, default=0.5)
    parser.add_argument("--link-timeout", type=float, default=0.5)
    parser.add_argument("--slow-ms", type=float, default=300.0)
    parser.add_argument("--stop-ms", type=float, default=5000.0)
    args = parser.parse_args()
    asyncio.run(robot(args) if args.role == "robot" else viewer(args))


if __name__ == "__main__":
    main()
