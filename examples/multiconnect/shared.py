"""One camera, many viewers, one encode: several Python viewers watch the same camera, and the
robot encodes each frame once for all of them.

The robot and its viewers run in this one program, connected over WebRTC on this machine.
Every second each viewer prints the frames per second it receives, and the robot prints how
many viewers share the encoder and how many frames it encoded.

    python shared.py [VIEWERS] [SECONDS]      (default 3 viewers, 5 seconds)
"""

import asyncio
import sys
import time

from rtcbot import RTCConnection, TestPattern

viewers = int(sys.argv[1]) if len(sys.argv) > 1 else 3
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0

camera = TestPattern(640, 480)


async def watch(number, frames):
    """A viewer: counts the frames it receives, prints its rate every second."""
    count, since = 0, time.monotonic()
    while True:
        await frames.get()
        count += 1
        now = time.monotonic()
        if now - since >= 1.0:
            print(f"Viewer {number}: {count / (now - since):.1f} fps")
            count, since = 0, now


async def main():
    pairs = []
    for _ in range(viewers):
        robot = RTCConnection(rtcConfiguration=[])  # one connection per viewer on the robot
        viewer = RTCConnection(rtcConfiguration=[])
        robot.video.putSubscription(camera.subscribe())  # shared: same camera, same settings
        frames = viewer.video.subscribe()
        await viewer.setRemoteDescription(
            await robot.getLocalDescription(await viewer.getLocalDescription())
        )
        pairs.append((robot, viewer, frames))

    tasks = [asyncio.create_task(watch(n + 1, frames)) for n, (_, _, frames) in enumerate(pairs)]
    try:
        for _ in range(int(seconds)):
            await asyncio.sleep(1.0)
            stats = (await pairs[0][0].stats())["video"]["senders"][0]
            print(f"Robot: shared={stats['shared']} viewers={stats['viewers']} "
                  f"frames_encoded={stats['frames_encoded']}")
    finally:
        for task in tasks:
            task.cancel()
        for robot, viewer, _ in pairs:
            robot.close()
            viewer.close()
        camera.close()
        for robot, viewer, _ in pairs:
            await robot
            await viewer


asyncio.run(main())
