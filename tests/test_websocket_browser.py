"""rtcbot.Websocket (Python, server side) with the browser library's rtcbot.Websocket in
headless Chromium: the same JSON rule both ways, binary frames as binary."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web

from rtcbot.websocket import Websocket
from support.browser import CHROMIUM_PATH, launch_chromium, serve

pytestmark = pytest.mark.browser


async def test_browser_and_python_websockets_speak_the_same_rule():
    if not Path(CHROMIUM_PATH).exists():  # noqa: ASYNC240 - once
        pytest.skip(f"no Chromium at {CHROMIUM_PATH}")
    async_api = pytest.importorskip("playwright.async_api")
    received: list = []
    done = asyncio.Event()

    async def handler(request):
        ws = Websocket(request)

        @ws.subscribe
        def on_message(message):
            received.append(message)
            ws.put_nowait({"got": message} if not isinstance(message, bytes) else message[::-1])
            if message == "bye":
                done.set()

        await ws
        return ws.ws

    async with serve([web.get("/ws", handler)]) as site, async_api.async_playwright() as pw:
        browser = await launch_chromium(pw, fake_media=False)
        try:
            page = await browser.new_page()
            await page.goto(site.url("/classic.html"))
            result = await page.evaluate(
                """async (url) => {
                    const ws = new rtcbot.Websocket(url);
                    const q = ws.subscribe();
                    const values = ["123", 123, {a: [1, null]}, "bye"];
                    ws.put_nowait(new Uint8Array([1, 2, 3]));
                    for (const v of values) ws.put_nowait(v);
                    const got = [];
                    for (let i = 0; i <= values.length; i++) got.push(await q.get(10000));
                    got[0] = Array.from(new Uint8Array(got[0]));
                    ws.close();
                    return got;
                }""",
                site.url("/ws", scheme="ws"),
            )
            async with asyncio.timeout(10):
                await done.wait()
        finally:
            await browser.close()
    assert received == [b"\x01\x02\x03", "123", 123, {"a": [1, None]}, "bye"]
    assert isinstance(received[1], str) and isinstance(received[2], int)
    assert result == [[3, 2, 1], {"got": "123"}, {"got": 123}, {"got": {"a": [1, None]}},
                      {"got": "bye"}]
