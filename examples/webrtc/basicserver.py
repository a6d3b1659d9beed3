"""WebRTC basics 1: a web page served by aiohttp (no rtcbot yet).

Run it and open http://localhost:8080 : clicking the button logs "I was just clicked!" in the
browser's console (open the developer tools with Ctrl+Shift+J, or Cmd+Option+J on a Mac).
Set PORT to use another port.
"""

import os

from aiohttp import web

routes = web.RouteTableDef()


@routes.get("/")
async def index(request):
    return web.Response(
        content_type="text/html",
        text="""
    <html>
        <head>
            <title>RTCBot: Basic Server</title>
        </head>
        <body style="text-align: center;padding-top: 30px;">
            <h1>Click the Button</h1>
            <button type="button" id="mybutton">Click me!</button>
            <p>
            Open the browser's developer tools to see console messages (CTRL+SHIFT+J)
            </p>
            <script>
                var mybutton = document.querySelector("#mybutton");
                mybutton.onclick = function() {
                    console.log("I was just clicked!");
                };
            </script>
        </body>
    </html>
    """,
    )


app = web.Application()
app.add_routes(routes)
web.run_app(app, port=int(os.environ.get("PORT", 8080)))
