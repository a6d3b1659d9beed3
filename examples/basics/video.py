"""Basics 3: the putSubscription shorthand.

A consumer reads by itself from anything with ``async get()``: a subscription, or the producer
itself. One line wires the camera to the display.
"""

import asyncio
import os

from rtcbot import CVCamera, CVDisplay
from rtcbot.devices.display import FrameRecorder
from rtcbot.devices.sources import TestPattern

camera = CVCamera() if CVCamera.available() else TestPattern(320, 240)
display = CVDisplay() if CVDisplay.available() else FrameRecorder()

display.putSubscription(camera)  # the same as display.putSubscription(camera.subscribe())


async def main():
    # Run until Ctrl+C, or for RTCBOT_EXAMPLE_SECONDS seconds (the tests set it).
    await asyncio.sleep(float(os.environ.get("RTCBOT_EXAMPLE_SECONDS", "inf")))


try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
finally:
    camera.close()
    display.close()
print(f"{type(camera).__name__} -> {type(display).__name__}: {display.frames} frames shown")
