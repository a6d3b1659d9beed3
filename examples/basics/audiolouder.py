"""Basics 8: louder audio.

A callback multiplies each block of sound by 5 before playing it (values beyond [-1, 1] are
clipped by the speaker). It sends only while the speaker is ready (its sound device open).
"""

import asyncio
import os

from rtcbot import Microphone, Speaker

microphone = Microphone()
speaker = Speaker()


@microphone.subscribe
def onData(data):
    data = data * 5
    if speaker.ready:
        speaker.put_nowait(data)


async def main():
    # Run until Ctrl+C, or for RTCBOT_EXAMPLE_SECONDS seconds (the tests set it).
    await asyncio.sleep(float(os.environ.get("RTCBOT_EXAMPLE_SECONDS", "inf")))


try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
finally:
    microphone.close()
    speaker.close()
print(f"played {speaker.played / speaker.samplerate:.1f} s of louder sound")
