"""Offloading 1: the robot. It streams its camera to whoever connects (a desktop program,
desktop.py, which does the heavy image processing) and prints the control messages it gets
back.

    python robot.py        # then, on the desktop: ROBOT=http://robot-ip:8080 python desktop.py

Set PORT to use another port, RTCBOT_TOKEN to require a token. Without a camera, a moving test
pattern stands in for it.
"""

import os

from aiohttp import web

from rtcbot import CVCamera, TestPattern
from rtcbot.web import add_rtcbot_routes

camera = CVCamera() if CVCamera.available() else TestPattern(320, 240)
port = int(os.environ.get("PORT", 8080))


def on_connection(conn):
    """Each desktop that connects gets its own connection with the camera's video."""
    subscription = camera.subscribe()
    conn.video.putSubscription(subscription)

    @conn.subscribe
    def onMessage(msg):
        print("Control message:", msg, flush=True)

    conn.onClose(lambda: camera.unsubscribe(subscription))


app = web.Application()
# POST /connect only (no web page): the desktop program is the only client.
add_rtcbot_routes(app, on_connection, token=os.environ.get("RTCBOT_TOKEN"), js_path=None)
app.on_shutdown.append(lambda app: camera.close())

print(f"Robot listening on port {port}", flush=True)
web.run_app(app, port=port)
