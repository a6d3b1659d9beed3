"""Mobile 1: the signalling relay, on a machine that both the robot and the browser can reach
(a small cloud server, or your desktop with a port forwarded).

The robot connects OUT to it (so a robot on 4G or behind a home router is reachable), and
registers under a name with a secret. Browsers open this server's page, which sends their
offer to the robot through the relay. The video and the controls then go straight between
the browser and the robot (or through your TURN server), not through this program.

    RTCBOT_RELAY_SECRET=... RTCBOT_RELAY_TOKEN=... python server.py

Set PORT to use another port than 8080. ICE servers (STUN/TURN) for the robot and the browsers
come from the RTCBOT_ICE_* environment variables (see docs/guides/nat-and-turn.md).
"""

import os
from pathlib import Path

from aiohttp import web

from rtcbot.relay import create_relay_app

# Robots must know the secret to register; viewers must know the token to connect.
secret = os.environ.get("RTCBOT_RELAY_SECRET", "change-this-robot-secret")
token = os.environ.get("RTCBOT_RELAY_TOKEN", "change-this-viewer-token")
port = int(os.environ.get("PORT", 8080))

# The relay: /ws for robots, /robots/NAME/connect for viewers, /ice, /rtcbot.js...
app = create_relay_app(secret, token=token, index=False)

# ...and our own page at / (the relay also has a ready-made one at /robots/NAME/).
page = (Path(__file__).parent / "index.html").read_text()


async def index(request):
    return web.Response(content_type="text/html", text=page)


app.router.add_get("/", index)

print(f"Open http://localhost:{port}/#token={token} once the robot is connected", flush=True)
web.run_app(app, port=port)
