"""``rtcbot.web.connect`` and resumable sessions through ``POST /connect``: a real aiohttp
server and real aiortc peers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp
import pytest
from aiohttp import web

import rtcbot.web
from rtcbot.connection import ConnectionLost, SessionGone
from rtcbot.web import add_rtcbot_routes


async def within(awaitable, seconds: float = 15.0):
    async with asyncio.timeout(seconds):
        return await awaitable


@contextlib.asynccontextmanager
async def serve(**options):
    app = web.Application()
    robots: list = []
    inbox: asyncio.Queue = asyncio.Queue()

    def on_connection(conn):
        robots.append(conn)
        conn.subscribe(inbox.put_nowait)

    server = add_rtcbot_routes(app, on_connection, rtc_configuration=[], **options)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", server, robots, inbox
    finally:
        await runner.cleanup()


def kill_transport(conn) -> None:
    ice = conn._pc.sctp.transport.transport
    asyncio.get_running_loop().create_task(ice.stop())


async def test_connect_client_resumes_through_the_endpoint(caplog):
    caplog.set_level(logging.DEBUG, logger="rtcbot")
    async with serve(token="t0ken") as (base, server, robots, inbox):
        conn = await within(rtcbot.web.connect(base, token="t0ken", rtcConfiguration=[]))
        try:
            conn.put_nowait("before")
            assert await within(inbox.get()) == "before"
            (robot,) = robots
            secret = server._sessions[next(iter(server._sessions))][0]
            await within(_until(lambda: robot._heartbeat.peer_resumes))
            kill_transport(conn)
            await within(conn.on_link_lost())
            conn.put_nowait("during")
            await within(conn.on_link_restored())
            assert await within(inbox.get()) == "during"
            conn.put_nowait("after")
            assert await within(inbox.get()) == "after"
            assert robots == [robot] and not robot.closed  # the same session, no new one
            assert len(server.connections) == 1
            assert robot.link_statistics().restores == 1
        finally:
            await within(conn.close())
        await within(robot.onClose())  # the goodbye reached it
    assert secret not in caplog.text and "t0ken" not in caplog.text


async def test_resume_offers_are_checked():
    async with serve() as (base, server, _robots, _inbox):
        conn = await within(rtcbot.web.connect(base, rtcConfiguration=[]))
        try:
            session_id, (secret, robot) = next(iter(server._sessions.items()))
            offer = {"sdp": robot._pc.remoteDescription.sdp, "type": "offer"}
            async with aiohttp.ClientSession() as http:
                url = f"{base}/connect"
                wrong = {**offer, "session": {"id": session_id, "secret": "guess"}}
                async with http.post(url, json=wrong) as response:
                    assert response.status == 403
                unknown = {**offer, "session": {"id": "nope", "secret": secret}}
                async with http.post(url, json=unknown) as response:
                    assert response.status == 404
                bad = {**offer, "session": "x"}
                async with http.post(url, json=bad) as response:
                    assert response.status == 400
            assert conn.link_up and not robot.closed  # nothing disturbed the session
        finally:
            await within(conn.close())


async def test_a_closed_session_cannot_resume_and_the_client_closes():
    async with serve() as (base, _server, robots, _inbox):
        conn = await within(rtcbot.web.connect(base, rtcConfiguration=[]))
        (robot,) = robots
        await within(_until(lambda: robot._heartbeat.peer_resumes))
        kill_transport(conn)
        robot.close()  # the robot ends the session while the link is down
        await within(conn.onClose())
        assert isinstance(conn.error, SessionGone) and "404" in str(conn.error)
        await within(conn)


async def test_a_server_without_resume_gives_a_plain_session():
    async with serve(resume_window=0) as (base, server, _robots, _inbox):
        conn = await within(rtcbot.web.connect(base, rtcConfiguration=[]))
        try:
            assert not server._sessions
            lost = []
            conn.on_link_lost(lost.append)
            kill_transport(conn)
            await within(conn.onClose())  # closed, as before resumable sessions
            assert not lost
        finally:
            await within(conn.close())


async def test_connect_reports_http_errors():
    async with serve(token="t0ken") as (base, _server, robots, _inbox):
        with pytest.raises(ConnectionLost, match="401"):
            await within(rtcbot.web.connect(base, rtcConfiguration=[]))
        assert not robots
    with pytest.raises(ValueError, match="http"):
        await rtcbot.web.connect("ftp://robot")


async def _until(condition, step: float = 0.02) -> None:
    while not condition():  # noqa: ASYNC110 - states without an event of their own
        await asyncio.sleep(step)
