"""The parties of the resume field-lab runs, each run in its own namespace as
``ip netns exec NS python resume_peers.py ROLE ...``. Every line printed is a JSON event;
times are ``time.monotonic()`` (one clock for every process of the machine).

* ``serve``: ``POST /connect`` (``add_rtcbot_routes``) on ``--host:--port``: each client gets a
  moving test pattern and has its messages echoed; a control timeout of ``--control-timeout``.
* ``relay``: a relay on ``--host:--port`` (robot secret ``secret``, no client token).
* ``robot``: the same wiring as ``serve``, registered at the relay ``--relay`` as ``rover``.
* ``client``: ``rtcbot.web.connect(--url)``; ``viewer``: ``connect_to_robot(--relay)``. Both
  receive video and send a control message every 50 ms; on SIGTERM they print ``summary``:
  the arrival times of frames and of echoes.

Every party prints ``link_lost``, ``link_restored`` and ``closed`` for its connections, and
the robot side ``control_timeout`` when its control timeout fires.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time

from aiohttp import web


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, "at": time.monotonic(), **fields}), flush=True)


def watch(conn, side: str) -> None:
    conn.on_link_lost(lambda reason: emit("link_lost", side=side, reason=str(reason)))
    conn.on_link_restored(lambda: emit("link_restored", side=side,
                                       gap=conn.link_statistics().last_gap_s))
    conn.onClose(lambda: emit("closed", side=side, error=repr(conn.error)))


def wire_robot(args, source):
    def on_connection(conn) -> None:
        conn.video.putSubscription(source.subscribe())
        conn.subscribe(lambda m: conn.put_nowait({"echo": m}))
        conn.set_control_timeout(args.control_timeout, lambda: emit("control_timeout"))
        watch(conn, "robot")

    return on_connection


def pattern():
    from rtcbot.devices.sources import TestPattern

    return TestPattern(width=320, height=240, fps=30)


async def until_terminated() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


async def serve(args) -> None:
    from rtcbot.web import add_rtcbot_routes

    source = pattern()
    app = web.Application()
    add_rtcbot_routes(app, wire_robot(args, source), rtc_configuration=[],
                      resume_window=args.window, allowed_origins=[])
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    emit("listening")
    await until_terminated()
    await runner.cleanup()
    source.close()


async def relay(args) -> None:
    from rtcbot.relay import create_relay_app

    app = create_relay_app("secret", ice=[])
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    emit("listening")
    await until_terminated()
    await runner.cleanup()


async def robot(args) -> None:
    from rtcbot.relay import connect_robot

    source = pattern()
    bot = connect_robot(args.relay, "rover", "secret", wire_robot(args, source),
                        rtc_configuration=[], backoff=(0.2, 1.0), resume_window=args.window)
    bot.onReady(lambda: emit("registered", count=bot.registrations))
    await until_terminated()
    bot.close()
    await bot
    source.close()


async def drive(conn) -> None:
    from rtcbot.devices.sources import TestPattern

    frames: list[float] = []
    echoes: list[tuple[float, float]] = []
    indices: list[int] = []

    def on_message(message) -> None:
        if isinstance(message, dict) and isinstance(message.get("echo"), dict):
            echoes.append((time.monotonic(), message["echo"].get("sent", 0.0)))

    conn.subscribe(on_message)

    async def read_video() -> None:
        stream = conn.video.subscribe()
        while True:
            frame = await stream.get()
            index = TestPattern.read_index(frame)
            if index is not None and (not indices or index != indices[-1]):
                frames.append(time.monotonic())
                indices.append(index)

    async def send() -> None:
        seq = 0
        while True:
            seq += 1
            try:
                conn.put_nowait({"seq": seq, "sent": time.monotonic()})
            except Exception as exc:  # full or closed: counted by the channel
                emit("not_sent", error=repr(exc))
            await asyncio.sleep(0.05)

    tasks = [asyncio.ensure_future(read_video()), asyncio.ensure_future(send())]
    await until_terminated()
    for task in tasks:
        task.cancel()
    emit("summary", frames=frames, echoes=echoes, link=conn.link_statistics().__dict__,
         closed=conn.closed)
    await conn.close()


async def client(args) -> None:
    import rtcbot.web

    conn = await rtcbot.web.connect(args.url, rtcConfiguration=[], resume_window=args.window,
                                    timeout=30)
    watch(conn, "viewer")
    emit("connected")
    await drive(conn)


async def viewer(args) -> None:
    from rtcbot import RTCConnection
    from rtcbot.relay import connect_to_robot

    conn = RTCConnection(rtcConfiguration=[], resume_window=args.window)
    conn.video.offerToReceive(1)
    await connect_to_robot(args.relay, "rover", conn, use_relay_ice=False)
    await conn.onReady()
    watch(conn, "viewer")
    emit("connected")
    await drive(conn)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["serve", "relay", "robot", "client", "viewer"])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--url")
    parser.add_argument("--relay")
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--control-timeout", type=float, default=0.5)
    args = parser.parse_args()
    asyncio.run(globals()[args.role](args))


if __name__ == "__main__":
    main()
