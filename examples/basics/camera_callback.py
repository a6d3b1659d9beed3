"""Basics 1: show the camera in a window, with a callback (RTCBot's first tutorial step).

The camera calls ``onFrame`` with each frame (a BGR numpy array), about 30 times a second, and
the callback hands it to the display. Without a webcam, rtcbot's moving test pattern stands in;
without a screen, a FrameRecorder takes the display's place.
"""

import asyncio
import os

from rtcbot import CVCamera, CVDisplay
from rtcbot.devices.display import FrameRecorder
from rtcbot.devices.sources import TestPattern

camera = CVCamera() if CVCamera.available() else TestPattern(320, 240)
display = CVDisplay() if CVDisplay.available() else FrameRecorder()


@camera.subscribe
def onFrame(frame):
    # frame is a numpy array: (height, width, 3), BGR, uint8
    display.put_nowait(frame)


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
