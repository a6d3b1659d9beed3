"""The signalling endpoint: ``POST /connect`` gives each client its own RTCConnection.

A browser (or a Python program) POSTs its offer as JSON; the server creates a new
:class:`~rtcbot.RTCConnection`, lets the robot program wire it (``on_connection``), and returns
the answer. Each client gets its own connection, so a page reload simply connects again, and
several viewers can watch at once (up to ``max_connections``).

Safety: an optional token (``Authorization: Bearer <token>`` header or ``?token=`` in the URL;
401 when missing, 403 when wrong), an origin check against cross-site pages (403), a body-size
limit (413), a cap on simultaneous connections (503), and a 400 naming what is wrong for a body
that is not JSON or not a valid offer. Bad requests never disturb the connections in place.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from ..base._compat import TIMEOUT_ERRORS
from ..base._compat import timeout as aio_timeout

__all__ = ["ConnectionServer", "add_rtcbot_routes"]

_log = logging.getLogger("rtcbot.web")

#: An offer with every candidate of a few interfaces is a few kilobytes; 64 KiB is plenty.
DEFAULT_MAX_BODY = 64 * 1024


class ConnectionServer:
    """Hands out one :class:`~rtcbot.RTCConnection` per client behind ``POST /connect``.

    ``on_connection(conn)`` (a function or coroutine function) is called with each new
    connection before it answers: wire it there (``conn.video.putSubscription(camera.subscribe())``,
    ``conn.subscribe(on_message)``, ``conn.set_control_timeout(...)``). If it raises, the client
    gets a 500 and the connection is closed.

    ``token``: when set, requests must carry it (``Authorization: Bearer <token>`` or
    ``?token=``). ``allowed_origins``: browser origins (``"https://robot.example:8080"``) allowed
    to connect; by default only the page's own origin (requests without an ``Origin`` header,
    such as Python clients, are not browsers and are let through to the token check).
    ``max_connections``: simultaneous clients; more get 503. ``max_body_size``: bytes.
    ``rtc_configuration``: ICE servers for the connections (see ``RTCConnection``).
    ``answer_timeout``: seconds to create the answer (ICE gathering) before a 504.
    """

    def __init__(
        self,
        on_connection: Callable[[Any], Any] | None = None,
        *,
        token: str | None = None,
        allowed_origins: Iterable[str] | None = None,
        max_connections: int = 8,
        max_body_size: int = DEFAULT_MAX_BODY,
        rtc_configuration: Any = None,
        answer_timeout: float = 15.0,
    ) -> None:
        if on_connection is not None and not callable(on_connection):
            raise TypeError(f"on_connection must be callable, got {on_connection!r}")
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError("token must be a non-empty string or None")
        if not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"max_connections must be a positive int, got {max_connections!r}")
        if not isinstance(max_body_size, int) or max_body_size < 1:
            raise ValueError(f"max_body_size must be a positive int, got {max_body_size!r}")
        self.on_connection = on_connection
        self.token = token
        self.allowed_origins = (
            None if allowed_origins is None else {o.rstrip("/") for o in allowed_origins}
        )
        self.max_connections = max_connections
        self.max_body_size = max_body_size
        self.rtc_configuration = rtc_configuration
        self.answer_timeout = answer_timeout
        self._connections: set[Any] = set()
        self._pending = 0

    @property
    def connections(self) -> frozenset[Any]:
        """The clients' connections that are currently open."""
        return frozenset(self._connections)

    # ---------------------------------------------------------------- routes

    def add_routes(
        self,
        app: web.Application,
        *,
        connect_path: str = "/connect",
        js_path: str | None = "/rtcbot.js",
    ) -> None:
        """Add ``POST connect_path`` (and ``GET js_path`` serving the browser library, unless
        None) to ``app``, and close every connection when the app shuts down."""
        app.router.add_post(connect_path, self.handle_connect)
        if js_path is not None:
            app.router.add_get(js_path, serve_rtcbot_js)
        app.on_shutdown.append(self._on_shutdown)

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection and wait (a few seconds at most) until they are closed.
        Cancelling the wait does not stop the closes."""
        from ..connection import close_all

        await close_all(self._connections)

    # ---------------------------------------------------------------- the endpoint

    def check_access(self, request: web.Request) -> None:
        """Raise the HTTP error for a request that may not connect (origin, then token)."""
        origin = request.headers.get("Origin")
        if origin is not None and origin != "null":
            allowed = self.allowed_origins
            if allowed is None:
                allowed = {f"{request.scheme}://{request.host}"}
            if origin.rstrip("/") not in allowed:
                raise web.HTTPForbidden(reason="origin not allowed",
                                        text=f"origin {origin!r} may not connect to this robot")
        elif origin == "null":
            raise web.HTTPForbidden(text="pages with an opaque origin may not connect")
        if self.token is not None:
            given = _request_token(request)
            if given is None:
                raise web.HTTPUnauthorized(
                    text="a token is required: send 'Authorization: Bearer <token>' or ?token=",
                    headers={"WWW-Authenticate": 'Bearer realm="rtcbot"'},
                )
            if not secrets.compare_digest(given.encode(), self.token.encode()):
                raise web.HTTPForbidden(text="wrong token")

    async def read_offer(self, request: web.Request) -> dict[str, Any]:
        """The JSON offer of the request; HTTP 413/400 naming what is wrong. (aiohttp cancels
        it when the client goes away; nothing else is affected.)"""
        if request.content_length is not None and request.content_length > self.max_body_size:
            raise web.HTTPRequestEntityTooLarge(max_size=self.max_body_size,
                                                actual_size=request.content_length)
        body = bytearray()
        while True:  # read() returns what has arrived so far: read until the end of the body
            chunk = await request.content.read(self.max_body_size + 1 - len(body))
            if not chunk:
                break
            body += chunk
            if len(body) > self.max_body_size:
                raise web.HTTPRequestEntityTooLarge(max_size=self.max_body_size,
                                                    actual_size=len(body))
        try:
            offer = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise web.HTTPBadRequest(text=f"the body is not JSON: {exc}") from None
        if not isinstance(offer, dict):
            raise web.HTTPBadRequest(
                text=f"expected a JSON object {{sdp, type}}, got {type(offer).__name__}"
            )
        if offer.get("type") != "offer":
            raise web.HTTPBadRequest(
                text=f"expected a session description of type 'offer', got {offer.get('type')!r}"
            )
        return offer

    async def handle_connect(self, request: web.Request) -> web.Response:
        """The ``POST /connect`` handler: offer in, answer out (JSON). If it is cancelled (the
        client went away) before answering, the new connection is closed."""
        self.check_access(request)
        if len(self._connections) + self._pending >= self.max_connections:
            raise web.HTTPServiceUnavailable(
                text=f"this robot already has {self.max_connections} connections",
                headers={"Retry-After": "5"},
            )
        self._pending += 1  # the slot is taken before any await, so the cap holds
        try:
            return await self._answer(await self.read_offer(request))
        finally:
            self._pending -= 1

    async def _answer(self, offer: dict[str, Any]) -> web.Response:
        from ..connection import RTCConnection
        from ..connection._connection import InvalidDescription, validate_description

        try:
            validate_description(offer)
        except InvalidDescription as exc:
            raise web.HTTPBadRequest(text=f"invalid offer: {exc}") from None
        conn = RTCConnection(rtcConfiguration=self.rtc_configuration)
        try:
            if self.on_connection is not None:
                result = self.on_connection(conn)
                if inspect.isawaitable(result):
                    await result
            async with aio_timeout(self.answer_timeout):
                answer = await conn.getLocalDescription(offer)
        except InvalidDescription as exc:
            conn.close()
            raise web.HTTPBadRequest(text=f"invalid offer: {exc}") from None
        except asyncio.CancelledError:  # the client went away while we answered
            conn.close()
            raise
        except TIMEOUT_ERRORS:
            conn.close()
            raise web.HTTPGatewayTimeout(
                text=f"could not answer within {self.answer_timeout} s"
            ) from None
        except Exception as exc:
            conn.close()
            if isinstance(exc, ValueError):  # aiortc's parser rejects the SDP text
                raise web.HTTPBadRequest(text=f"invalid offer: {exc}") from None
            _log.exception("could not answer an offer")
            raise web.HTTPInternalServerError(text=f"could not answer: {exc!r}") from None
        if not conn.closed:
            self._connections.add(conn)
            conn.onClose(lambda: self._connections.discard(conn))
        return web.json_response(answer)


def _request_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query.get("token")


async def serve_rtcbot_js(request: web.Request) -> web.Response:
    """``GET /rtcbot.js``: the browser library (global ``rtcbot``)."""
    from ..javascript import getRTCBotJS

    return web.Response(content_type="application/javascript", text=getRTCBotJS())


def add_rtcbot_routes(
    app: web.Application,
    on_connection: Callable[[Any], Any] | None = None,
    *,
    connect_path: str = "/connect",
    js_path: str | None = "/rtcbot.js",
    **options: Any,
) -> ConnectionServer:
    """Add ``POST /connect`` (one new RTCConnection per client, wired by ``on_connection``) and
    ``GET /rtcbot.js`` to ``app``; return the :class:`ConnectionServer`. ``options`` are those of
    :class:`ConnectionServer` (``token``, ``allowed_origins``, ``max_connections``...)."""
    server = ConnectionServer(on_connection, **options)
    server.add_routes(app, connect_path=connect_path, js_path=js_path)
    return server
