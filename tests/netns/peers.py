"""The parties of the network-lab tests, each run in its own namespace as
``ip netns exec NS python peers.py ROLE ...``. Every line printed is a JSON event
(``{"event": ..., ...}``) that the test reads.

Roles: ``relay`` (the rtcbot relay), ``robot`` (a robot with a test-pattern camera that echoes
messages), ``viewer`` (a Python viewer) and ``chromium`` (headless Chromium opening the relay's
viewer page).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent.parent


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def selected_pair(conn) -> dict | None:
    """Types and addresses of the candidate pair aiortc nominated (test-only peek inside
    aiortc/aioice: there is no public API for it)."""
    try:
        ice = conn._pc.sctp.transport.transport._connection
        pair = ice._nominated.get(1)
        if pair is None:
            return None
        local, remote = pair.local_candidate, pair.remote_candidate
        return {"local": local.type, "remote": remote.type,
                "local_addr": f"{local.host}:{local.port}",
                "remote_addr": f"{remote.host}:{remote.port}"}
    except AttributeError:
        return None


def candidate_types(sdp: str) -> list[str]:
    return sorted({line.split(" typ ")[1].split()[0] for line in sdp.splitlines()
                   if line.startswith("a=candidate:") and " typ " in line})


async def until_terminated() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# ------------------------------------------------------------------------------------ relay


async def relay(args) -> None:
    from aiohttp import web

    from rtcbot.relay import create_relay_app

    app = create_relay_app(args.secret, token=args.token, ice=json.loads(args.ice))
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    emit("listening", port=args.port)
    await until_terminated()
    await runner.cleanup()


# ------------------------------------------------------------------------------------ robot


async def robot(args) -> None:
    from rtcbot.devices.sources import TestPattern
    from rtcbot.relay import connect_robot

    pattern = TestPattern(320, 240, 15)

    def on_connection(conn) -> None:
        frames = pattern.subscribe()
        conn.video.putSubscription(frames)

        @conn.subscribe
        def on_message(message) -> None:
            emit("message", data=message)
            conn.put_nowait({"echo": message})

        def ready() -> None:
            emit("connected", pair=selected_pair(conn),
                 candidates=candidate_types(conn._pc.localDescription.sdp))
            conn.put_nowait({"hello": "from the robot"})

        conn.onReady(ready)
        conn.onClose(lambda: pattern.unsubscribe(frames))

    ice = json.loads(args.ice) if args.ice else None
    bot = connect_robot(args.relay, args.name, args.secret, on_connection,
                        rtc_configuration=None if ice is None else _config(ice),
                        backoff=(0.1, 1.0))
    bot.onReady(lambda: emit("registered", registrations=bot.registrations))
    bot.onError(lambda e: emit("error", error=str(e)))
    await until_terminated()
    bot.close()
    pattern.close()
    await bot


def _config(ice):
    from rtcbot.ice import load_ice_config

    return load_ice_config(ice, environ={}).rtc_configuration()


# ------------------------------------------------------------------------------------ viewers


async def viewer(args) -> None:
    from rtcbot.connection import RTCConnection
    from rtcbot.devices.sources import TestPattern
    from rtcbot.relay import connect_to_robot, fetch_ice

    ice = await fetch_ice(args.relay, token=args.token)
    emit("ice", policy=ice.get("iceTransportPolicy"), servers=len(ice["iceServers"]))
    conn = RTCConnection(rtcConfiguration=_config(ice))
    video = conn.video.subscribe()
    started = time.monotonic()
    async with asyncio.timeout(args.timeout):
        await connect_to_robot(args.relay, args.name, conn, token=args.token)
        await conn.onReady()
        emit("connected", seconds=time.monotonic() - started, pair=selected_pair(conn),
             candidates=candidate_types(conn._pc.localDescription.sdp))
        hello = await conn.get()
        rtts = []
        for i in range(args.messages):
            sent = time.perf_counter()
            conn.put_nowait({"n": i})
            reply = await conn.get()
            rtts.append((time.perf_counter() - sent) * 1000)
            assert reply == {"echo": {"n": i}}, reply
        emit("messages", hello=hello, count=len(rtts), rtt_ms=sorted(rtts)[len(rtts) // 2])
        indices = []
        while len(indices) < args.frames:
            frame = await video.get()
            indices.append(TestPattern.read_index(frame))
        emit("video", indices=indices, shape=list(frame.shape))
    await conn.close()
    emit("done")


CHROMIUM_VIDEO_JS = """async () => {
    const video = document.getElementById("video");
    const deadline = Date.now() + 15000;
    while (!(video.readyState >= 2 && video.videoWidth > 0)) {
        if (Date.now() > deadline) throw new Error("no video");
        await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => video.requestVideoFrameCallback(r));
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(video, 0, 0);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let bin = "";
    for (let i = 0; i < data.length; i += 4) {
        bin += String.fromCharCode(data[i], data[i + 1], data[i + 2]);
    }
    return {w: canvas.width, h: canvas.height, rgb: btoa(bin)};
}"""

CHROMIUM_PAIR_JS = """async () => {
    const stats = await window.viewer.conn.peerConnection.getStats();
    let pair = null;
    stats.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId)
        pair = stats.get(s.selectedCandidatePairId); });
    if (!pair) stats.forEach((s) => { if (s.type === "candidate-pair" && s.nominated) pair = s; });
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId), remote = stats.get(pair.remoteCandidateId);
    return {local: local.candidateType, remote: remote.candidateType,
            local_addr: local.address + ":" + local.port,
            remote_addr: remote.address + ":" + remote.port};
}"""


async def chromium(args) -> None:
    import base64

    from playwright.async_api import async_playwright

    sys.path.insert(0, str(TESTS))
    from rtcbot.devices.sources import TestPattern
    from support.browser import CHROMIUM_ARGS, CHROMIUM_PATH

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            started = time.monotonic()
            await page.goto(f"{args.relay}/robots/{args.name}/#token={args.token}")
            handle = await page.wait_for_function(
                "window.viewer && window.viewer.status !== 'connecting' && window.viewer.status",
                timeout=args.timeout * 1000,
            )
            status = await handle.json_value()
            if status != "connected":
                error = await page.evaluate("window.viewer.error")
                emit("failed", status=status, error=error, page_errors=errors)
                return
            emit("connected", seconds=time.monotonic() - started,
                 pair=await page.evaluate(CHROMIUM_PAIR_JS))
            await page.evaluate("window.viewer.conn.put_nowait({from: 'chromium'})")
            await page.wait_for_function(
                "window.viewer.received.some((m) => m.echo && m.echo.from === 'chromium')",
                timeout=10000,
            )
            received = await page.evaluate("window.viewer.received")
            emit("messages", received=received)
            indices = []
            for _ in range(args.frames):
                shot = await page.evaluate(CHROMIUM_VIDEO_JS)
                rgb = np.frombuffer(base64.b64decode(shot["rgb"]), np.uint8)
                frame = rgb.reshape(shot["h"], shot["w"], 3)[:, :, ::-1]
                indices.append(TestPattern.read_index(frame))
            emit("video", indices=indices, shape=[shot["h"], shot["w"], 3],
                 page_errors=errors)
            emit("done")
        finally:
            await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["relay", "robot", "viewer", "chromium"])
    parser.add_argument("--relay", default="")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--name", default="bot")
    parser.add_argument("--secret", default="s3cret")
    parser.add_argument("--token", default="t0ken")
    parser.add_argument("--ice", default="")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    role = {"relay": relay, "robot": robot, "viewer": viewer, "chromium": chromium}[args.role]
    try:
        asyncio.run(role(args))
    except Exception as exc:
        emit("crashed", error=repr(exc))
        raise


if __name__ == "__main__":
    main()
