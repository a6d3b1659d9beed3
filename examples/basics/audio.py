"""Basics 4: hear your microphone in your headphones.

The speaker reads from the microphone by itself. Audio is float32 numpy arrays
(samples, channels) in [-1, 1] at 48 kHz. (Use headphones: a speaker next to the microphone
howls.)
"""

import asyncio
import os

from rtcbot import Microphone, Speaker

microphone = Microphone()
speaker = Speaker()

speaker.putSubscription(microphone)


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
print(f"played {speaker.played / speaker.samplerate:.1f} s of sound")
