"""Remote control 3: drive a robot with W, A, S, D while watching its camera.

Run it and open http://localhost:8080 : the page plays the robot's video (a moving test pattern
when there is no camera), and holding W/A/S/D prints the robot's drive state here, such as
``{'forward': 1, 'leftright': -1}``. If the page stops talking for half a second (the tab froze
or closed, the network went down), the robot stops by itself. Set PORT to use another port.
"""

import os

from aiohttp import web

from rtcbot import CVCamera, RTCConnection, TestPattern, getRTCBotJS

routes = web.RouteTableDef()

# No webcam on this machine? A moving test pattern stands in for it.
camera = CVCamera() if CVCamera.available() else TestPattern(320, 240)
# For this example, we use just one global connection
conn = RTCConnection()
conn.video.putSubscription(camera)

# Which of the driving keys are held down, by their place on the keyboard (event.code), so
# that W, A, S, D work on any keyboard layout.
keystates = {"KeyW": False, "KeyA": False, "KeyS": False, "KeyD": False}


def drive():
    forward = keystates["KeyW"] - keystates["KeyS"]
    leftright = keystates["KeyD"] - keystates["KeyA"]
    print({"forward": forward, "leftright": leftright})  # A robot would set its motors here


@conn.subscribe
def onMessage(m):
    if m["type"] in ("keydown", "keyup") and m["code"] in keystates:
        keystates[m["code"]] = m["type"] == "keydown"
        drive()


def stop():
    print("No control messages for 0.5 s: stopping")
    for key in keystates:
        keystates[key] = False
    drive()


# The dead-man switch: stop when no message has arrived for 0.5 s, or the connection closes.
conn.set_control_timeout(0.5, stop)


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
            <title>RTCBot: Remote Control</title>
            <script src="/rtcbot.js"></script>
        </head>
        <body style="text-align: center;padding-top: 30px;">
            <video autoplay playsinline muted controls></video>
            <p>
            Drive with W, A, S and D.
            </p>
            <script>
                var conn = new rtcbot.RTCConnection();
                var kb = new rtcbot.Keyboard();

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

                    // Send each key event to Python
                    kb.subscribe(conn.put_nowait);
                    // ... and tell the robot five times a second that we are still here, so
                    // that it can stop when these messages stop.
                    setInterval(() => conn.put_nowait({type: "alive"}), 200);

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
    camera.close()


app = web.Application()
app.add_routes(routes)
app.on_shutdown.append(cleanup)
web.run_app(app, port=int(os.environ.get("PORT", 8080)))
