"""A stand-in for a video stream: ticks 30 times a second on the event loop and remembers the
longest gap, which is how long the video would have frozen."""

import asyncio
import os
import time


class StallMeter:
    def __init__(self, fps: float = 30):
        self.period = 1 / fps
        self.longest = 0.0

    async def run(self):
        last = time.perf_counter()
        while True:
            await asyncio.sleep(self.period)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last - self.period)
            last = now


def run_seconds() -> float | None:
    """How long the example runs: RTCBOT_EXAMPLE_SECONDS, or until Ctrl-C."""
    value = os.environ.get("RTCBOT_EXAMPLE_SECONDS")
    return float(value) if value else None
