"""POST /connect: a new connection per client, token, origin check, limits, clear 4xx."""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiohttp
import pytest
from aiohttp import web

from rtcbot.connection import RTCConnection
from rtcbot.web import ConnectionServer, add_rtcbot_routes


@contextlib.asynccontextmanager
async def serve(**options):
    app = web.Application()
    robot_inbox: asyncio.Queue = asyncio.Queue()

    def on_connection(conn):
        conn.subscribe(lambda msg: robot_inbox.put_nowait(msg))
        conn.put_nowait("hello from the robot")

    server = add_rtcbot_routes(app, on_connection, rtc_configuration=[], **options)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            yield f"http://127.0.0.1:{port}", session, server, robot_inbox
    finally:
        await runner.cleanup()


async def connect(session, base, headers=None, params=None):
    conn = RTCConnection(rtcConfiguration=[])
    offer = await conn.getLocalDescription()
    async with session.post(f"{base}/connect", json=offer, headers=headers or {},
                            params=params or {}) as resp:
        if resp.status != 200:
            conn.close()
            return resp.status, await resp.text()
        await conn.setRemoteDescription(await resp.json())
    return 200, conn


async def test_each_client_gets_its_own_connection_and_reload_works():
    async with serve() as (base, session, _server, inbox):
        async with asyncio.timeout(20):
            status, first = await connect(session, base)
            assert status == 200
            assert await first.get() == "hello from the robot"
            first.put_nowait({"cmd": "forward"})
            assert await inbox.get() == {"cmd": "forward"}
            # a page reload: the old client goes away, a new one connects
            await first.close()
            status, second = await connect(session, base)
            assert status == 200
            assert await second.get() == "hello from the robot"
            second.put_nowait("again")
            assert await inbox.get() == "again"
            await second.close()


async def test_token_required_and_checked():
    async with serve(token="s3cret") as (base, session, _server, _inbox):
        async with asyncio.timeout(20):
            status, text = await connect(session, base)
            assert status == 401 and "token" in text
            status, text = await connect(session, base, headers={"Authorization": "Bearer no"})
            assert status == 403 and "wrong token" in text
            status, conn = await connect(session, base, params={"token": "s3cret"})
            assert status == 200
            await conn.close()
            status, conn = await connect(session, base,
                                         headers={"Authorization": "Bearer s3cret"})
            assert status == 200
            await conn.close()


async def test_cross_site_pages_are_refused():
    async with serve() as (base, session, _server, _inbox):
        async with asyncio.timeout(20):
            status, text = await connect(session, base, headers={"Origin": "http://evil.test"})
            assert status == 403 and "evil.test" in text
            status, conn = await connect(session, base, headers={"Origin": base})
            assert status == 200
            await conn.close()
    async with serve(allowed_origins=["https://operator.test"]) as (base, session, _, _):
        async with asyncio.timeout(20):
            status, conn = await connect(session, base,
                                         headers={"Origin": "https://operator.test"})
            assert status == 200
            await conn.close()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "answer", "sdp": "v=0"}', "'offer'"),
        (b'{"type": "offer"}', "sdp"),
        (b'{"type": "offer", "sdp": "this is not sdp"}', "invalid offer"),
    ],
)
async def test_malformed_offers_get_400_with_a_reason_and_the_server_keeps_serving(body, reason):
    async with serve() as (base, session, _server, _inbox):
        async with asyncio.timeout(20):
            async with session.post(f"{base}/connect", data=body) as resp:
                assert resp.status == 400
                assert reason in await resp.text()
            status, conn = await connect(session, base)
            assert status == 200
            await conn.close()


async def test_body_size_limit():
    async with serve(max_body_size=1000) as (base, session, _server, _inbox):
        async with session.post(f"{base}/connect", data=b"x" * 5000) as resp:
            assert resp.status == 413


async def test_connection_cap_and_shutdown_closes_everyone():
    async with serve(max_connections=1) as (base, session, server, _inbox):
        async with asyncio.timeout(20):
            status, conn = await connect(session, base)
            assert status == 200
            await conn.onReady()
            status, text = await connect(session, base)
            assert status == 503 and "1 connections" in text
            assert len(server.connections) == 1
            robot_side = next(iter(server.connections))
        # leaving the block shuts the app down
    async with asyncio.timeout(10):
        await robot_side
        await conn.onClose()  # the client notices the robot went away
    assert robot_side.closed


async def test_serves_the_browser_library():
    pytest.importorskip("rtcbot.javascript")
    async with serve() as (base, session, _server, _inbox):
        async with session.get(f"{base}/rtcbot.js") as resp:
            assert resp.status == 200
            assert resp.content_type == "application/javascript"
            assert "RTCConnection" in await resp.text()


async def test_a_cancelled_connect_closes_its_new_connection():
    created = []
    wiring = asyncio.Event()

    async def slow_wiring(conn):
        created.append(conn)
        wiring.set()
        await asyncio.Event().wait()  # never finishes: the client gives up first

    server = ConnectionServer(slow_wiring, rtc_configuration=[])
    client = RTCConnection(rtcConfiguration=[])
    offer = await client.getLocalDescription()
    task = asyncio.ensure_future(server._answer(offer))
    async with asyncio.timeout(5):
        await wiring.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert created[0].closed and not server.connections
    await client.close()


async def test_an_offer_arriving_in_pieces_is_read_whole():
    async with serve() as (base, session, _server, _inbox):
        conn = RTCConnection(rtcConfiguration=[])
        body = json.dumps(await conn.getLocalDescription()).encode()

        async def pieces():
            for start in range(0, len(body), 200):
                yield body[start:start + 200]
                await asyncio.sleep(0.005)  # pacing: each piece its own write

        async with asyncio.timeout(20):
            async with session.post(f"{base}/connect", data=pieces()) as resp:
                assert resp.status == 200, await resp.text()
                await conn.setRemoteDescription(await resp.json())
            await conn.onReady()
        await conn.close()
