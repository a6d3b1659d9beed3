"""rtcbot.js in Chromium <-> Python rtcbot.RTCConnection (aiortc) through a tiny aiohttp
/connect route: values cross identically both ways, and Python notices a closed or hung tab."""

# ruff: noqa: E501 -- the JavaScript run in the page keeps its natural line lengths

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from aiohttp import web

from rtcbot.connection import RTCConnection
from support.browser import serve, wait_for_js

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def robot():
    """A site whose POST /connect answers each page's offer with a new Python RTCConnection;
    ``robot.connections`` is a Queue of them."""
    connections: asyncio.Queue[RTCConnection] = asyncio.Queue()
    made: list[RTCConnection] = []

    async def connect(request: web.Request) -> web.Response:
        conn = RTCConnection(rtcConfiguration=[])
        made.append(conn)
        answer = await conn.getLocalDescription(await request.json())
        connections.put_nowait(conn)
        return web.json_response(answer)

    async with serve([web.post("/connect", connect)]) as site:
        site.connections = connections
        try:
            yield site
        finally:
            for conn in made:
                conn.close()
            async with asyncio.timeout(10):
                for conn in made:
                    await conn


CONNECT = """async () => {
    window.conn = new rtcbot.RTCConnection(true, {iceServers: []});
    window.got = [];
    conn.subscribe((m) => got.push(m));
    const offer = await conn.getLocalDescription();
    const response = await fetch("/connect", {method: "POST", body: JSON.stringify(offer),
                                              headers: {"Content-Type": "application/json"}});
    await conn.setRemoteDescription(await response.json());
    await conn.onReady();
}"""


async def open_connected_page(context, robot):
    page = await context.new_page()
    await page.goto(robot.url("/classic.html"))
    await page.evaluate(CONNECT)
    async with asyncio.timeout(10):
        conn = await robot.connections.get()
        await conn.onReady()
    return page, conn


VALUES = [
    "123",
    123,
    1.5,
    -2,
    "",
    "null",
    None,
    True,
    False,
    {"a": [1, 2.5, "x"], "b": {"c": None}},
    [1, "2", [3.25]],
    "héllo ✓",
]


async def test_values_cross_identically_both_ways(context, robot):
    page, conn = await open_connected_page(context, robot)
    # the page echoes everything back
    await page.evaluate("conn.subscribe(conn.put_nowait); 0")
    for value in [*VALUES, b"\x00\x01\xff"]:
        conn.put_nowait(value)
    echoed = []
    async with asyncio.timeout(10):
        for _ in range(len(VALUES) + 1):
            echoed.append(await conn.get())
    assert echoed[:-1] == VALUES
    assert [type(v) for v in echoed[:3]] == [str, int, float]
    assert echoed[-1] == b"\x00\x01\xff" and isinstance(echoed[-1], bytes)
    got = await wait_for_js(page, f"got.length === {len(VALUES) + 1} && got.slice(0, -1)")
    assert got == VALUES
    binary = await page.evaluate(
        "[got.at(-1) instanceof ArrayBuffer, Array.from(new Uint8Array(got.at(-1)))]"
    )
    assert binary == [True, [0, 1, 255]]
    # and the page's own values, typed in JS
    await page.evaluate(
        """() => {
            conn.unsubscribe(conn.put_nowait);
            conn.put_nowait("123"); conn.put_nowait({k: [1, 0.5]}); conn.put_nowait(new Uint8Array([7]));
        }"""
    )
    async with asyncio.timeout(10):
        assert [await conn.get() for _ in range(3)] == ["123", {"k": [1, 0.5]}, b"\x07"]
    await page.close()


async def test_heartbeat_is_spoken_both_ways(context, robot):
    page, _conn = await open_connected_page(context, robot)
    await wait_for_js(page, "conn._hbStats.pongsReceived > 0")  # Python answered our pings
    stats = await page.evaluate("conn.stats()")
    assert stats["heartbeat"]["peerSpeaksHeartbeat"] is True and stats["rtt"] >= 0
    await page.close()


async def test_python_notices_the_tab_closing(context, robot):
    page, conn = await open_connected_page(context, robot)
    await page.close()
    async with asyncio.timeout(10):
        await conn.onClose()
    # closed by the page (pagehide), not by a heartbeat timeout
    assert conn.error is None


async def test_python_notices_a_hung_tab_by_the_heartbeat(context, robot):
    page, conn = await open_connected_page(context, robot)
    await wait_for_js(page, "conn._hbStats.pongsReceived > 0")
    cdp = await context.new_cdp_session(page)
    await cdp.send("Debugger.enable")
    await cdp.send("Debugger.pause")
    try:
        async with asyncio.timeout(10):
            await conn.onClose()
    finally:
        await cdp.send("Debugger.resume")
    assert conn.error is not None and "vanished" in str(conn.error)
    await page.close()


async def test_the_page_notices_python_closing(context, robot):
    page, conn = await open_connected_page(context, robot)
    await conn.close()
    await wait_for_js(page, "conn.closed")
    assert await page.evaluate("conn.error") is None
    await page.close()


async def test_python_offers_and_the_page_answers(context, robot):
    # the relay pattern: the robot makes the offer, the page answers it
    python = RTCConnection(rtcConfiguration=[])
    try:
        offer = await python.getLocalDescription()
        page = await context.new_page()
        await page.goto(robot.url("/classic.html"))
        answer = await page.evaluate(
            """async (offer) => {
                window.conn = new rtcbot.RTCConnection(true, {iceServers: []});
                return await conn.getLocalDescription(offer);
            }""",
            offer,
        )
        await python.setRemoteDescription(answer)
        async with asyncio.timeout(10):
            await python.onReady()
        python.put_nowait({"hello": "page"})
        assert await page.evaluate("conn.get(10000)") == {"hello": "page"}
        await page.evaluate("conn.put_nowait('hello python')")
        async with asyncio.timeout(10):
            assert await python.get() == "hello python"
        await page.close()
        async with asyncio.timeout(10):
            await python.onClose()
    finally:
        python.close()
        async with asyncio.timeout(10):
            await python
