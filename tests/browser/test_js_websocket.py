"""rtcbot.js Websocket against a tiny aiohttp websocket server (echo, and a server that
speaks first and closes)."""

# ruff: noqa: E501 -- the JavaScript run in the page keeps its natural line lengths

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from support.browser import serve

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def ws_site():
    """/echo sends every message back as it came (text as text, binary as binary) and records
    the raw text it received; /hello sends a JSON greeting, then closes."""
    received: list = []

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                received.append(msg.data)
                await ws.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                received.append(msg.data)
                await ws.send_bytes(msg.data)
        return ws

    async def hello(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str('{"hello": "robot"}')
        await ws.send_str("raw text")
        await ws.close()
        return ws

    async with serve([web.get("/echo", echo), web.get("/hello", hello)]) as site:
        site.received = received
        yield site


async def test_websocket_round_trip_queued_until_open(page, ws_site):
    result = await page.evaluate(
        """async (url) => {
            const ws = new rtcbot.Websocket(url);
            const a = [], b = [];
            ws.subscribe((m) => a.push(m));
            ws.subscribe((m) => b.push(m));
            // sent before the socket is open: queued, in order
            const values = ["123", 123, {x: [1, 2.5]}, null, "héllo"];
            for (const v of values) ws.put_nowait(v);
            ws.put_nowait(new Uint8Array([1, 2, 3]));
            const openedBefore = ws.ready;
            await ws.onReady();
            const q = ws.subscribe();
            for (let i = 0; i <= values.length; i++) await q.get(10000);
            const bin = a[values.length];
            const closed = ws.onClose();
            ws.close();
            await closed;
            let afterClose;
            try { ws.put_nowait(1); } catch (e) { afterClose = e.name; }
            return {values, got: a.slice(0, values.length), same: JSON.stringify(a) === JSON.stringify(b),
                    binary: [bin instanceof ArrayBuffer, Array.from(new Uint8Array(bin))],
                    openedBefore, url: ws.url, afterClose, error: ws.error};
        }""",
        ws_site.url("/echo"),  # http:// is converted to ws://
    )
    assert result["got"] == result["values"]
    assert result["same"] is True
    assert result["binary"] == [True, [1, 2, 3]]
    assert result["openedBefore"] is False
    assert result["url"] == ws_site.url("/echo", scheme="ws")
    assert result["afterClose"] == "SubscriptionClosed"
    assert result["error"] is None
    # what the server saw: every value JSON-encoded (strings too), binary unchanged
    assert ws_site.received == ['"123"', "123", '{"x":[1,2.5]}', "null", '"héllo"', b"\x01\x02\x03"]


async def test_websocket_server_close_and_raw_text(page, ws_site):
    result = await page.evaluate(
        """async (url) => {
            const ws = new rtcbot.Websocket(url);
            const got = [];
            ws.subscribe((m) => got.push(m));
            await ws.onClose();
            return {got, closed: ws.closed, notJson: ws.statistics().notJson};
        }""",
        ws_site.url("/hello", scheme="ws"),
    )
    assert result == {"got": [{"hello": "robot"}, "raw text"], "closed": True, "notJson": 1}


async def test_websocket_refused_reports_an_error(page):
    # a port that nothing listens on
    sock = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = sock.sockets[0].getsockname()[1]
    sock.close()
    await sock.wait_closed()
    result = await page.evaluate(
        """async (url) => {
            const ws = new rtcbot.Websocket(url);
            const err = await ws.onError();
            let ready;
            try { await ws.onReady(); } catch (e) { ready = e.name; }
            return {err: err && err.message, closed: ws.closed, ready};
        }""",
        f"ws://127.0.0.1:{port}/nothing",
    )
    assert result["closed"] is True
    assert "failed" in result["err"] and str(port) in result["err"]
    assert result["ready"] == "RTCBotError"
    with pytest.raises(Exception, match="must be ws"):
        await page.evaluate("new rtcbot.Websocket('ftp://example.invalid/')")
