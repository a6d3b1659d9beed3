"""Streaming 3: the robot's camera and microphone in the browser.

Run it and open http://localhost:8080 : the page plays the camera's video and the microphone's
sound (click the page once if the browser holds back sound until you do). Without a camera, a
moving test pattern stands in for it; without a microphone, a 440 Hz tone. Set PORT to use
another port.
"""

import os

from aiohttp import web

from rtcbot import CVCamera, Microphone, RTCConnection, TestPattern, Tone, getRTCBotJS

routes = web.RouteTableDef()

# No webcam or no microphone on this machine? Stand-ins need no hardware.
camera = CVCamera() if CVCamera.available() else TestPattern(320, 240)
mic = Microphone() if Microphone.available() else Tone(440)
# For this example, we use just one global connection
conn = RTCConnection()
conn.video.putSubscription(camera)
conn.audio.putSubscription(mic)


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
            <title>RTCBot: Video and Audio</title>
            <script src="/rtcbot.js"></script>
        </head>
        <body style="text-align: center;padding-top: 30px;">
            <video autoplay playsinline muted controls></video>
            <audio autoplay></audio>
            <p>
            Open the browser's developer tools to see console messages (CTRL+SHIFT+J)
            </p>
            <script>
                var conn = new rtcbot.RTCConnection();

                conn.video.subscribe(function(stream) {
                    document.querySelector("video").srcObject = stream;
                });
                conn.audio.subscribe(function(stream) {
                    document.querySelector("audio").srcObject = stream;
                });
                // Browsers may hold back sound until the user interacts with the page
                document.addEventListener("click", function() {
                    document.querySelector("audio").play();
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
    mic.close()


app = web.Application()
app.add_routes(routes)
app.on_shutdown.append(cleanup)
web.run_app(app, port=int(os.environ.get("PORT", 8080)))
