"""Basics 7: black-and-white video.

The callback converts each frame to grey with OpenCV before showing it. It runs on the event
loop: keep such work short (a few milliseconds), or do it in the camera's thread with
``CVCamera(preprocessframe=...)``.
"""

import asyncio
import os

import cv2

from rtcbot import CVCamera, CVDisplay
from rtcbot.devices.display import FrameRecorder
from rtcbot.devices.sources import TestPattern

camera = CVCamera() if CVCamera.available() else TestPattern(320, 240)
display = CVDisplay() if CVDisplay.available() else FrameRecorder()


@camera.subscribe
def onFrame(frame):
    bwframe = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    display.put_nowait(bwframe)


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
shape = getattr(display, "shape", None)
print(f"{display.frames} black-and-white frames shown" + (f", shape {shape}" if shape else ""))
