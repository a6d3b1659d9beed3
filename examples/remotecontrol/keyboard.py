"""Remote control 1: the browser's keyboard events, in Python.

Run it, open http://localhost:8080 and type: each key press and release is printed here, as a
dict such as ``{'type': 'keydown', 'key': 'H', 'code': 'KeyH', 'shiftKey': True, ...}``.
Set PORT to use another port.
"""

import os

from aiohttp import web

from rtcbot import RTCConnection, getRTCBotJS

routes = web.RouteTableDef()

# For this example, we use just one global connection
conn = RTCConnection()


@conn.subscribe
def onMessage(msg):  # Called for each key event the browser sends
    print("key press", msg)


# Serve the RTCBot javascript library at /rtcbot.js
@routes.get("/rtcbot.js")
async def rtcbotjs(request):
    return web.Response(content_type="application/javascript", text=getRTCBotJS())


# This sets up the connection
@routes.post("/connect")
async def connect(request):
    clientOffer = await request.json()
    serverResponse = await conn.getLocalDescription(clientOffer)
    return web.json_response(serverResponse)


@routes.get("/")
async def index(request):
    return web.Response(
        content_type="text/html",
        text="""
    <html>
        <head>
            <title>RTCBot: Keyboard</title>
            <script src="/rtcbot.js"></script>
        </head>
        <body style="text-align: center;padding-top: 30px;">
            <h1>Type on this page</h1>
            <p>
            The key presses are printed by Python.
            </p>
            <script>
                var conn = new rtcbot.RTCConnection();
                var kb = new rtcbot.Keyboard();

                async function connect() {
                    let offer = await conn.getLocalDescription();

                    // POST the information to /connect
                    let response = await fetch("/connect", {
                        method: "POST",
                        cache: "no-cache",
                        body: JSON.stringify(offer)
                    });

                    await conn.setRemoteDescription(await response.json());

                    // Send each key event to Python
                    kb.subscribe(conn.put_nowait);

                    console.log("Ready!");
                }
                connect();

            </script>
        </body>
    </html>
    """,
    )


async def cleanup(app):
    await conn.close()


app = web.Application()
app.add_routes(routes)
app.on_shutdown.append(cleanup)
web.run_app(app, port=int(os.environ.get("PORT", 8080)))
