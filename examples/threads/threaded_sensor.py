"""Running blocking code: producing data in another thread.

The same half-second sensor, read in a ThreadedSubscriptionProducer: the reading happens in a
system thread, and `await mysensor.get()` hands each value to the event loop, which never
stops -- the 30 fps stand-in for video keeps ticking.
"""

import asyncio
import random
import time

from _stall import StallMeter, run_seconds

from rtcbot.base import ThreadedSubscriptionProducer


def get_sensor_data():
    time.sleep(0.5)  # Represents an operation that takes half a second to complete
    return random.random()


class MySensor(ThreadedSubscriptionProducer):
    def _producer(self):
        self._setReady(True)  # Notify that ready to start gathering data
        while not self._shouldClose:  # Keep gathering until close is requested
            time.sleep(1)
            data = get_sensor_data()
            # Send the data to the asyncio thread,
            # so it can be retrieved with await mysensor.get()
            self._put_nowait(data)
        self._setReady(False)  # Notify that sensor is no longer operational


mysensor = MySensor()  # created before any event loop exists, as in every tutorial


async def send_sensor_data():
    while True:
        data = await mysensor.get()  # we await the output of MySensor in a loop
        print("sensor:", data, flush=True)  # a robot would send it: conn.put_nowait(data)


async def main():
    video = StallMeter()
    tasks = [asyncio.create_task(send_sensor_data()), asyncio.create_task(video.run())]
    try:
        await asyncio.wait(tasks, timeout=run_seconds())
    finally:
        for task in tasks:
            task.cancel()
        mysensor.close()  # returns at once, even while the thread sleeps
        print(f"longest video stall: {video.longest * 1000:.0f} ms", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
