"""Serving a robot to browsers with aiohttp: the signalling endpoint (one connection per client,
with a token, an origin check and limits) and the browser library route."""

from ._connect import ConnectionServer, add_rtcbot_routes, serve_rtcbot_js

__all__ = ["ConnectionServer", "add_rtcbot_routes", "serve_rtcbot_js"]
