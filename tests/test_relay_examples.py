"""The mobile (relay) and offloading tutorials, run as programs the way a user runs them, checked
by what they print (and, for the browser half, by headless Chromium)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from rtcbot.connection import RTCConnection
from rtcbot.devices.sources import TestPattern
from rtcbot.relay import connect_to_robot

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = [pytest.mark.slow, pytest.mark.process]


class Program:
    """An example program in a subprocess; its output lines are collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, path: Path, **env: str) -> Program:
        """``python NAME`` in the program's folder, as a user runs an example."""
        return await cls.run(path.name, [path.name], path.parent, env)

    @classmethod
    async def run(cls, name: str, args: list[str], cwd: Path | None, env: dict) -> Program:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *args, cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        return cls(proc, name)

    async def _read(self) -> None:
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip())
            self._changed.set()
        self._changed.set()

    async def expect(self, pattern: str, timeout: float = 20.0) -> re.Match:
        """The first output line matching ``pattern`` (waiting for it)."""
        regex = re.compile(pattern)
        seen = 0
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for line in self.lines[seen:]:
                        match = regex.search(line)
                        if match:
                            return match
                    seen = len(self.lines)
                    if self._reader.done():
                        raise AssertionError(f"{self.name} ended without {pattern!r}:\n"
                                             + "\n".join(self.lines[-30:]))
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{self.name}: no {pattern!r} within {timeout} s:\n"
                                 + "\n".join(self.lines[-30:])) from None

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl-C, as a user would
            try:
                async with asyncio.timeout(10):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._reader
        return self.proc.returncode


async def free_port() -> int:
    server = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


@pytest.fixture
async def mobile():
    """server.py (the relay) and robot.py, running and registered."""
    port = await free_port()
    env = {"RTCBOT_RELAY_SECRET": "s3cret", "RTCBOT_RELAY_TOKEN": "t0ken", "PORT": str(port)}
    server = await Program.start(EXAMPLES / "mobile" / "server.py", **env)
    programs = [server]
    try:
        await server.expect(r"Running on")
        robot = await Program.start(EXAMPLES / "mobile" / "robot.py",
                                    RTCBOT_RELAY=f"http://127.0.0.1:{port}", **env)
        programs.append(robot)
        await robot.expect(r"Registered at the relay as 'robot'")
        yield f"http://127.0.0.1:{port}", server, robot
    finally:
        for program in reversed(programs):
            await program.stop()


async def test_mobile_python_viewer(mobile):
    url, _server, robot = mobile
    conn = RTCConnection()
    frames = conn.video.subscribe()
    async with asyncio.timeout(30):
        await connect_to_robot(url, "robot", conn, token="t0ken")
        await conn.onReady()
        await robot.expect(r"Started WebRTC")
        frame = await frames.get()
        assert frame.shape == (240, 320, 3) and TestPattern.read_index(frame) is not None
        conn.put_nowait({"forward": 1})
        await robot.expect(r"Control message: \{'forward': 1\}")
    await conn.close()


@pytest.mark.browser
async def test_mobile_browser_page(mobile):
    from support.browser import CHROMIUM_PATH, launch_chromium

    if not Path(CHROMIUM_PATH).exists():  # noqa: ASYNC240 - once
        pytest.skip(f"no Chromium at {CHROMIUM_PATH}")
    async_api = pytest.importorskip("playwright.async_api")
    url, _server, robot = mobile
    async with async_api.async_playwright() as playwright:
        browser = await launch_chromium(playwright, fake_media=False)
        try:
            page = await browser.new_page()
            errors: list = []
            page.on("pageerror", lambda e: errors.append(e))
            await page.goto(url + "/#token=t0ken")
            await page.wait_for_function(
                "document.getElementById('status').textContent === 'Connected'", timeout=20000)
            await page.wait_for_function(
                "document.querySelector('video').videoWidth === 320", timeout=20000)
            await page.keyboard.press("ArrowUp")
            await robot.expect(r"Control message: .*'key': 'ArrowUp'")
            # a wrong token is refused with the relay's reason shown as text
            other = await browser.new_page()
            other.on("pageerror", lambda e: errors.append(e))
            await other.goto(url + "/#token=wrong")
            await other.wait_for_function(
                "document.getElementById('status').textContent.startsWith('Refused')",
                timeout=10000)
            assert "wrong token" in await other.text_content("#status")
            assert not errors
        finally:
            await browser.close()


async def test_offloading_desktop_processes_video_and_controls_robot():
    port = await free_port()
    robot = await Program.start(EXAMPLES / "offloading" / "robot.py", PORT=str(port))
    try:
        await robot.expect(r"Running on")
        desktop = await Program.start(EXAMPLES / "offloading" / "desktop.py",
                                      ROBOT=f"http://127.0.0.1:{port}",
                                      RTCBOT_EXAMPLE_SECONDS="4")
        await desktop.expect(r"Connected to the robot")
        await robot.expect(r"Control message: \{'steer': .*'frame': \d+")
        async with asyncio.timeout(20):
            assert await desktop.proc.wait() == 0  # it stops by itself after 4 s
        await desktop.stop()
        sent = [int(m) for m in re.findall(r"'frame': (\d+)", "\n".join(desktop.lines))]
        assert len(sent) >= 5 and sent == sorted(sent), desktop.lines[-10:]
        assert all(-1 <= float(s) <= 1 for s in
                   re.findall(r"'steer': (-?[0-9.]+)", "\n".join(desktop.lines)))
    finally:
        await robot.stop()


async def test_relay_command_line():
    """``rtcbot relay`` (here through its module, as the lead wires it into ``rtcbot``): a
    generated secret and token are printed; a robot and a client use them."""
    port = await free_port()
    relay = await Program.run("rtcbot relay", ["-m", "rtcbot.relay.cli", "relay", "--host",
                                               "127.0.0.1", "--port", str(port)], None, {})
    try:
        secret = (await relay.expect(r"connect_robot\(.*, NAME, '([^']+)'")).group(1)
        token = (await relay.expect(r"#token=(\S+)")).group(1)
        await relay.expect(r"Running on")
        from rtcbot.relay import connect_robot

        url = f"http://127.0.0.1:{port}"
        robot = connect_robot(url, "cli-bot", secret,
                              lambda conn: conn.subscribe(conn.put_nowait),
                              rtc_configuration=[])
        try:
            async with asyncio.timeout(20):
                await robot.onReady()
                conn = await connect_to_robot(url, "cli-bot", token=token)
                await conn.onReady()
                conn.put_nowait("ping")
                assert await conn.get() == "ping"
                await conn.close()
        finally:
            robot.close()
            await robot
    finally:
        await relay.stop()
