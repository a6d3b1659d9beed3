"""Basics 6: one camera, two windows.

``camera.get()`` reads one shared default subscription, so a second reader needs a subscription
of its own: each window then gets every frame (each its own copy).
"""

import asyncio
import os

from rtcbot import CVCamera, CVDisplay
from rtcbot.devices.display import FrameRecorder
from rtcbot.devices.sources import TestPattern

camera = CVCamera() if CVCamera.available() else TestPattern(320, 240)
screen = CVDisplay.available()
display = CVDisplay() if screen else FrameRecorder()
display2 = CVDisplay() if screen else FrameRecorder()

display.putSubscription(camera)
display2.putSubscription(camera.subscribe())


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
    display2.close()
print(f"display 1: {display.frames} frames shown")
print(f"display 2: {display2.frames} frames shown")
