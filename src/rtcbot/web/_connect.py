"""The signalling endpoint: ``POST /connect`` gives each client its own RTCConnection.

A browser (or a Python program) POSTs its offer as JSON; the server creates a new
:class:`~rtcbot.RTCConnection`, lets the robot program wire it (``on_connection``), and returns
the answer. Each client gets its own connection, so a page reload simply connects again, and
several viewers can watch at once (up to ``max_connections``).

Resumable sessions: an offer that says ``"resume": true`` gets an answer that carries
``"session": {"id", "secret", "window"}``; when the client's link is lost, it POSTs a new offer
with ``"session": {"id", "secret"}`` and the server answers it on the same connection
(:meth:`~rtcbot.RTCConnection.accept_resume`): 404 for a session it does not know (closed, or
its resume window expired), 403 for a wrong secret. The secret is never logged.

Safety: an optional token (``Authorization: Bearer <token>`` header or ``?token=`` in the URL;
401 when missing, 403 when wrong), an origin check against cross-site pages (403), a body-size
limit (413), a cap on simultaneous connections (503), and a 400 naming what is wrong for a body
that is not JSON or not a valid offer. Bad requests never disturb the connections in place.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import json
import logging
import math
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from ..base._compat import TIMEOUT_ERRORS
from ..base._compat import timeout as aio_timeout
from ..base._ratelimit import RateLimitedLogger

__all__ = ["ConnectionServer", "add_rtcbot_routes"]

_log = logging.getLogger("rtcbot.web")
#: offers aiortc could not use: a stranger can send many, so their lines are rate-limited
_bad_offer_log = RateLimitedLogger(_log)

#: A resume offer's request carries this header, so that a full server does not refuse it
#: before reading it (it takes no new slot; the session in its body is what is checked).
RESUME_HEADER = "RTCBot-Resume"

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
    ``read_timeout``: seconds for the whole request body to arrive (then 408): a client that
    opens a request and sends nothing holds nothing for longer. ``connect_timeout``: seconds
    an answered client has to connect (then its connection closes and its slot is free
    again: a stranger's offers that never connect hold the slots this long at most); None
    for no limit. ``resume_window``: seconds a client's session waits for it to resume after
    its link is lost (None: forever; 0: no resume, answers carry no session).

    Origins: without ``allowed_origins``, a page's own origin is accepted only when a token
    is required or the page was loaded from an IP address or ``localhost``; a page loaded by
    a DNS name (``http://robot.lan:8080``) on a server without a token needs that origin in
    ``allowed_origins``. This stops DNS rebinding: a stranger's page whose name was pointed
    at the robot would otherwise pass as "same origin".
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
        read_timeout: float = 10.0,
        connect_timeout: float | None = 10.0,
        resume_window: float | None = 30.0,
    ) -> None:
        from ..connection._resume import check_window

        if on_connection is not None and not callable(on_connection):
            raise TypeError(f"on_connection must be callable, got {on_connection!r}")
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError("token must be a non-empty string or None")
        if not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"max_connections must be a positive int, got {max_connections!r}")
        if not isinstance(max_body_size, int) or max_body_size < 1:
            raise ValueError(f"max_body_size must be a positive int, got {max_body_size!r}")
        for label, value in (("answer_timeout", answer_timeout),
                             ("read_timeout", read_timeout),
                             ("connect_timeout", connect_timeout)):
            if value is None and label == "connect_timeout":
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"{label} must be positive seconds, got {value!r}")
        self.on_connection = on_connection
        self.token = token
        self.allowed_origins = (
            None if allowed_origins is None else {o.rstrip("/") for o in allowed_origins}
        )
        self.max_connections = max_connections
        self.max_body_size = max_body_size
        self.rtc_configuration = rtc_configuration
        self.answer_timeout = answer_timeout
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self.resume_window = check_window(resume_window)
        self._sessions: dict[str, tuple[str, Any]] = {}  # id: (secret, connection)
        self._connections: set[Any] = set()
        self._unconnected: dict[Any, float] = {}  # answered, not connected yet: deadline
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
        if origin == "null":
            raise web.HTTPForbidden(text="pages with an opaque origin may not connect")
        if origin is not None and not self.origin_allowed(origin, request):
            raise web.HTTPForbidden(reason="origin not allowed",
                                    text=f"origin {_shown(origin)} may not connect to this robot")
        if self.token is not None:
            given = _request_token(request)
            if given is None:
                raise web.HTTPUnauthorized(
                    text="a token is required: send 'Authorization: Bearer <token>' or ?token=",
                    headers={"WWW-Authenticate": 'Bearer realm="rtcbot"'},
                )
            if not _same_secret(given, self.token):
                raise web.HTTPForbidden(text="wrong token")

    def origin_allowed(self, origin: str, request: web.Request) -> bool:
        """True if a browser page of ``origin`` (its ``Origin`` header) may use this endpoint.

        With ``allowed_origins``, exactly those. Without, the page's own origin only when the
        ``Host`` it asked for cannot have been chosen by a stranger: when a token is required
        (a rebinding page does not have it), or when the host is an IP literal or
        ``localhost`` (no DNS name to rebind). A page of ``http://attacker.example`` whose
        name resolves to this robot (DNS rebinding) is refused.
        """
        origin = origin.rstrip("/")
        if self.allowed_origins is not None:
            return origin in self.allowed_origins
        host = request.host
        if self.token is None and not host_cannot_rebind(host):
            return False
        return origin == f"{request.scheme}://{host}"

    async def read_offer(self, request: web.Request) -> dict[str, Any]:
        """The JSON offer of the request, read within ``read_timeout`` seconds; HTTP 413, 408
        or 400 naming what is wrong. (aiohttp cancels it when the client goes away; nothing
        else is affected.)"""
        if request.content_length is not None and request.content_length > self.max_body_size:
            raise web.HTTPRequestEntityTooLarge(max_size=self.max_body_size,
                                                actual_size=request.content_length)
        body = bytearray()
        try:
            async with aio_timeout(self.read_timeout):
                while True:  # read() returns what has arrived so far: read to the end
                    chunk = await request.content.read(self.max_body_size + 1 - len(body))
                    if not chunk:
                        break
                    body += chunk
                    if len(body) > self.max_body_size:
                        raise web.HTTPRequestEntityTooLarge(max_size=self.max_body_size,
                                                            actual_size=len(body))
        except TIMEOUT_ERRORS:
            raise web.HTTPRequestTimeout(
                text=f"the offer did not arrive within {self.read_timeout:g} s"
            ) from None
        return parse_offer(bytes(body))

    async def handle_connect(self, request: web.Request) -> web.Response:
        """The ``POST /connect`` handler: offer in, answer out (JSON). If it is cancelled (the
        client went away) before answering, the new connection is closed."""
        self.check_access(request)
        if RESUME_HEADER not in request.headers:  # a resume takes no new slot
            self._check_capacity()  # refuse early when full (checked again once the offer is in)
        from ..connection._connection import InvalidDescription, validate_description

        offer = await self.read_offer(request)
        try:
            validate_description(offer)
        except InvalidDescription as exc:
            raise web.HTTPBadRequest(text=f"invalid offer: {exc}") from None
        if offer.get("session") is not None:  # a client whose link was lost comes back
            return await self._resume(offer)
        # The slot is taken only now, for a valid offer, with no await since the check: a
        # client that sends nothing, or garbage, never holds one.
        self._check_capacity()
        self._pending += 1
        try:
            return await self._answer(offer)
        finally:
            self._pending -= 1

    def _check_capacity(self) -> None:
        if len(self._connections) + self._pending >= self.max_connections:
            raise web.HTTPServiceUnavailable(
                text=f"this robot already has {self.max_connections} connections",
                headers={"Retry-After": str(self._retry_after())},
            )

    def _retry_after(self) -> int:
        """Seconds until a slot may free up: the connect deadline of the oldest connection
        that has not connected yet, else 5."""
        now = asyncio.get_running_loop().time()
        waits = [deadline - now for conn, deadline in self._unconnected.items()
                 if not conn.closed]
        return max(1, min(5, math.ceil(min(waits)))) if waits else 5

    async def _answer(self, offer: dict[str, Any]) -> web.Response:
        from ..connection import RTCConnection
        from ..connection._connection import InvalidDescription, validate_description

        try:
            validate_description(offer)
        except InvalidDescription as exc:
            raise web.HTTPBadRequest(text=f"invalid offer: {exc}") from None
        conn = RTCConnection(rtcConfiguration=self.rtc_configuration,
                             connect_timeout=self.connect_timeout,
                             resume_window=self.resume_window)
        try:
            if self.on_connection is not None:
                result = self.on_connection(conn)
                if inspect.isawaitable(result):
                    await result
        except asyncio.CancelledError:  # the client went away while the robot wired it
            conn.close()
            raise
        except Exception as exc:  # the robot program's own failure: a 500, logged in full
            conn.close()
            _log.exception("on_connection failed")
            raise web.HTTPInternalServerError(text=f"could not answer: {exc!r}") from None
        try:
            async with aio_timeout(self.answer_timeout):
                answer = await conn.getLocalDescription(offer)
        except asyncio.CancelledError:  # the client went away while we answered
            conn.close()
            raise
        except TIMEOUT_ERRORS:
            conn.close()
            raise web.HTTPGatewayTimeout(
                text=f"could not answer within {self.answer_timeout} s"
            ) from None
        except Exception as exc:
            # The offer passed the checks, yet aiortc could not use it (its parser raises
            # ValueError, but also IndexError, KeyError... on crafted SDP): the offer's
            # fault, a 400; a warning (rate-limited) keeps the trace for a real bug.
            conn.close()
            _bad_offer_log.warning("could not answer an offer: %s", _shown(repr(exc), 300),
                                   exc_info=not isinstance(exc, ValueError))
            raise web.HTTPBadRequest(
                text=f"invalid offer: {_cut(f'{type(exc).__name__}: {exc}', 300)}"
            ) from None
        if not conn.closed:
            self._connections.add(conn)
            if not conn.ready:
                self._unconnected[conn] = (
                    asyncio.get_running_loop().time() + (self.connect_timeout or 0)
                )
                conn.onReady(lambda: self._unconnected.pop(conn, None))
            conn.onClose(lambda: self._forget(conn))
            if offer.get("resume") is True and conn.resume_window != 0:
                session_id = secrets.token_urlsafe(12)
                secret = secrets.token_urlsafe(24)
                self._sessions[session_id] = (secret, conn)
                conn.onClose(lambda: self._sessions.pop(session_id, None))
                answer = {**answer, "session": {
                    "id": session_id, "secret": secret, "window": conn.resume_window,
                }}
        return web.json_response(answer)

    def _forget(self, conn: Any) -> None:
        self._connections.discard(conn)
        self._unconnected.pop(conn, None)

    async def _resume(self, offer: dict[str, Any]) -> web.Response:
        """A resume offer: answered on the session's own connection (no new slot)."""
        from ..connection._connection import InvalidDescription, SignalingError

        session = offer.get("session")
        session_id = session.get("id") if isinstance(session, dict) else None
        given = session.get("secret") if isinstance(session, dict) else None
        if not isinstance(session_id, str) or not isinstance(given, str):
            raise web.HTTPBadRequest(
                text="'session' must be an object {\"id\": str, \"secret\": str}"
            )
        entry = self._sessions.get(session_id)
        if entry is None or entry[1].closed:
            raise web.HTTPNotFound(
                text="no such session: it was closed or its resume window expired; connect anew"
            )
        secret, conn = entry
        if not _same_secret(given, secret):
            _log.warning("a resume offer for session %s had a wrong secret", _shown(session_id))
            raise web.HTTPForbidden(text="wrong session secret")
        description = {"sdp": offer["sdp"], "type": "offer"}
        try:
            async with aio_timeout(self.answer_timeout):
                answer = await conn.accept_resume(description)
        except TIMEOUT_ERRORS:
            raise web.HTTPGatewayTimeout(
                text=f"could not answer within {self.answer_timeout} s"
            ) from None
        except SignalingError as exc:
            raise web.HTTPNotFound(text=f"the session cannot resume: {exc}") from None
        except InvalidDescription as exc:
            raise web.HTTPBadRequest(text=f"invalid offer: {exc}") from None
        except Exception as exc:
            _bad_offer_log.warning("could not answer a resume offer: %s", _shown(repr(exc), 300),
                                   exc_info=not isinstance(exc, ValueError))
            raise web.HTTPBadRequest(
                text=f"invalid offer: {_cut(f'{type(exc).__name__}: {exc}', 300)}"
            ) from None
        return web.json_response({**answer, "session": {
            "id": session_id, "secret": secret, "window": conn.resume_window,
        }})


def parse_offer(body: bytes) -> dict[str, Any]:
    """The offer in a ``/connect`` request body (JSON ``{"sdp": str, "type": "offer"}``);
    ``HTTPBadRequest`` naming what is wrong (not UTF-8, not JSON, nested too deep, not an
    object, not an offer)."""
    try:
        offer = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise web.HTTPBadRequest(text=f"the body is not JSON: {_shown(str(exc))}") from None
    except RecursionError:
        raise web.HTTPBadRequest(text="the body is not an offer: JSON nested too deep") from None
    if not isinstance(offer, dict):
        raise web.HTTPBadRequest(
            text=f"expected a JSON object {{sdp, type}}, got {type(offer).__name__}"
        )
    kind = offer.get("type")
    if kind != "offer":
        shown = _shown(kind) if isinstance(kind, str) else type(kind).__name__
        raise web.HTTPBadRequest(
            text=f"expected a session description of type 'offer', got {shown}"
        )
    return offer


def host_cannot_rebind(host: str) -> bool:
    """True if ``host`` (a ``Host`` header: name or address, maybe with a port) is an IP
    literal or ``localhost``: names a stranger's DNS cannot point at this machine."""
    if host.startswith("["):  # [v6]:port
        literal, _, rest = host[1:].partition("]")
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return False
    else:
        literal, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
        if port and not port.isdigit():
            return False
    literal = literal.lower()
    if literal == "localhost" or literal.endswith(".localhost"):
        return True  # browsers resolve these to loopback themselves (RFC 6761)
    try:
        ipaddress.ip_address(literal)
    except ValueError:
        return False
    return True


def _same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two str secrets; False (never an error) for a ``given``
    that is not valid text (lone surrogates, undecodable header bytes)."""
    try:
        raw = given.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return secrets.compare_digest(raw, expected.encode("utf-8"))


def _shown(text: str, limit: int = 100) -> str:
    """``repr(text)``, cut to ``limit`` characters: safe to put in a reply or a log line."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"


def _cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
