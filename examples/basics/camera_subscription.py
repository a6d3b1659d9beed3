"""Basics 2: the same, reading a subscription in a coroutine.

``camera.subscribe()`` with no argument returns a subscription: ``await sub.get()`` gives the
newest frame not read yet (a slow reader skips frames rather than falling behind).
"""

import asyncio
import os

from rtcbot import CVCamera, CVDisplay
from rtcbot.devices.display import FrameRecorder
from rtcbot.devices.sources import TestPattern

camera = CVCamera() if CVCamera.available() else TestPattern(320, 240)
display = CVDisplay() if CVDisplay.available() else FrameRecorder()


async def sendFrames():
    frameSubscription = camera.subscribe()
    while True:
        frame = await frameSubscription.get()
        display.put_nowait(frame)


async def main():
    task = asyncio.create_task(sendFrames())
    # Run until Ctrl+C, or for RTCBOT_EXAMPLE_SECONDS seconds (the tests set it).
    await asyncio.sleep(float(os.environ.get("RTCBOT_EXAMPLE_SECONDS", "inf")))
    task.cancel()


try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
finally:
    camera.close()
    display.close()
print(f"{type(camera).__name__} -> {type(display).__name__}: {display.frames} frames shown")
