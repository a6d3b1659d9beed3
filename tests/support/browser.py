"""Helpers for tests that drive headless Chromium (Debian's ``/usr/bin/chromium``) with Python
Playwright: launching it, a tiny aiohttp site that serves rtcbot.js and test pages, and
waiting for page-side values with a bound.

Import as ``from support.browser import ...`` (``tests/`` is on ``sys.path``). The fixtures that
use these are in ``tests/browser/conftest.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiohttp import web

from rtcbot.javascript import getRTCBotJS, getRTCBotJSModule

__all__ = [
    "CHROMIUM_ARGS",
    "CHROMIUM_PATH",
    "FAKE_MEDIA_ARGS",
    "Site",
    "launch_chromium",
    "rtcbot_routes",
    "serve",
    "wait_for_js",
]

#: Debian's Chromium; never a browser downloaded by ``playwright install``.
CHROMIUM_PATH = os.environ.get("RTCBOT_CHROMIUM", "/usr/bin/chromium")

#: No sandbox (root in a container), no GPU, no network chatter. Host candidates stay hidden
#: behind ``.local`` mDNS names, as in every user's browser (Chromium's default).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: A fake camera (a moving test pattern) and microphone (a beep), granted without a prompt.
FAKE_MEDIA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]

CLASSIC_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>rtcbot classic</title>
<script src="/rtcbot.js"></script></head>
<body><input id="field"><textarea id="area"></textarea>
<div id="editable" contenteditable="true">edit me</div>
<div id="tall" style="height: 5000px">page</div></body></html>
"""

MODULE_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>rtcbot module</title>
<script type="module">
import rtcbot, * as named from "/rtcbot.mjs";
window.rtcbotModule = { rtcbot, named };
window.moduleLoaded = true;
</script></head><body></body></html>
"""

BLANK_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body></body></html>"""


async def launch_chromium(playwright: Any, *, fake_media: bool = True, headless: bool = True):
    """A Playwright ``Browser`` running Debian's Chromium with :data:`CHROMIUM_ARGS`
    (plus :data:`FAKE_MEDIA_ARGS` when ``fake_media``)."""
    args = list(CHROMIUM_ARGS) + (FAKE_MEDIA_ARGS if fake_media else [])
    return await playwright.chromium.launch(
        executable_path=CHROMIUM_PATH, args=args, headless=headless
    )


def rtcbot_routes() -> list[web.RouteDef]:
    """``GET /rtcbot.js`` (classic script), ``/rtcbot.mjs`` (ES module), and the test pages
    ``/classic.html`` (loads rtcbot.js; has an <input>, a <textarea>, a contenteditable and a
    tall body), ``/module.html`` (imports rtcbot.mjs into ``window.rtcbotModule``) and
    ``/blank.html``."""

    def text(body: str, content_type: str):
        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=body, content_type=content_type)

        return handler

    return [
        web.get("/rtcbot.js", text(getRTCBotJS(), "application/javascript")),
        web.get("/rtcbot.mjs", text(getRTCBotJSModule(), "application/javascript")),
        web.get("/classic.html", text(CLASSIC_PAGE, "text/html")),
        web.get("/module.html", text(MODULE_PAGE, "text/html")),
        web.get("/blank.html", text(BLANK_PAGE, "text/html")),
    ]


class Site:
    """A running aiohttp site on 127.0.0.1 (``url(path)`` builds absolute URLs)."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self.runner = runner
        self.port = port

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


@contextlib.asynccontextmanager
async def serve(
    routes: Iterable[web.AbstractRouteDef] = (), app: web.Application | None = None
) -> AsyncIterator[Site]:
    """Serve ``routes`` plus :func:`rtcbot_routes` on a free port of 127.0.0.1."""
    if app is None:
        app = web.Application()
    app.add_routes(rtcbot_routes())
    app.add_routes(list(routes))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Site(runner, port)
    finally:
        await runner.cleanup()


async def wait_for_js(page: Any, expression: str, timeout: float = 10.0, arg: Any = None) -> Any:
    """Wait until ``expression`` (a JS expression, or a function body taking ``arg``) is truthy
    in ``page`` and return its value; Playwright's own polling, bounded by ``timeout`` s."""
    handle = await page.wait_for_function(expression, arg=arg, timeout=timeout * 1000)
    try:
        return await handle.json_value()
    finally:
        await handle.dispose()


async def bounded(awaitable: Any, timeout: float = 10.0) -> Any:
    """``await awaitable`` for at most ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        return await awaitable
