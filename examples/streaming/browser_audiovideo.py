"""Streaming 4: the browser's camera and microphone, shown and played by Python.

Run it and open http://localhost:8080 (allow the camera and microphone): a window on this
machine shows the browser's camera, and its speaker plays the browser's microphone. Without a
screen, a FrameRecorder keeps the frames instead; once a second the program prints what has
arrived. Set PORT to use another port.
"""

import asyncio
import os

from aiohttp import web

from rtcbot import CVDisplay, FrameRecorder, RTCConnection, Speaker, getRTCBotJS

routes = web.RouteTableDef()

# No screen (or no sound output) on this machine? A FrameRecorder keeps the frames instead.
display = CVDisplay() if CVDisplay.available() else FrameRecorder()
speaker = Speaker() if Speaker.available() else None
# For this example, we use just one global connection
conn = RTCConnection()
display.putSubscription(conn.video.subscribe())
if speaker is not None:
    speaker.putSubscription(conn.audio.subscribe())


async def report():
    """Once a second, print what has arrived from the browser."""
    while True:
        await asyncio.sleep(1)
        sound = "no speaker" if speaker is None else f"{speaker.played / speaker.samplerate:.1f} s"
        print(f"video: {display.frames} frames, sound played: {sound}")


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
            <title>RTCBot: Browser Video and Audio</title>
            <script src="/rtcbot.js"></script>
        </head>
        <body style="text-align: center;padding-top: 30px;">
            <video autoplay playsinline muted controls></video>
            <p>
            Open the browser's developer tools to see console messages (CTRL+SHIFT+J)
            </p>
            <script>
                var conn = new rtcbot.RTCConnection();

                async function connect() {
                    // Ask for the camera and microphone, and show our own video
                    let streams = await navigator.mediaDevices.getUserMedia({
                        audio: true,
                        video: true
                    });
                    document.querySelector("video").srcObject = streams;
                    conn.video.putSubscription(streams.getVideoTracks()[0]);
                    conn.audio.putSubscription(streams.getAudioTracks()[0]);

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


async def start(app):
    app["report"] = asyncio.create_task(report())


async def cleanup(app):
    app["report"].cancel()
    await conn.close()
    display.close()
    if speaker is not None:
        speaker.close()


app = web.Application()
app.add_routes(routes)
app.on_startup.append(start)
app.on_shutdown.append(cleanup)
web.run_app(app, port=int(os.environ.get("PORT", 8080)))
