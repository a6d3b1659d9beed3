"""Several cameras: a Python robot offers three named video tracks; the page lists them by name
and shows any of them by name, whatever the order they arrive in (headless Chromium)."""

# ruff: noqa: E501 -- the JavaScript run in the page keeps its natural line lengths

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from aiohttp import web

from rtcbot.connection import RTCConnection
from rtcbot.devices.sources import TestPattern
from support.browser import serve

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# Each camera has its own size, so the page can tell which one it shows.
CAMERAS = {"front": (320, 240), "rear": (160, 120), "arm": (240, 180)}


@pytest_asyncio.fixture(loop_scope="session")
async def robot():
    """POST /connect answers with a connection that sends the three cameras, named."""
    cameras = {name: TestPattern(w, h, fps=15) for name, (w, h) in CAMERAS.items()}
    made: list[RTCConnection] = []

    async def connect(request: web.Request) -> web.Response:
        conn = RTCConnection(rtcConfiguration=[])
        made.append(conn)
        # added in an order different from the page's: names, not positions, count
        for name in ("rear", "arm", "front"):
            conn.video.addTrack(cameras[name], name=name)
        return web.json_response(await conn.getLocalDescription(await request.json()))

    async with serve([web.post("/connect", connect)]) as site:
        try:
            yield site
        finally:
            for conn in made:
                conn.close()
            for camera in cameras.values():
                camera.close()
            async with asyncio.timeout(10):
                for conn in made:
                    await conn
                for camera in cameras.values():
                    await camera


async def test_the_page_lists_the_cameras_and_shows_one_by_name(context, robot):
    page = await context.new_page()
    await page.goto(robot.url("/classic.html"))
    result = await page.evaluate(
        """async () => {
            const conn = new rtcbot.RTCConnection(true, {iceServers: []});
            conn.video.offerToReceive(3);
            const shown = {};
            // Ask for "rear" before any track exists: it is given when it arrives.
            const rearStream = new Promise((resolve) => conn.video.subscribe("rear", (stream, track, name) => resolve([stream, name])));
            const offer = await conn.getLocalDescription();
            const response = await fetch("/connect", {method: "POST", body: JSON.stringify(offer)});
            await conn.setRemoteDescription(await response.json());
            const [stream, name] = await rearStream;
            const size = async (s) => {
                const el = document.createElement("video");
                el.muted = true; el.autoplay = true; el.playsInline = true;
                document.body.appendChild(el);
                el.srcObject = s;
                await new Promise((resolve) => {
                    const check = () => el.videoWidth > 0 ? resolve() : el.requestVideoFrameCallback(check);
                    el.requestVideoFrameCallback(check);
                });
                return [el.videoWidth, el.videoHeight];
            };
            shown.rear = await size(stream);
            // Once all three are in, any of them by name.
            await new Promise((resolve) => { let n = 0; conn.video.subscribe(() => { if (++n === 3) resolve(); }); });
            shown.arm = await size(conn.video.stream("arm"));
            shown.front = await size(conn.video.stream("front"));
            const result = {names: conn.video.names.slice().sort(), name, shown, streamId: stream.id, missing: conn.video.stream("nope")};
            conn.close();
            return result;
        }"""
    )
    assert result["names"] == ["arm", "front", "rear"]
    assert result["name"] == "rear" and result["streamId"] == "rear"
    assert result["missing"] is None
    assert result["shown"] == {name: list(size) for name, size in CAMERAS.items()}
    await page.close()
