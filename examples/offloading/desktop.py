"""Offloading 2: the desktop. It connects to the robot (robot.py), receives its video,
processes each frame on this (faster) machine -- here: the brightness of the left and right
halves, steering toward the brighter side -- and sends the resulting command back.

    ROBOT=http://robot-ip:8080 python desktop.py

The processing runs in a worker thread, so the event loop keeps receiving video while a frame
is being analysed. Set RTCBOT_TOKEN if the robot requires one, RTCBOT_EXAMPLE_SECONDS to stop
after that many seconds.
"""

import asyncio
import json
import os

import aiohttp
import numpy as np

from rtcbot import RTCConnection, TestPattern

robot_url = os.environ.get("ROBOT", "http://localhost:8080")
token = os.environ.get("RTCBOT_TOKEN")
seconds = float(os.environ.get("RTCBOT_EXAMPLE_SECONDS", 0)) or None

conn = RTCConnection()
frames = conn.video.subscribe()  # receive the robot's video (this also asks for it)


def analyse(frame):
    """The heavy part, in a thread: a BGR uint8 frame (height, width, 3) in, a command out."""
    gray = frame.mean(axis=2)
    half = gray.shape[1] // 2
    left, right = float(gray[:, :half].mean()), float(gray[:, half:].mean())
    steer = float(np.clip((right - left) / 64.0, -1.0, 1.0))
    return {"steer": round(steer, 3), "brightness": round(float(gray.mean()), 1),
            "frame": TestPattern.read_index(frame)}  # the frame number, when it is a test pattern


async def connect():
    offer = await conn.getLocalDescription()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.post(
        robot_url + "/connect", data=json.dumps(offer), headers=headers
    ) as resp:
        if resp.status != 200:
            raise SystemExit(f"the robot refused: {resp.status} {await resp.text()}")
        answer = await resp.json()
    await conn.setRemoteDescription(answer)


async def main():
    await connect()
    await conn.onReady()
    print("Connected to the robot", flush=True)
    while True:
        frame = await frames.get()  # always the newest frame: old ones are skipped
        command = await asyncio.to_thread(analyse, frame)
        conn.put_nowait(command)
        print("Sent:", command, flush=True)


async def run():
    try:
        async with asyncio.timeout(seconds):
            await main()
    except TimeoutError:
        pass
    finally:
        await conn.close()


try:
    asyncio.run(run())
except KeyboardInterrupt:
    pass
