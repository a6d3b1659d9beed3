"""Running blocking code: the problem.

A sensor takes half a second to read. Reading it directly in a coroutine blocks the event loop,
so everything else rtcbot does -- here, a stand-in for a 30 fps video stream -- freezes for half
a second every second.
"""

import asyncio
import random
import time

from _stall import StallMeter, run_seconds


def get_sensor_data():
    time.sleep(0.5)  # Represents an operation that takes half a second to complete
    return random.random()


async def send_sensor_data():
    while True:
        await asyncio.sleep(1)
        data = get_sensor_data()  # blocks the whole event loop for 0.5 s
        print("sensor:", data, flush=True)  # a robot would send it: conn.put_nowait(data)


async def main():
    video = StallMeter()
    tasks = [asyncio.create_task(send_sensor_data()), asyncio.create_task(video.run())]
    try:
        await asyncio.wait(tasks, timeout=run_seconds())
    finally:
        for task in tasks:
            task.cancel()
        print(f"longest video stall: {video.longest * 1000:.0f} ms", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
