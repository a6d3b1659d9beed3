"""Multiple connections: every browser tab gets its own connection to the robot.

Run it and open http://localhost:8080 in several tabs: they all play the robot's camera (a
moving test pattern when there is no camera), and reloading a tab simply connects it again.
The program prints each viewer that joins or leaves. Set PORT to use another port.
"""

import os

from aiohttp import web

from rtcbot import CVCamera, RTCConnection, TestPattern, getRTCBotJS

routes = web.RouteTableDef()

# No webcam on this machine? A moving test pattern stands in for it.
camera = CVCamera() if CVCamera.available() else TestPattern(320, 240)


class ConnectionHandler:
    """One browser tab: its own connection, fed by its own subscription to the camera."""

    active_connections = []

    def __init__(self):
        self.conn = RTCConnection()
        self.cameraSubscription = camera.subscribe()
        self.conn.video.putSubscription(self.cameraSubscription)
        self.conn.subscribe(self.onMessage)
        # When the tab closes or reloads, its connection closes: clean up after it.
        self.conn.onClose(self.close)
        ConnectionHandler.active_connections.append(self)
        print("A viewer joined; viewers:", len(ConnectionHandler.active_connections))

    async def getLocalDescription(self, offer):
        return await self.conn.getLocalDescription(offer)

    def onMessage(self, msg):
        print("Message from a viewer:", msg)

    def close(self):
        if self in ConnectionHandler.active_connections:
            camera.unsubscribe(self.cameraSubscription)
            ConnectionHandler.active_connections.remove(self)
            print("A viewer left; viewers:", len(ConnectionHandler.active_connections))
        self.conn.close()


# Serve the RTCBot javascript library at /rtcbot.js
@routes.get("/rtcbot.js")
async def rtcbotjs(request):
    return web.Response(content_type="application/javascript", text=getRTCBotJS())


# This sets up a new connection for each browser tab
@routes.post("/connect")
async def connect(request):
    clientOffer = await request.json()
    handler = ConnectionHandler()
    try:
        serverResponse = await handler.getLocalDescription(clientOffer)
    except Exception:
        handler.close()
        raise
    return web.json_response(serverResponse)


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

                conn.video.subscribe(function(stream) {
                    document.querySelector("video").srcObject = stream;
                });

                async function connect() {
                    let offer = await conn.getLocalDescription();

                    // POST the information to /connect
                    let response = await fetch("/connect", {
                        method: "POST",
                        cache: "no-cache",
                        body: JSON.stringify(offer)
                    });

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
    for handler in list(ConnectionHandler.active_connections):
        handler.close()
        await handler.conn.close()  # wait until it has closed
    camera.close()


app = web.Application()
app.add_routes(routes)
app.on_shutdown.append(cleanup)
web.run_app(app, port=int(os.environ.get("PORT", 8080)))
