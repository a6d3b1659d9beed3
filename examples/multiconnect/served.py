"""Multiple connections, with rtcbot's helper: ``add_rtcbot_routes`` does what the
ConnectionHandler of ``multiconnect.py`` does -- a new connection for each tab, closed when the
tab goes away and when the program stops -- and adds a token check, an origin check and limits.

Run it and open the URL it prints in several tabs. Set PORT to use another port, and
RTCBOT_TOKEN to choose the token (by default a new one each run).
"""

import os
import secrets

from aiohttp import web

from rtcbot import CVCamera, TestPattern
from rtcbot.web import add_rtcbot_routes

routes = web.RouteTableDef()

# No webcam on this machine? A moving test pattern stands in for it.
camera = CVCamera() if CVCamera.available() else TestPattern(320, 240)
# Whoever knows the token may connect (it is in the URL printed below).
token = os.environ.get("RTCBOT_TOKEN") or secrets.token_urlsafe(12)
port = int(os.environ.get("PORT", 8080))
viewers = set()


def on_connection(conn):
    """Called for each new tab, with its own new connection, before it is answered."""
    viewers.add(conn)
    subscription = camera.subscribe()
    conn.video.putSubscription(subscription)
    conn.subscribe(lambda msg: print("Message from a viewer:", msg))

    def left():
        viewers.discard(conn)
        camera.unsubscribe(subscription)
        print("A viewer left; viewers:", len(viewers))

    conn.onClose(left)
    print("A viewer joined; viewers:", len(viewers))


@routes.get("/")
async def index(request):
    return web.Response(
        content_type="text/html",
        text="""
    <html>
        <head>
            <title>RTCBot: Multiple Connections</title>
            <script src="/rtcbot.js"></script>
        </head>
        <body style="text-align: center;padding-top: 30px;">
            <video autoplay playsinline muted controls></video>
            <p>
            Open this page in several tabs, or reload it.
            </p>
            <script>
                var conn = new rtcbot.RTCConnection();
                var token = new URLSearchParams(location.search).get("token");

                conn.video.subscribe(function(stream) {
                    document.querySelector("video").srcObject = stream;
                });

                async function connect() {
                    let offer = await conn.getLocalDescription();

                    // POST the information to /connect, with the token
                    let response = await fetch("/connect", {
                        method: "POST",
                        cache: "no-cache",
                        headers: token ? {Authorization: "Bearer " + token} : {},
                        body: JSON.stringify(offer)
                    });
                    if (!response.ok) {
                        console.log("Refused:", response.status, await response.text());
                        return;
                    }

                    await conn.setRemoteDescription(await response.json());

                    conn.put_nowait("Hello from a new tab!");
                    console.log("Ready!");
                }
                connect();

            </script>
        </body>
    </html>
    """,
    )


async def cleanup(app):
    camera.close()


app = web.Application()
app.add_routes(routes)
# GET /rtcbot.js and POST /connect; every connection is closed when the program stops.
add_rtcbot_routes(app, on_connection, token=token)
app.on_cleanup.append(cleanup)
print(f"Open http://localhost:{port}/?token={token}")
web.run_app(app, port=port)
