"""Serving a robot to browsers with aiohttp: the signalling endpoint (one connection per client,
with a token, an origin check, limits and resumable sessions), the browser library route, and
:func:`connect`, the Python client of that endpoint."""

from ._client import connect
from ._connect import ConnectionServer, add_rtcbot_routes, serve_rtcbot_js

__all__ = ["ConnectionServer", "add_rtcbot_routes", "connect", "serve_rtcbot_js"]
