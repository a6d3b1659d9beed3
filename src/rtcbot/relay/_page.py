"""The relay's pages: an index (pick a robot) and a viewer (video, messages, keyboard).

Nothing a client sends is put into the HTML: the robot name in the viewer page has already
passed :data:`~rtcbot.relay._protocol.NAME_RULE` and is still HTML-escaped; the token stays in
the URL fragment (``#token=...``), which browsers never send to the server.
"""

from __future__ import annotations

import html

__all__ = ["index_page", "viewer_page"]

_STYLE = """<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; background: #111; color: #eee; }
video { width: 100%; max-width: 960px; background: #000; display: block; }
#status { margin: .5em 0; color: #9cf; } #log { font: 12px monospace; white-space: pre-wrap; }
input, button { font-size: 1em; }
</style>"""

_INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><title>rtcbot relay</title>""" + _STYLE + """</head>
<body><h1>rtcbot relay</h1>
<form id="go">robot <input id="name" required pattern="[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}">
token <input id="token" type="password"> <button>connect</button></form>
<script>
document.getElementById("go").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = document.getElementById("name").value;
  const token = document.getElementById("token").value;
  location.href = "/robots/" + encodeURIComponent(name) + "/" +
    (token ? "#token=" + encodeURIComponent(token) : "");
});
</script></body></html>
"""

_VIEWER = """<!doctype html>
<html><head><meta charset="utf-8"><title>rtcbot: {title}</title>{style}
<script src="/rtcbot.js"></script></head>
<body data-robot="{attr}"><h1>{title}</h1>
<video id="video" autoplay playsinline muted></video>
<div id="status">connecting...</div><div id="log"></div>
<script>
(async () => {{
  const name = document.body.dataset.robot;
  const statusEl = document.getElementById("status");
  const logEl = document.getElementById("log");
  const show = (text) => {{ statusEl.textContent = text; }};
  const log = (text) => {{
    logEl.textContent = (text + "\\n" + logEl.textContent).slice(0, 4000);
  }};
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  const headers = token ? {{ Authorization: "Bearer " + token }} : {{}};
  const viewer = {{ name, status: "connecting", received: [] }};
  window.viewer = viewer;
  try {{
    let config = {{ iceServers: [] }};
    const ice = await fetch("/ice", {{ headers }});
    if (ice.ok) config = await ice.json();
    const conn = new rtcbot.RTCConnection(true, config);
    viewer.conn = conn;
    conn.video.subscribe((stream) => {{ document.getElementById("video").srcObject = stream; }});
    conn.subscribe((m) => {{
      viewer.received.push(m);
      if (viewer.received.length > 1000) viewer.received.shift();  // bounded
      log(JSON.stringify(m));
    }});
    conn.onLinkLost(() => {{ viewer.status = "reconnecting"; show("link lost: reconnecting"); }});
    conn.onLinkRestored(() => {{ viewer.status = "connected"; show("connected"); }});
    try {{
      // offer, answer, and a resumed session when the link is lost (through the relay)
      await conn.connect("/robots/" + encodeURIComponent(name) + "/connect", {{ headers }});
    }} catch (e) {{
      viewer.status = "refused";
      viewer.error = String(e.message || e).replace(/^POST \\S+: HTTP /, "");
      show(viewer.error);
      conn.close();
      return;
    }}
    viewer.status = "connected";
    show("connected");
    const kb = new rtcbot.Keyboard();
    kb.subscribe((k) => conn.put_nowait(k));
    conn.onClose(() => {{ viewer.status = "closed"; show("disconnected"); }});
  }} catch (e) {{
    viewer.status = "failed";
    viewer.error = String(e);
    show("failed: " + e);
  }}
}})();
</script></body></html>
"""


def index_page() -> str:
    """The relay's front page: a form that opens the viewer of a named robot."""
    return _INDEX


def viewer_page(name: str) -> str:
    """The viewer page of robot ``name`` (already checked against the name rule)."""
    return _VIEWER.format(
        title=html.escape(name), attr=html.escape(name, quote=True), style=_STYLE
    )
