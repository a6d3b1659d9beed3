"""Media between rtcbot.js in Chromium and Python rtcbot (aiortc): Python frames play in a
<video>, and the browser's fake camera arrives in Python as numpy frames."""

# ruff: noqa: E501 -- the JavaScript run in the page keeps its natural line lengths

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import pytest_asyncio
from aiohttp import web

from rtcbot.connection import RTCConnection
from support.browser import serve

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def media_robot():
    """POST /connect answers with a Python connection that sends 64x48 frames (a moving bar)
    and subscribes to incoming video; ``connections`` is a Queue of them."""
    connections: asyncio.Queue = asyncio.Queue()
    made: list[RTCConnection] = []
    tasks: list[asyncio.Task] = []

    async def frames(conn: RTCConnection) -> None:
        n = 0
        while not conn.closed:
            frame = np.zeros((48, 64, 3), dtype=np.uint8)
            frame[:, n % 64] = (0, 255, 0)
            conn.video.put_nowait(frame)
            n += 1
            await asyncio.sleep(1 / 30)  # the frame rate of this synthetic camera

    async def connect(request: web.Request) -> web.Response:
        conn = RTCConnection(rtcConfiguration=[])
        made.append(conn)
        incoming = conn.video.subscribe()
        conn.video.put_nowait(np.zeros((48, 64, 3), dtype=np.uint8))
        answer = await conn.getLocalDescription(await request.json())
        tasks.append(asyncio.create_task(frames(conn)))
        connections.put_nowait((conn, incoming))
        return web.json_response(answer)

    async with serve([web.post("/connect", connect)]) as site:
        site.connections = connections
        try:
            yield site
        finally:
            for conn in made:
                conn.close()
            for task in tasks:
                task.cancel()
            async with asyncio.timeout(10):
                for conn in made:
                    await conn
                await asyncio.gather(*tasks, return_exceptions=True)


async def test_python_video_plays_in_the_page_and_the_page_camera_reaches_python(
    context, media_robot
):
    page = await context.new_page()
    await page.goto(media_robot.url("/classic.html"))
    size = await page.evaluate(
        """async () => {
            const camera = (await navigator.mediaDevices.getUserMedia({video: true})).getVideoTracks()[0];
            window.conn = new rtcbot.RTCConnection(true, {iceServers: []});
            conn.video.putSubscription(camera);
            const el = document.createElement("video");
            el.muted = true; el.autoplay = true; el.playsInline = true;
            document.body.appendChild(el);
            conn.video.subscribe((stream) => { el.srcObject = stream; });
            const offer = await conn.getLocalDescription();
            const response = await fetch("/connect", {method: "POST", body: JSON.stringify(offer)});
            await conn.setRemoteDescription(await response.json());
            await conn.onReady();
            await new Promise((resolve) => {
                const check = () => el.videoWidth > 0 ? resolve() : el.requestVideoFrameCallback(check);
                el.requestVideoFrameCallback(check);
            });
            return [el.videoWidth, el.videoHeight];
        }"""
    )
    assert size == [64, 48]
    async with asyncio.timeout(15):
        _conn, incoming = await media_robot.connections.get()
        frame = await incoming.get()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    await page.close()
