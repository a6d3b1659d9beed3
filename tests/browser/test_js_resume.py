"""rtcbot.js in Chromium resumes a session through POST /connect: the robot's transport is
killed under it, the page brings up a new one by itself, and the same page objects (the
connection, the video element's MediaStream, the subscriptions) carry on."""

# ruff: noqa: E501 -- the JavaScript run in the page keeps its natural line lengths

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from aiohttp import web

from rtcbot.devices.sources import TestPattern
from rtcbot.web import add_rtcbot_routes
from support.browser import serve, wait_for_js

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def robot():
    app = web.Application()
    pattern = TestPattern(width=160, height=120, fps=15)
    connections: asyncio.Queue = asyncio.Queue()
    inbox: asyncio.Queue = asyncio.Queue()

    def on_connection(conn):
        conn.video.putSubscription(pattern.subscribe())
        conn.subscribe(inbox.put_nowait)
        connections.put_nowait(conn)

    server = add_rtcbot_routes(app, on_connection, js_path=None, rtc_configuration=[])
    try:
        async with serve(app=app) as site:
            site.connections, site.inbox, site.server = connections, inbox, server
            yield site
    finally:
        await server.close()
        pattern.close()


CONNECT = """async () => {
    window.conn = new rtcbot.RTCConnection(true, {iceServers: []});
    window.got = [];
    window.lost = 0;
    window.restored = 0;
    conn.subscribe((m) => got.push(m));
    conn.onLinkLost(() => { lost += 1; });
    conn.onLinkRestored(() => { restored += 1; });
    conn.onClose(() => { window.closedAt = performance.now(); });
    const video = document.createElement("video");
    video.muted = true;
    video.autoplay = true;
    document.body.appendChild(video);
    window.frames = 0;
    const count = () => { frames += 1; video.requestVideoFrameCallback(count); };
    video.requestVideoFrameCallback(count);
    conn.video.subscribe((stream) => { video.srcObject = stream; window.shown = stream; });
    await conn.connect("/connect");
}"""


async def test_a_page_resumes_through_connect(context, robot):
    page = await context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    await page.goto(robot.url("/classic.html"))
    await page.evaluate(CONNECT)
    async with asyncio.timeout(15):
        conn = await robot.connections.get()
        await conn.onReady()
    await wait_for_js(page, "window.frames > 3")
    await page.evaluate("conn.put_nowait('before')")
    assert await asyncio.wait_for(robot.inbox.get(), 10) == "before"
    assert len(robot.server._sessions) == 1
    async with asyncio.timeout(10):
        while not conn._heartbeat.peer_resumes:  # noqa: ASYNC110 - a flag without an event
            await asyncio.sleep(0.05)

    # the robot's network goes away under the session
    lost = conn.on_link_lost()
    asyncio.get_running_loop().create_task(conn._pc.sctp.transport.transport.stop())
    await asyncio.wait_for(lost, 10)
    await wait_for_js(page, "window.lost === 1", timeout=15)
    await page.evaluate("conn.put_nowait('during')")
    await wait_for_js(page, "window.restored === 1", timeout=20)
    assert await asyncio.wait_for(robot.inbox.get(), 10) == "during"
    frames_then = await page.evaluate("window.frames")
    await wait_for_js(page, f"window.frames > {frames_then + 5}", timeout=15)  # video is back
    # the same objects: the page's connection and MediaStream; the robot's RTCConnection
    assert await page.evaluate("conn.linkUp && window.shown === conn.video.streams[0] && window.closedAt === undefined")
    assert robot.connections.empty()  # no second connection on the robot
    conn.put_nowait("after")
    await wait_for_js(page, "got.includes('after')")
    stats = await page.evaluate("conn.linkStatistics()")
    assert stats["losses"] == 1 and stats["restores"] == 1
    # closing the page's side: the robot closes at once (a goodbye, not a lost link)
    await page.evaluate("conn.close()")
    await asyncio.wait_for(conn.onClose(), 10)
    assert conn.link_statistics().losses == 1
    assert not errors
    await page.close()
