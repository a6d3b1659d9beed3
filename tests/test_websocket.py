"""rtcbot.Websocket against real aiohttp servers on 127.0.0.1 (RTCBot 0.2.5 defects 5.6)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import warnings

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from rtcbot.base.base import SubscriptionProducer
from rtcbot.base.errors import SubscriptionClosed
from rtcbot.websocket import Websocket, WebsocketError


@contextlib.asynccontextmanager
async def serve(*routes: web.RouteDef):
    app = web.Application()
    app.add_routes(list(routes))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def raw_echo(record: list):
    """A plain aiohttp websocket that echoes frames as they came and records them."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            record.append(msg.data)
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    return web.get("/echo", handler)


async def free_port() -> int:
    server = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


async def test_client_json_rule_both_ways_and_binary():
    record: list = []
    async with serve(raw_echo(record)) as base, asyncio.timeout(10):
        ws = Websocket(base + "/echo")
        values = ["123", 123, {"x": [1, 2.5]}, None, "héllo", np.float32(1.5), np.arange(3)]
        for v in values:  # before the socket is open: kept, sent in order
            ws.put_nowait(v)
        ws.put_nowait(b"\x00\x01\xff")
        assert not ws.ready
        got = [await ws.get() for _ in range(len(values) + 1)]
        assert got == ["123", 123, {"x": [1, 2.5]}, None, "héllo", 1.5, [0, 1, 2], b"\x00\x01\xff"]
        assert isinstance(got[0], str) and isinstance(got[-1], bytes)
        assert record == ['"123"', "123", '{"x":[1,2.5]}', "null", '"héllo"', "1.5", "[0,1,2]",
                          b"\x00\x01\xff"]
        assert ws.url == base.replace("http://", "ws://") + "/echo"
        await ws.close()
        assert ws.closed and ws.error is None
        assert ws.statistics().sent == 8 and ws.statistics().received == 8


async def test_unencodable_value_raises_and_socket_keeps_working():
    async with serve(raw_echo([])) as base, asyncio.timeout(10):
        ws = Websocket(base + "/echo")
        await ws.onReady()
        with pytest.raises(TypeError, match="object"):
            ws.put_nowait(object())
        with pytest.raises(ValueError, match="NaN"):
            ws.put_nowait({"v": float("nan")})
        ws.put_nowait("still here")
        assert await ws.get() == "still here"
        ws.close()
        await ws


async def test_text_that_is_not_json_arrives_as_str_and_is_counted():
    async def hello(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str('{"hello": "robot"}')
        await ws.send_str("raw text")
        await ws.send_bytes(b"bin")
        await ws.close()
        return ws

    async with serve(web.get("/hello", hello)) as base, asyncio.timeout(10):
        ws = Websocket(base + "/hello")
        await ws.onClose()  # the server spoke first and closed: nothing was lost
        sub = ws.subscribe()
        assert [await sub.get() for _ in range(3)] == [{"hello": "robot"}, "raw text", b"bin"]
        with pytest.raises(SubscriptionClosed):
            await sub.get()
        assert ws.statistics().not_json == 1
        await ws


async def test_failed_connect_is_reported_and_closed():
    port = await free_port()
    async with asyncio.timeout(10):
        ws = Websocket(f"ws://127.0.0.1:{port}/nothing")
        err = await ws.onError()
        assert isinstance(err, WebsocketError) and isinstance(err, ConnectionError)
        assert str(port) in str(err)
        await ws  # returns (0.2.5 hung here forever)
        assert ws.closed
        with pytest.raises(WebsocketError):
            await ws.onReady()
        with pytest.raises(SubscriptionClosed):
            await ws.get()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert not [w for w in caught if "Unclosed" in str(w.message)]


async def test_http_error_names_the_status():
    async with serve() as base, asyncio.timeout(10):
        ws = Websocket(base + "/missing")
        err = await ws.onError()
        assert "HTTP 404" in str(err)
        await ws


async def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match=r"ftp://example\.org/x"):
        Websocket("ftp://example.org/x")
    with pytest.raises(TypeError, match="int"):
        Websocket(42)
    with pytest.raises(ValueError, match="connect_timeout"):
        Websocket("ws://127.0.0.1:1/", connect_timeout=0)


async def test_server_side_echo_and_client_close():
    server_done = asyncio.Event()

    async def handler(request):
        ws = Websocket(request)
        ws.subscribe(ws.put_nowait)  # echo through the server-side Websocket
        await ws
        server_done.set()
        return ws.ws

    async with serve(web.get("/ws", handler)) as base, asyncio.timeout(10):
        client = Websocket(base + "/ws")
        client.put_nowait({"a": 1})
        client.put_nowait(b"\x01")
        assert await client.get() == {"a": 1}
        assert await client.get() == b"\x01"
        await client.close()
        await server_done.wait()  # the server side saw the close and its `await ws` returned


async def test_server_side_plain_get_gets_400():
    async def handler(request):
        ws = Websocket(request)
        await ws
        return ws.ws

    async with serve(web.get("/ws", handler)) as base, asyncio.timeout(10):
        async with aiohttp.ClientSession() as session, session.get(base + "/ws") as resp:
            assert resp.status == 400
            assert "websocket" in await resp.text()


async def test_messages_put_just_before_close_are_sent():
    """RTCBot's robot: ws.put_nowait(answer); await ws.close() -- the answer must arrive."""
    record: list = []
    async with serve(raw_echo(record)) as base, asyncio.timeout(10):
        ws = Websocket(base + "/echo")
        await ws.onReady()
        for i in range(50):
            ws.put_nowait(i)
        closing = ws.close()  # synchronous: returns at once
        assert ws.closed
        await closing
    assert record == [str(i) for i in range(50)]


async def test_close_before_connected_is_prompt():
    # 192.0.2.1 (TEST-NET-1) is never routed: the connect would hang until its timeout
    async with asyncio.timeout(5):
        ws = Websocket("ws://192.0.2.1:9/", connect_timeout=30)
        ws.close()
        await ws
        assert ws.error is None


async def test_peer_close_ends_readers_after_buffered_messages():
    async def handler(request):
        ws = Websocket(request)
        for i in range(3):
            ws.put_nowait(i)
        ws.close()
        await ws
        return ws.ws

    async with serve(web.get("/ws", handler)) as base, asyncio.timeout(10):
        client = Websocket(base + "/ws")
        got = []
        with pytest.raises(SubscriptionClosed):
            while True:
                got.append(await client.get())
        assert got == [0, 1, 2]
        await client


async def test_put_subscription_and_json_false():
    record: list = []
    async with serve(raw_echo(record)) as base, asyncio.timeout(10):
        source = SubscriptionProducer()
        ws = Websocket(base + "/echo", json=False)
        ws.putSubscription(source.subscribe())
        source.put_nowait("plain")
        source.put_nowait(b"bytes")
        assert await ws.get() == "plain"
        assert await ws.get() == b"bytes"
        with pytest.raises(TypeError, match="json=False"):
            ws.put_nowait({"no": "json"})
        await ws.close()
        source.close()
    assert record == ["plain", b"bytes"]


async def test_created_outside_the_loop_binds_to_it():
    """Rule 1: made where no loop runs (module level, another thread), used in the loop."""
    async with serve(raw_echo([])) as base, asyncio.timeout(10):
        made: list = []
        thread = threading.Thread(target=lambda: made.append(Websocket(base + "/echo")))
        thread.start()
        await asyncio.to_thread(thread.join)
        ws = made[0]
        await ws.onReady()
        ws.put_nowait("hi")
        assert await ws.get() == "hi"
        await ws.close()
