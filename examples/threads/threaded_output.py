"""Running blocking code: consuming data in another thread.

An output (a motor driver, a slow display) takes half a second per value. A
ThreadedSubscriptionConsumer runs it in a system thread: `myoutput.put_nowait(value)` returns at
once and the event loop keeps running while the thread works through the values.
"""

import asyncio
import time

from _stall import StallMeter, run_seconds

from rtcbot.base import SubscriptionClosed, ThreadedSubscriptionConsumer


def set_output_value(value):
    time.sleep(0.5)  # Represents an operation that takes half a second to complete
    print("output:", value, flush=True)


class MyOutput(ThreadedSubscriptionConsumer):
    def _consumer(self):
        self._setReady(True)
        while not self._shouldClose:
            try:
                data = self._get()
                set_output_value(data)
            except SubscriptionClosed:
                break

        self._setReady(False)


myoutput = MyOutput()


async def main():
    video = StallMeter()
    ticker = asyncio.create_task(video.run())
    for value in range(3):
        myoutput.put_nowait(value)  # never blocks the loop
    print("queued 3 values", flush=True)
    await asyncio.sleep(run_seconds() or 2.0)  # the loop stays free meanwhile
    ticker.cancel()
    myoutput.close()
    await myoutput  # the thread finishes the value in hand, then stops
    print(f"longest video stall: {video.longest * 1000:.0f} ms", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
