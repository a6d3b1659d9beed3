"""Mobile 2: the robot. It connects out to the relay (server.py), registers as "robot", and
answers every viewer with its own connection, carrying the camera's video and the viewer's
key presses. If the relay restarts or the network drops, it reconnects by itself.

    RTCBOT_RELAY=http://my-server:8080 RTCBOT_RELAY_SECRET=... python robot.py

Without a camera, a moving test pattern stands in for it.
"""

import asyncio
import os

from rtcbot import CVCamera, TestPattern
from rtcbot.relay import connect_robot

relay = os.environ.get("RTCBOT_RELAY", "http://localhost:8080")
secret = os.environ.get("RTCBOT_RELAY_SECRET", "change-this-robot-secret")

camera = CVCamera() if CVCamera.available() else TestPattern(320, 240)


def on_connection(conn):
    """Called for each viewer, with a new connection, before it is answered."""
    subscription = camera.subscribe()
    conn.video.putSubscription(subscription)

    @conn.subscribe
    def onMessage(msg):
        print("Control message:", msg, flush=True)

    conn.onReady(lambda: print("Started WebRTC", flush=True))
    conn.onClose(lambda: camera.unsubscribe(subscription))


robot = connect_robot(relay, "robot", secret, on_connection)
robot.onReady(lambda: print("Registered at the relay as 'robot'", flush=True))
robot.onError(lambda err: print("Relay refused us:", err, flush=True))


async def main():
    try:
        await robot  # runs until the robot is closed (Ctrl-C)
    finally:
        robot.close()
        camera.close()


try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
