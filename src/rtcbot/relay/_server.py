"""The signalling relay: robots connect out to it; browsers and Python clients reach them.

A robot behind a NAT or on 4G cannot accept connections, but it can open one. It opens a
websocket to the relay (``GET /ws``) and registers under a name with a secret. A client POSTs
its WebRTC offer to ``/robots/NAME/connect``; the relay hands it to the robot with a request
id and returns the robot's answer. After that the media and messages flow peer to peer (or
through a TURN server), never through the relay.

Routes:

* ``GET /ws`` -- robots (websocket, see :mod:`rtcbot.relay._protocol`);
* ``POST /robots/{name}/connect`` -- clients: offer in, answer out (JSON). Token (``Authorization:
  Bearer``/``?token=``: 401/403), origin check (403), body limits (413/400) as
  :class:`~rtcbot.web.ConnectionServer`; robot not connected: 503 at once; too many waiting
  requests: 503; no answer within ``answer_timeout``: 504; the robot's own refusal: its status;
* ``GET /robots`` -- the names of the connected robots (JSON, token required);
* ``GET /ice`` -- the browser's ICE configuration (JSON, token required: it may hold TURN
  credentials);
* ``GET /`` and ``GET /robots/{name}/`` -- an index and a viewer page; ``GET /rtcbot.js``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from ..base._compat import TIMEOUT_ERRORS
from ..base._compat import timeout as aio_timeout
from ..base._ratelimit import RateLimitedLogger
from ..base.errors import SubscriptionClosed
from ..connection._connection import InvalidDescription, validate_description
from ..ice import IceConfig, load_ice_config
from ..web import ConnectionServer, serve_rtcbot_js
from ..web._connect import _same_secret
from ..websocket import Websocket
from ._guard import FailureLockout, PendingSockets
from ._page import index_page, viewer_page
from ._protocol import (
    NAME_RULE,
    ProtocolError,
    check_session,
    decode_message,
    parse_register,
    parse_robot_reply,
)

__all__ = ["RELAY_KEY", "RelayServer", "create_relay_app"]

_log = logging.getLogger("rtcbot.relay")
#: refusals a stranger can cause at will: rate-limited
_refusal_log = RateLimitedLogger(_log)


class _RobotSession:
    """One registered robot: its websocket and the requests waiting for its answers."""

    def __init__(self, name: str, ws: Websocket) -> None:
        self.name = name
        self.ws = ws
        self.pending: dict[str, asyncio.Future[tuple[int, Any]]] = {}
        self.served = 0

    def on_reply(self, data: Any) -> None:
        try:
            request_id, status, body = parse_robot_reply(decode_message(data))
        except ProtocolError as exc:
            _log.warning("robot %r: %s", self.name, exc)
            return
        future = self.pending.get(request_id)
        if future is None or future.done():
            _log.info("robot %r answered request %s, which is no longer waiting", self.name,
                      request_id)
            return
        future.set_result((status, body))

    def fail_all(self, reason: str) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_result((503, reason))


class RelayServer:
    """The relay's state and handlers; :meth:`add_routes` puts them on an aiohttp app.

    ``secret``: what robots must present to register. Required. Either a mapping ``{name:
    secret}``, per-robot secrets (recommended: only those names may register, each with its
    own secret, so one robot's secret cannot take another's name), or a str shared by all
    robots (the simple default of ``rtcbot relay``: any holder of it may register any free
    name). A registration of a name with the wrong secret is refused and the robot in place is
    untouched. With per-robot secrets, the right secret replaces the robot in place (a robot
    that restarted is back at once; the old socket is told "replaced" and closed). With a
    shared secret, a name held by a live robot is never taken over: the newcomer is told
    "busy" and retries (a restarted robot gets its name back once the relay has dropped its
    old socket, within 1.5 ``heartbeat``).
    ``token``: what clients must present (None: no token, for a trusted network only).
    ``allowed_origins``, ``max_body_size``: as :class:`~rtcbot.web.ConnectionServer`.
    ``ice``: ICE servers handed to robots (in the ``registered`` message) and browsers
    (``GET /ice``); anything :func:`rtcbot.ice.load_ice_config` takes (default: the
    environment). ``answer_timeout``: seconds to wait for a robot's answer (then 504).
    ``max_pending``: requests waiting for one robot (then 503). ``heartbeat``: seconds between
    websocket pings to robots (a robot gone silent is dropped after 1.5 of them).

    Limits on strangers: ``register_timeout`` seconds for a new websocket to register (then it
    is closed); at most ``max_unregistered`` websockets waiting to register (a new one closes
    the oldest: a flood of silent sockets cannot keep a robot out, it registers at once);
    ``lockout_failures`` failed registrations from one address within ``lockout_window``
    seconds lock that address out for ``lockout_time`` seconds (HTTP 429 before any websocket).
    """

    def __init__(
        self,
        secret: str | Mapping[str, str],
        *,
        token: str | None = None,
        allowed_origins: Iterable[str] | None = None,
        max_body_size: int = 64 * 1024,
        ice: Any = None,
        answer_timeout: float = 20.0,
        register_timeout: float = 3.0,
        max_pending: int = 32,
        max_robots: int = 1000,
        heartbeat: float | None = 10.0,
        max_unregistered: int = 64,
        lockout_failures: int = 10,
        lockout_window: float = 60.0,
        lockout_time: float = 60.0,
    ) -> None:
        if isinstance(secret, str):
            if not secret:
                raise ValueError("the robot secret must be a non-empty str")
            self._secrets: str | dict[str, str] = secret
        elif isinstance(secret, Mapping):
            checked = {}
            for name, value in secret.items():
                if not NAME_RULE.fullmatch(str(name)):
                    raise ValueError(f"invalid robot name {name!r} in the secrets")
                if not isinstance(value, str) or not value:
                    raise ValueError(f"the secret of robot {name!r} must be a non-empty str")
                checked[name] = value
            self._secrets = checked
        else:
            raise TypeError(f"secret must be a str or a mapping name -> secret, got {secret!r}")
        for label, value in (("answer_timeout", answer_timeout),
                             ("register_timeout", register_timeout)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{label} must be positive seconds, got {value!r}")
        if not isinstance(max_pending, int) or max_pending < 1:
            raise ValueError(f"max_pending must be a positive int, got {max_pending!r}")
        self._checks = ConnectionServer(
            token=token, allowed_origins=allowed_origins, max_body_size=max_body_size
        )
        self.ice: IceConfig = load_ice_config(ice)
        self.answer_timeout = float(answer_timeout)
        self.register_timeout = float(register_timeout)
        self.max_pending = max_pending
        self.max_robots = max_robots
        self.heartbeat = heartbeat
        self._robots: dict[str, _RobotSession] = {}
        self._sockets: set[Websocket] = set()
        self._unregistered: PendingSockets[Websocket] = PendingSockets(max_unregistered)
        self._lockout = FailureLockout(lockout_failures, lockout_window, lockout_time)
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        #: counters: offers relayed, answers returned, refusals by status
        self.stats: dict[str, int] = {"offers": 0, "answers": 0, "registrations": 0,
                                      "refused_registrations": 0, "busy_registrations": 0,
                                      "unregistered_evicted": 0, "locked_out": 0}

    # ---------------------------------------------------------------- public

    @property
    def robots(self) -> list[str]:
        """Names of the robots connected now."""
        return sorted(self._robots)

    async def wait_for_robot(self, name: str) -> None:
        """Return once a robot named ``name`` is registered (at once if it is). Cancel (or
        bound with ``asyncio.timeout``) to stop waiting; nothing else is affected."""
        if name in self._robots:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(name, []).append(future)
        try:
            await future
        finally:
            waiters = self._waiters.get(name, [])
            if future in waiters:
                waiters.remove(future)

    def add_routes(self, app: web.Application, *, pages: bool = True, index: bool = True) -> None:
        """Add the relay's routes to ``app`` (the viewer page and ``/rtcbot.js`` too if
        ``pages``; the index page at ``/`` if ``index`` too: pass False to serve your own), and
        close every robot socket when the app shuts down."""
        app.router.add_get("/ws", self.handle_robot)
        app.router.add_post("/robots/{name}/connect", self.handle_connect)
        app.router.add_get("/robots", self.handle_list)
        app.router.add_get("/ice", self.handle_ice)
        if pages and index:
            app.router.add_get("/", self.handle_index)
        if pages:
            app.router.add_get("/robots/{name}/", self.handle_viewer)
            app.router.add_get("/rtcbot.js", serve_rtcbot_js)
        app.on_shutdown.append(self._on_shutdown)

    async def close(self) -> None:
        """Close every robot socket (their robots reconnect to the next relay) and fail the
        requests waiting for them (503)."""
        sockets = list(self._sockets)
        for session in list(self._robots.values()):
            session.fail_all("the relay is shutting down")
        for ws in sockets:
            ws.close()
        if sockets:
            try:
                async with aio_timeout(5):
                    await asyncio.gather(*sockets, return_exceptions=True)
            except TIMEOUT_ERRORS:
                _log.warning("%d robot sockets had not closed after 5 s", len(sockets))

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.close()

    # ---------------------------------------------------------------- robots

    def _secret_ok(self, name: str, given: str) -> bool:
        expected = self._secrets if isinstance(self._secrets, str) else self._secrets.get(name)
        if expected is None:
            return False
        return _same_secret(given, expected)

    def _failed(self, request: web.Request, why: str) -> None:
        """A failed registration: counted against its address (lockout), logged."""
        self.stats["refused_registrations"] += 1
        address = request.remote or "?"
        if self._lockout.failed(address, asyncio.get_running_loop().time()):
            self.stats["locked_out"] += 1
            _log.warning("locked out %s for %g s after %d failed registrations (last: %s)",
                         address, self._lockout.lockout, self._lockout.max_failures, why)
        else:
            _refusal_log.warning("refused a robot registration from %s: %s", address, why)

    async def handle_robot(self, request: web.Request) -> web.StreamResponse:
        """``GET /ws``: a robot's websocket (register, then answer offers)."""
        address = request.remote or "?"
        locked = self._lockout.locked_for(address, asyncio.get_running_loop().time())
        if locked:
            raise web.HTTPTooManyRequests(
                text=f"too many failed registrations from {address}; try again in "
                f"{locked:.0f} s", headers={"Retry-After": str(max(1, round(locked)))}
            )
        # robots only send small signalling messages: a stranger cannot make it buffer MiBs;
        # JSON is decoded here (decode_message), where a hostile frame gets a clear refusal
        ws = Websocket(request, heartbeat=self.heartbeat, max_msg_size=64 * 1024, json=False)
        self._sockets.add(ws)
        for old in self._unregistered.add(ws):
            self.stats["unregistered_evicted"] += 1
            self._refuse(old, "too many sockets are waiting to register; try again")
        session: _RobotSession | None = None
        try:
            try:
                async with aio_timeout(self.register_timeout):
                    first = await ws.get()
                name, secret = parse_register(decode_message(first))
            except TIMEOUT_ERRORS:
                self._failed(request, f"no register message within {self.register_timeout:g} s")
                self._refuse(ws, f"no register message within {self.register_timeout:g} s")
                return _response(ws)
            except SubscriptionClosed:
                return _response(ws)
            except ProtocolError as exc:
                self._failed(request, str(exc))
                self._refuse(ws, str(exc))
                return _response(ws)
            finally:
                self._unregistered.discard(ws)
            if not self._secret_ok(name, secret):
                self._failed(request, f"wrong secret for robot {name!r}")
                self._refuse(ws, f"wrong secret for robot {name!r}")
                return _response(ws)
            old = self._robots.get(name)
            if old is not None and isinstance(self._secrets, str) and not old.ws.closed:
                # a shared secret cannot tell the robot from another that has the secret
                self.stats["busy_registrations"] += 1
                _refusal_log.warning("robot %r is already connected; a second registration "
                                     "from %s was told to wait", name, address)
                self._send(ws, {"type": "busy", "reason": f"robot {name!r} is connected from "
                                "another socket; retrying later"})
                ws.close()
                return _response(ws)
            if old is None and len(self._robots) >= self.max_robots:
                self._refuse(ws, f"this relay already serves {self.max_robots} robots")
                return _response(ws)
            self._lockout.succeeded(address)
            session = _RobotSession(name, ws)
            self._robots[name] = session
            self.stats["registrations"] += 1
            if old is not None:
                _log.warning("robot %r registered again from %s with its secret: replacing "
                             "the old connection", name, address)
                old.fail_all(f"robot {name!r} reconnected; try again")
                self._send(old.ws, {"type": "replaced",
                                    "reason": "another connection registered this name"})
                old.ws.close()
            else:
                _log.info("robot %r connected from %s", name, address)
            self._send(ws, {"type": "registered", "name": name,
                            "iceServers": self.ice.ice_servers(name),
                            "iceTransportPolicy": self.ice.transport_policy})
            for future in self._waiters.pop(name, []):
                if not future.done():
                    future.set_result(None)
            while True:
                try:
                    message = await ws.get()
                except SubscriptionClosed:
                    break
                session.on_reply(message)
            return _response(ws)
        finally:
            self._sockets.discard(ws)
            self._unregistered.discard(ws)
            ws.close()
            if session is not None:
                if self._robots.get(session.name) is session:
                    del self._robots[session.name]
                    _log.info("robot %r disconnected", session.name)
                session.fail_all(f"robot {session.name!r} disconnected")
            await ws

    @staticmethod
    def _send(ws: Websocket, message: dict[str, Any]) -> bool:
        """Send one protocol message; False if the socket is closed already."""
        try:
            ws.put_nowait(json.dumps(message))
        except SubscriptionClosed:
            return False
        return True

    @classmethod
    def _refuse(cls, ws: Websocket, reason: str) -> None:
        cls._send(ws, {"type": "refused", "reason": reason})
        ws.close()

    # ---------------------------------------------------------------- clients

    async def handle_connect(self, request: web.Request) -> web.Response:
        """``POST /robots/{name}/connect``: the client's offer in, the robot's answer out."""
        self._checks.check_access(request)
        name = request.match_info["name"]
        if not NAME_RULE.fullmatch(name):
            raise web.HTTPNotFound(text="no such robot (invalid name)")
        session = self._robots.get(name)
        if session is None:
            raise web.HTTPServiceUnavailable(
                text=f"robot {name!r} is not connected to this relay", headers={"Retry-After": "5"}
            )
        if len(session.pending) >= self.max_pending:
            raise web.HTTPServiceUnavailable(
                text=f"robot {name!r} already has {self.max_pending} connection requests "
                "waiting", headers={"Retry-After": "2"}
            )
        offer = await self._checks.read_offer(request)
        try:  # the robot's own limits, checked here before its link carries the offer
            validate_description(offer)
            resume_session = check_session(offer.get("session"))
        except (InvalidDescription, ProtocolError) as exc:
            raise web.HTTPBadRequest(text=f"invalid offer: {exc}") from None
        relayed: dict[str, Any] = {"sdp": offer["sdp"], "type": "offer"}
        extra: dict[str, Any] = {}
        if resume_session is not None:
            extra["session"] = resume_session
        elif offer.get("resume") is True:
            extra["resume"] = True
        # Checked again after the await: the robot may have left, or other requests taken
        # the slots meanwhile (nothing awaits between here and taking one).
        session = self._robots.get(name)
        if session is None:
            raise web.HTTPServiceUnavailable(
                text=f"robot {name!r} is not connected to this relay", headers={"Retry-After": "5"}
            )
        if len(session.pending) >= self.max_pending:
            raise web.HTTPServiceUnavailable(
                text=f"robot {name!r} already has {self.max_pending} connection requests "
                "waiting", headers={"Retry-After": "2"}
            )
        request_id = secrets.token_hex(8)
        future: asyncio.Future[tuple[int, Any]] = asyncio.get_running_loop().create_future()
        session.pending[request_id] = future
        self.stats["offers"] += 1
        try:
            if not self._send(session.ws, {"type": "offer", "id": request_id,
                                           "offer": relayed, **extra}):
                raise web.HTTPServiceUnavailable(text=f"robot {name!r} disconnected")
            try:
                async with aio_timeout(self.answer_timeout):
                    status, body = await future
            except TIMEOUT_ERRORS:
                raise web.HTTPGatewayTimeout(
                    text=f"robot {name!r} did not answer within {self.answer_timeout:g} s"
                ) from None
        finally:
            session.pending.pop(request_id, None)
        if status == 200:
            session.served += 1
            self.stats["answers"] += 1
            return web.json_response(body)
        raise _http_error(status, str(body))

    async def handle_list(self, request: web.Request) -> web.Response:
        """``GET /robots``: ``{"robots": [names]}``."""
        self._checks.check_access(request)
        return web.json_response({"robots": self.robots})

    async def handle_ice(self, request: web.Request) -> web.Response:
        """``GET /ice``: the browser's ``RTCPeerConnection`` configuration."""
        self._checks.check_access(request)
        return web.json_response(self.ice.browser_configuration("viewer"))

    async def handle_index(self, request: web.Request) -> web.Response:
        return web.Response(text=index_page(), content_type="text/html")

    async def handle_viewer(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not NAME_RULE.fullmatch(name):
            raise web.HTTPNotFound(text="no such robot (invalid name)")
        return web.Response(text=viewer_page(name), content_type="text/html")


def _response(ws: Websocket) -> web.StreamResponse:
    """What the ``/ws`` handler returns: the websocket, or (when its handshake never
    completed, the client having gone away during it) a plain 400."""
    response = ws.ws
    if response is None or (isinstance(response, web.WebSocketResponse)
                            and not response.prepared):
        return web.Response(status=400, text="the websocket handshake did not complete")
    return response


def _http_error(status: int, text: str) -> web.HTTPException:
    """The aiohttp exception for ``status`` (a robot's refusal), with a plain-text body."""
    cls = _ERROR_CLASSES.get(status)
    if cls is not None:
        try:
            return cls(text=text)
        except TypeError:  # classes that need more arguments (405, 413)
            pass
    return web.HTTPBadGateway(text=f"the robot refused ({status}): {text}")


def _error_classes() -> dict[int, type[web.HTTPException]]:
    found: dict[int, type[web.HTTPException]] = {}
    stack: list[type[web.HTTPException]] = [web.HTTPClientError, web.HTTPServerError]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        status = getattr(cls, "status_code", None)
        if isinstance(status, int) and status >= 400:
            found.setdefault(status, cls)
    return found


_ERROR_CLASSES = _error_classes()


def create_relay_app(
    secret: str | Mapping[str, str], *, index: bool = True, **options: Any
) -> web.Application:
    """An aiohttp app running a :class:`RelayServer`; ``options`` are the
    server's (``app[RELAY_KEY]``); ``index=False`` leaves ``/`` free for your own page. Run it
    with ``web.run_app(app, host=..., port=...)``."""
    app = web.Application()
    relay = RelayServer(secret, **options)
    relay.add_routes(app, index=index)
    app[RELAY_KEY] = relay
    return app


#: The key of the :class:`RelayServer` in an app made by :func:`create_relay_app`.
RELAY_KEY = web.AppKey("relay", RelayServer)
