"""Safety: wire the motors through a SafetyGate.

Run it and open http://localhost:8080 (in two tabs, to see the second one watch): the first
page drives with W/A/S/D, the others watch and may ask for control. Space or the red button
latches the E-stop on the robot, for every page, until the driver releases it -- also after a
reload. The motors here print their setpoints; a real robot would set its wheel speeds.
Set PORT to use another port, ADMIN_TOKEN to allow ``?admin=<token>`` pages to take over.
"""

import os

from aiohttp import web

from rtcbot import getRTCBotJS
from rtcbot.safety import Axis, LatencyLimits, SafetyGate
from rtcbot.web import ConnectionServer


def motors(setpoint):
    # A real robot: set the wheel speeds from setpoint["forward"] and setpoint["turn"].
    print("motors", {k: round(v, 2) for k, v in setpoint.items()})


def stop_motors():
    # Called once each time the E-stop latches (a page, or the driver's link lost).
    print("STOP:", gate.state["estop_reason"])


gate = SafetyGate(
    [
        Axis("forward", -1.0, 1.0, rate=2.0),  # full speed after 0.5 s, never a jump
        Axis("turn", -0.5, 0.5),  # turning is clamped to half
    ],
    on_stop=stop_motors,
    hold_time=0.5,  # a command not repeated within 0.5 s expires
    link_timeout=0.5,  # 0.5 s without a word from the driver latches the E-stop
    latency=LatencyLimits(slow_ms=300, stop_ms=800),  # half speed, then stop
    admin_token=os.environ.get("ADMIN_TOKEN"),
)
gate.subscribe(motors)


@gate.events.subscribe
def on_safety_event(event):
    print("safety", event)


# One RTCConnection per page; each one operates through the gate.
server = ConnectionServer(gate.attach)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>rtcbot: safety</title>
<script src="/rtcbot.js"></script></head>
<body>
  <button id="estop" style="background:#d00;color:#fff;font-size:24px">E-STOP</button>
  <button id="release">Release</button> <button id="ask">Ask for control</button>
  <button id="accept">Hand over</button>
  <p id="state">connecting...</p>
  <script>
    const conn = new rtcbot.RTCConnection();
    const keyboard = new rtcbot.Keyboard({capture: ["KeyW", "KeyA", "KeyS", "KeyD", "Space"]});
    const held = (code) => keyboard.pressed.includes(code) ? 1 : 0;
    // The operator's intent, sent 10 times a second while this page drives.
    const safety = new rtcbot.Safety(conn, {
      keyboard,
      intent: () => ({forward: held("KeyW") - held("KeyS"), turn: held("KeyD") - held("KeyA")}),
    });
    keyboard.subscribe(() => safety.update());  // a key changed: send at once
    safety.subscribe(() => {
      const st = safety.state;
      if (st === null) return;
      document.getElementById("state").textContent =
        `${safety.role} (operator ${safety.you}); ` +
        (st.estop ? `E-STOP: ${st.estop_reason}` : "running") +
        (st.request ? `; operator ${st.request.from} asks for control` : "");
    });
    for (const action of ["estop", "release", "accept"]) {
      document.getElementById(action).onclick = () => safety[action]();
    }
    document.getElementById("ask").onclick = () => safety.requestControl();

    (async () => {
      const offer = await conn.getLocalDescription();
      const response = await fetch("/connect", {method: "POST", body: JSON.stringify(offer)});
      await conn.setRemoteDescription(await response.json());
      await conn.onReady();
      console.log("Ready!");
    })();
  </script>
</body></html>
"""


async def index(request):
    return web.Response(content_type="text/html", text=PAGE)


async def rtcbotjs(request):
    return web.Response(content_type="application/javascript", text=getRTCBotJS())


async def cleanup(app):
    gate.close()  # the motors get a last zero


app = web.Application()
app.router.add_get("/", index)
app.router.add_get("/rtcbot.js", rtcbotjs)
server.add_routes(app)
app.on_shutdown.append(cleanup)
web.run_app(app, port=int(os.environ.get("PORT", 8080)))
