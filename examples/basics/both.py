"""Basics 5: video and audio in one program.

Each pair is wired on its own; all of it runs on one event loop, with the capture, the sound
devices and the window in their own threads.
"""

import asyncio
import os

from rtcbot import CVCamera, CVDisplay, Microphone, Speaker
from rtcbot.devices.display import FrameRecorder
from rtcbot.devices.sources import TestPattern

camera = CVCamera() if CVCamera.available() else TestPattern(320, 240)
display = CVDisplay() if CVDisplay.available() else FrameRecorder()
microphone = Microphone()
speaker = Speaker()

display.putSubscription(camera)
speaker.putSubscription(microphone)


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
    microphone.close()
    speaker.close()
print(f"{display.frames} frames shown, {speaker.played / speaker.samplerate:.1f} s of sound played")
