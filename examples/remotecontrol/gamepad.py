"""Remote control 2: a gamepad plugged into the browser's computer, in Python.

Run it, open http://localhost:8080, press a button on the gamepad (browsers show a gamepad to
a page only after that), and move it: each change is printed here, such as
``{'type': 'axis1', 'value': -0.28}`` or ``{'type': 'btn0', 'value': True}``.
Set PORT to use another port.
"""

import os

from aiohttp import web

from rtcbot import RTCConnection, getRTCBotJS

routes = web.RouteTableDef()

# For this example, we use just one global connection
conn = RTCConnection()


@conn.subscribe
def onMessage(msg):  # Called for each gamepad change the browser sends
    print("gamepad", msg)


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
            <title>RTCBot: Gamepad</title>
            <script src="/rtcbot.js"></script>
        </head>
        <body style="text-align: center;padding-top: 30px;">
            <h1>Press a button on your gamepad</h1>
            <p>
            The gamepad's buttons and sticks are printed by Python.
            </p>
            <script>
                var conn = new rtcbot.RTCConnection();
                var gp = new rtcbot.Gamepad();  // the browser's first gamepad (index 0)

                async function connect() {
                    let offer = await conn.getLocalDescription();

                    // POST the information to /connect
                    let response = await fetch("/connect", {
                        method: "POST",
                        cache: "no-cache",
                        body: JSON.stringify(offer)
                    });

                    await conn.setRemoteDescription(await response.json());

                    // Send each gamepad change to Python
                    gp.subscribe(conn.put_nowait);

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
