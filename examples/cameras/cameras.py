"""Several cameras: a robot with three named cameras, and a page that lists them by name and
shows the one you choose.

Run it and open the URL it prints. Without camera hardware, three test patterns of different
sizes stand in for the cameras. Set PORT to use another port, and RTCBOT_TOKEN to choose the
token (by default a new one each run).
"""

import os
import secrets

from aiohttp import web

from rtcbot import TestPattern
from rtcbot.web import add_rtcbot_routes

routes = web.RouteTableDef()

# Three cameras, by name. On a real robot: CVCamera(0), CVCamera(1), PiCamera()...
cameras = {
    "front": TestPattern(320, 240),
    "rear": TestPattern(160, 120),
    "arm": TestPattern(240, 180),
}
token = os.environ.get("RTCBOT_TOKEN") or secrets.token_urlsafe(12)
port = int(os.environ.get("PORT", 8080))


def on_connection(conn):
    """Each tab gets its own connection, which sends all three cameras, each by its name.
    (Tabs that watch the same camera share its encoder: it is encoded once.)"""
    for name, camera in cameras.items():
        conn.video.addTrack(camera, name=name)
    print("A viewer joined")


@routes.get("/")
async def index(request):
    return web.Response(
        content_type="text/html",
        text="""
    <html>
        <head>
            <title>RTCBot: Cameras</title>
            <script src="/rtcbot.js"></script>
        </head>
        <body style="text-align: center;padding-top: 30px;">
            <p>
                Camera: <select id="camera"></select>
            </p>
            <video autoplay playsinline muted></video>
            <script>
                var conn = new rtcbot.RTCConnection();
                var token = new URLSearchParams(location.search).get("token");
                var select = document.querySelector("#camera");
                var video = document.querySelector("video");

                // The robot sends three cameras: ask for three video tracks.
                conn.video.offerToReceive(3);

                // Called once for each camera as it arrives, with its name.
                conn.video.subscribe(function(stream, track, name) {
                    var option = document.createElement("option");
                    option.value = option.textContent = name;
                    select.appendChild(option);
                    if (!video.srcObject) show(name);
                    console.log("Cameras: " + conn.video.names.join(", "));
                });

                function show(name) {
                    select.value = name;
                    video.srcObject = conn.video.stream(name);
                    console.log("Showing " + name);
                }
                select.addEventListener("change", function() { show(select.value); });

                async function connect() {
                    let offer = await conn.getLocalDescription();
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
                    console.log("Ready!");
                }
                connect();
            </script>
        </body>
    </html>
    """,
    )


async def cleanup(app):
    for camera in cameras.values():
        camera.close()


app = web.Application()
app.add_routes(routes)
# GET /rtcbot.js and POST /connect; every connection is closed when the program stops.
add_rtcbot_routes(app, on_connection, token=token)
app.on_cleanup.append(cleanup)
print(f"Open http://localhost:{port}/?token={token}")
web.run_app(app, port=port)
