"""`rtcbot demo`, run as a user would: live video with a latency overlay, keyboard control
printed by Python, the robot stopping by itself, a token, a clean Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys

import pytest

from browser.conftest import open_page
from support.browser import wait_for_js

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    """`python -m rtcbot demo` in a subprocess; its output lines arrive in a queue."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.args = ["--port", str(self.port), "--pattern", *args]
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        self.seen: list[str] = []

    async def __aenter__(self) -> Demo:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rtcbot", "demo", *self.args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.reader = asyncio.ensure_future(self._read())
        await self.expect("rtcbot demo: open")
        return self

    async def _read(self) -> None:
        async for raw in self.proc.stdout:
            await self.lines.put(raw.decode().rstrip("\n"))

    async def expect(self, text: str, timeout: float = 15) -> str:
        """The first new output line containing ``text``."""
        async with asyncio.timeout(timeout):
            while True:
                line = await self.lines.get()
                self.seen.append(line)
                if text in line:
                    return line

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)  # Ctrl-C
        async with asyncio.timeout(15):
            code = await self.proc.wait()
            await self.reader
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return code

    async def __aexit__(self, *exc) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        self.reader.cancel()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


async def test_demo_video_overlay_keyboard_and_safe_stop(context):
    async with Demo() as demo:
        page = await open_page(context, demo.url)
        await demo.expect("operator connected")
        # live video: frames decoded on the page, with their end-to-end latency
        await wait_for_js(page, "window.demo.latencies.length >= 20", timeout=20)
        latencies = await page.evaluate("window.demo.latencies")
        bad = [value for value in latencies if not 0 <= value < 1000]
        assert not bad, (bad, latencies)
        await wait_for_js(page, "document.getElementById('overlay').textContent.includes('fps')")
        # keyboard control reaches Python
        await page.keyboard.down("KeyW")
        await demo.expect("control: forward=+1.00 turn=+0.00 (keyboard)")
        await page.keyboard.down("ArrowLeft")
        await demo.expect("control: forward=+1.00 turn=-1.00 (keyboard)")
        await page.keyboard.up("KeyW")
        await page.keyboard.up("ArrowLeft")
        await demo.expect("control: forward=+0.00 turn=+0.00 (keyboard)")
        assert not page.errors
        # the operator goes away: the robot stops by itself, and notices the disconnect
        await page.close()
        await demo.expect("operator disconnected", timeout=5)
        assert await demo.stop() == 0
    assert any("safety stop: " in line and "stopping the robot" in line
               for line in demo.seen), demo.seen
    assert demo.seen[-1] == "rtcbot demo stopped"


async def test_demo_with_a_token_refuses_pages_without_it(context):
    async with Demo("--token", "let-me-in") as demo:
        line = demo.seen[0]
        assert "?token=let-me-in" in line
        page = await open_page(context, demo.url)
        await wait_for_js(page, "document.getElementById('status').textContent.includes('401')")
        await page.close()
        page = await open_page(context, demo.url + "?token=let-me-in")
        await demo.expect("operator connected")
        await page.close()
        assert await demo.stop() == 0
