"""POST /connect under attack, on loopback: DNS rebinding, slot exhaustion, malformed requests.

Each test plays the attack a stranger who can reach the robot's port could play (bounded in
count and time) and checks that the robot refuses it and still serves its operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import aiohttp
import pytest
from aiohttp import web

from rtcbot.connection import RTCConnection
from rtcbot.connection._connection import InvalidDescription, validate_description
from rtcbot.web import add_rtcbot_routes
from rtcbot.web._connect import host_cannot_rebind


@contextlib.asynccontextmanager
async def serve(**options):
    app = web.Application()

    def on_connection(conn):
        conn.put_nowait("hello from the robot")

    server = add_rtcbot_routes(app, on_connection, rtc_configuration=[], **options)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            yield f"http://127.0.0.1:{port}", port, session, server
    finally:
        await runner.cleanup()


async def offer_json() -> tuple[RTCConnection, dict]:
    conn = RTCConnection(rtcConfiguration=[])
    return conn, await conn.getLocalDescription()


async def connect(session, base, headers=None):
    """A real client: (status, text) when refused, (200, connected RTCConnection)."""
    conn, offer = await offer_json()
    async with session.post(f"{base}/connect", json=offer, headers=headers or {}) as resp:
        if resp.status != 200:
            conn.close()
            return resp.status, await resp.text()
        await conn.setRemoteDescription(await resp.json())
    await conn.onReady()
    return 200, conn


# ------------------------------------------------------------------------- DNS rebinding


def test_hosts_a_stranger_cannot_rebind():
    for host in ("127.0.0.1", "127.0.0.1:8080", "[::1]:8080", "::1", "localhost:8080",
                 "LocalHost", "robot.localhost:80", "10.1.2.3:443"):
        assert host_cannot_rebind(host), host
    for host in ("attacker.example", "attacker.example:8080", "127.0.0.1.nip.io:8080",
                 "robot.lan", "127.0.0.1:http", "[::1]junk", ""):
        assert not host_cannot_rebind(host), host


async def test_a_rebinding_page_is_refused_and_the_robot_own_page_still_works():
    # attacker.example resolves to 127.0.0.1 now: the browser sends the attacker's name as
    # Host and as Origin, which match each other, as they would for a same-origin page.
    async with serve() as (base, port, session, server):
        async with asyncio.timeout(20):
            evil = {"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"}
            status, text = await connect(session, base, headers=evil)
            assert status == 403 and "attacker.example" in text
            assert not server.connections
            # the robot's own page, loaded from its address or from localhost
            for origin in (base, f"http://localhost:{port}"):
                host = origin.split("//")[1]
                status, conn = await connect(session, base,
                                             headers={"Origin": origin, "Host": host})
                assert status == 200, conn
                assert await conn.get() == "hello from the robot"
                await conn.close()


async def test_with_a_token_or_an_allow_list_a_named_host_is_fine():
    async with serve(token="t0ken") as (base, port, session, _server):
        async with asyncio.timeout(20):
            named = {"Host": f"robot.lan:{port}", "Origin": f"http://robot.lan:{port}"}
            # the rebinding page has no token: 401; the operator's page has it
            status, _text = await connect(session, base, headers=named)
            assert status == 401
            status, conn = await connect(session, base,
                                         headers={**named, "Authorization": "Bearer t0ken"})
            assert status == 200
            await conn.close()
    async with serve(allowed_origins=["http://robot.lan"]) as (base, _port, session, _s):
        async with asyncio.timeout(20):
            status, conn = await connect(
                session, base, headers={"Host": "robot.lan", "Origin": "http://robot.lan"})
            assert status == 200
            await conn.close()
            status, _text = await connect(
                session, base, headers={"Host": "evil.lan", "Origin": "http://evil.lan"})
            assert status == 403


# ------------------------------------------------------------------------- slot exhaustion


async def stalled_request(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A socket that announces an offer and then sends nothing more."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /connect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                 b"\r\nContent-Length: 4000\r\n\r\n{\"type\": \"offer\", ")
    await writer.drain()
    return reader, writer


async def never_connecting_offer(session, base) -> int:
    """A valid offer whose sender goes away without using the answer."""
    conn, offer = await offer_json()
    try:
        async with session.post(f"{base}/connect", json=offer) as resp:
            await resp.read()
            return resp.status
    finally:
        await conn.close()


async def test_stalled_sockets_and_offers_that_never_connect_do_not_lock_the_operator_out():
    async with serve(read_timeout=2, connect_timeout=1.5) as (base, port, session, server):
        async with asyncio.timeout(40):
            stalled = [await stalled_request(port) for _ in range(server.max_connections)]
            # the stalled sockets hold no slot: eight offers are still answered ...
            statuses = [await never_connecting_offer(session, base)
                        for _ in range(server.max_connections)]
            assert statuses == [200] * server.max_connections
            assert len(server.connections) == server.max_connections
            # ... and the operator, refused while the slots are held, gets in as soon as
            # their connect deadline frees them (a real client retries after Retry-After)
            attempts = []
            while True:
                status, conn = await connect(session, base)
                attempts.append(status)
                if status == 200:
                    break
                assert status == 503, conn
                await asyncio.sleep(0.2)  # a client's retry pacing, not synchronisation
            assert await conn.get() == "hello from the robot"
            await conn.close()
            # the stalled sockets were answered 408 by their read deadline
            for reader, writer in stalled:
                head = await reader.readline()
                assert b" 408 " in head, head
                writer.close()


async def test_the_retry_after_of_a_full_robot_is_its_next_connect_deadline():
    async with serve(max_connections=1, connect_timeout=2) as (base, _port, session, _s):
        async with asyncio.timeout(20):
            assert await never_connecting_offer(session, base) == 200
            conn, offer = await offer_json()
            async with session.post(f"{base}/connect", json=offer) as resp:
                assert resp.status == 503
                assert resp.headers["Retry-After"] in ("1", "2")
            await conn.close()


# ------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deep"),
        (b'{"type": "offer", "sdp": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested too deep"),
        (b"\xff\xfe{}", "not JSON"),
        (json.dumps({"type": "x" * 10_000, "sdp": "v=0"}).encode(), "'offer'"),
        (json.dumps({"type": ["offer"], "sdp": "v=0"}).encode(), "'offer'"),
    ],
)
async def test_malformed_bodies_get_400_not_500(body, reason, caplog):
    async with serve(max_body_size=256 * 1024) as (base, _port, session, _server):
        async with asyncio.timeout(20):
            async with session.post(f"{base}/connect", data=body) as resp:
                text = await resp.text()
                assert resp.status == 400, text
                assert reason in text and len(text) < 500
            status, conn = await connect(session, base)
            assert status == 200
            await conn.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_non_ascii_authorization_header_gets_403_not_500(caplog):
    async with serve(token="s3cret") as (_base, port, _session, _server):
        async with asyncio.timeout(20):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            body = b'{"type": "offer", "sdp": "v=0"}'
            writer.write(b"POST /connect HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                         b"Authorization: Bearer \xc3\xa9t\xe9\xff\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()
            head = await reader.readline()
            writer.close()
            assert b" 403 " in head, head
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# ------------------------------------------------------------------------- SDP limits


def many_sections(count: int, candidates_each: int = 1) -> str:
    section = ["m=audio 9 UDP/TLS/RTP/SAVPF 0", "c=IN IP4 0.0.0.0", "a=rtpmap:0 PCMU/8000"]
    section += [f"a=candidate:{i} 1 udp 2130706431 10.0.0.{i % 250} 4{i:04d} typ host"
                for i in range(candidates_each)]
    lines = ["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0"]
    for mid in range(count):
        lines += [*section, f"a=mid:{mid}"]
    return "\r\n".join(lines) + "\r\n"


def test_sdp_limits_are_checked_by_counting_before_any_parsing():
    validate_description({"type": "offer", "sdp": many_sections(8, 4)})
    with pytest.raises(InvalidDescription, match="180 media sections"):
        validate_description({"type": "offer", "sdp": many_sections(180)})
    with pytest.raises(InvalidDescription, match="300 ICE candidates"):
        validate_description({"type": "offer", "sdp": many_sections(3, 100)})
    with pytest.raises(InvalidDescription, match="too long"):
        validate_description({"type": "offer", "sdp": "v=0\r\n" + "a=x\r\n" * 20_000})
    # the limits are parameters
    with pytest.raises(InvalidDescription, match="at most 2"):
        validate_description({"type": "offer", "sdp": many_sections(3)}, max_media=2)


async def test_an_offer_with_180_media_sections_is_refused_with_400_and_holds_nothing():
    async with serve() as (base, _port, session, server):
        async with asyncio.timeout(20):
            body = {"type": "offer", "sdp": many_sections(180)}
            assert len(json.dumps(body)) < server.max_body_size
            async with session.post(f"{base}/connect", json=body) as resp:
                assert resp.status == 400
                assert "180 media sections" in await resp.text()
            assert not server.connections and server._pending == 0
            status, conn = await connect(session, base)
            assert status == 200
            await conn.close()
