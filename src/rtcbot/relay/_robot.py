"""The robot side of the relay: connect out, register, answer each client with its own
RTCConnection, reconnect with backoff when the relay goes away."""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..base._compat import TIMEOUT_ERRORS
from ..base._compat import timeout as aio_timeout
from ..base.errors import RTCBotError, SubscriptionClosed
from ..base.events import baseEventHandler
from ..websocket import Websocket, WebsocketError
from ._protocol import PROTOCOL_VERSION, ProtocolError, check_name, check_session

__all__ = ["RelayRefused", "RelayRobot", "connect_robot"]

_log = logging.getLogger("rtcbot.relay")


class RelayRefused(RTCBotError):
    """The relay refused this robot (a wrong secret, an invalid name). Not retried: it needs a
    person to fix. (A name taken over by another connection with this robot's secret is not
    a refusal: the robot warns and takes it back after the longest backoff.)"""


def _cut(text: object, limit: int = 200) -> str:
    """``str(text)`` cut to ``limit`` characters (the relay's words, in our log lines)."""
    shown = str(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _robot_url(relay_url: str) -> str:
    """The robot websocket URL of a relay: ``http://host:port`` -> ``ws://host:port/ws``."""
    parts = urlsplit(relay_url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"the relay URL must be http(s):// or ws(s)://host[:port], got "
                         f"{relay_url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/ws"):
        path += "/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


class RelayRobot(baseEventHandler):
    """A robot registered at a relay (made by :func:`connect_robot`).

    Ready while registered (``onReady`` fires at each registration, after a reconnect too).
    ``connections``: the clients' connections open now. ``close()`` unregisters and closes
    them. ``onError`` receives :class:`RelayRefused` when the relay refuses the robot (then the
    robot stops: fix the name or secret); network errors are retried with backoff forever.
    When another connection registers this name with this robot's secret, the robot logs a
    warning and registers again after the longest backoff (``replacements`` counts them);
    when the name is held by a live socket under a shared relay secret ("busy"), it retries
    with backoff.
    """

    def __init__(
        self,
        relay_url: str,
        name: str,
        secret: str,
        on_connection: Callable[[Any], Any] | None = None,
        *,
        rtc_configuration: Any = None,
        max_connections: int = 8,
        answer_timeout: float = 15.0,
        backoff: tuple[float, float] = (0.5, 30.0),
        heartbeat: float = 10.0,
        resume_window: float | None = 30.0,
    ) -> None:
        from ..connection._resume import check_window

        super().__init__(logger=_log)
        self.url = _robot_url(relay_url)
        self.name = check_name(name)
        if not isinstance(secret, str) or not secret:
            raise ValueError("the robot secret must be a non-empty str")
        if on_connection is not None and not callable(on_connection):
            raise TypeError(f"on_connection must be callable, got {on_connection!r}")
        if not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"max_connections must be a positive int, got {max_connections!r}")
        low, high = backoff
        if not 0 < low <= high:
            raise ValueError(f"backoff must be (min, max) seconds with 0 < min <= max, got "
                             f"{backoff!r}")
        self._secret = secret
        self.on_connection = on_connection
        self.rtc_configuration = rtc_configuration
        self.max_connections = max_connections
        self.answer_timeout = answer_timeout
        self.backoff = (float(low), float(high))
        self.heartbeat = heartbeat
        self.resume_window = check_window(resume_window)
        self._sessions: dict[str, tuple[str, Any]] = {}  # id: (secret, connection)
        self._lastKick = -1e9
        self._kick: asyncio.Event | None = None
        self._connections: set[Any] = set()
        self._answering = 0
        self._relayIce: Any = None
        self._ws: Websocket | None = None
        #: how many times the robot registered (1 after the first connect, +1 per reconnect)
        self.registrations = 0
        #: how many times another connection took over this robot's name with its secret
        self.replacements = 0
        self._retryAfter: float | None = None
        self._addFinisher(self._closeConnections)
        self._callFromThread(self._start)

    def _start(self) -> None:
        if not self._closedFlag:
            self._spawn(self._run(), name=f"rtcbot relay robot {self.name}")

    @property
    def connections(self) -> frozenset[Any]:
        """The clients' connections that are open now."""
        return frozenset(self._connections)

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        delay = self.backoff[0]
        while not self._closedFlag:
            registered = await self._session()
            if self._closedFlag:
                return
            if registered:
                delay = self.backoff[0]
            wait = delay * random.uniform(0.8, 1.2)
            if self._retryAfter is not None:  # replaced: take the name back later
                wait, self._retryAfter = self._retryAfter, None
            kick = self._kick
            if kick is not None and kick.is_set():  # a session lost its link: at once
                kick.clear()
                wait = 0.0
            self._log.info("relay %s: connection lost; reconnecting in %.1f s", self.url, wait)
            if wait:
                await asyncio.sleep(wait)
            delay = min(delay * 2, self.backoff[1])

    def _onLinkLost(self, reason: Any) -> None:
        """A client's link was lost: our own network may have changed under the relay socket
        too (a dead TCP connection is noticed only after the websocket heartbeat). Reconnect
        it now, at most every 2 s, so the client's resume offer can reach us."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._closedFlag or now - self._lastKick < 2.0:
            return
        self._lastKick = now
        if self._kick is None:
            self._kick = asyncio.Event()
        self._kick.set()
        ws = self._ws
        if ws is not None:
            self._log.info("a session lost its link: reconnecting to the relay")
            ws.close()

    async def _session(self) -> bool:
        """One connection to the relay. Returns True if it registered."""
        ws = Websocket(self.url, heartbeat=self.heartbeat)
        self._ws = ws
        registered = False
        try:
            await ws.onReady()
            ws.put_nowait({"type": "register", "name": self.name, "secret": self._secret,
                           "protocol": PROTOCOL_VERSION})
            while True:
                message = await ws.get()
                if not isinstance(message, dict):
                    self._log.warning("relay sent %r; ignored", message)
                    continue
                kind = message.get("type")
                if kind == "offer":
                    self._spawn(self._answer(ws, message), critical=False,
                                name="rtcbot relay answer")
                elif kind == "registered":
                    registered = True
                    self.registrations += 1
                    servers = message.get("iceServers") or []
                    if servers:
                        self._relayIce = {"iceServers": servers,
                                          "iceTransportPolicy":
                                              message.get("iceTransportPolicy", "all")}
                    self._log.info("registered at %s as %r", self.url, self.name)
                    self._setReady(True)
                elif kind == "refused":
                    reason = message.get("reason", kind)
                    self._setError(RelayRefused(f"relay {self.url} refused robot "
                                                f"{self.name!r}: {_cut(reason)}"))
                    return registered
                elif kind == "replaced":
                    # Another process registered our name with our secret: a duplicate of
                    # this robot, or someone who has its secret. Say so loudly and take the
                    # name back later: never silently gone for good.
                    self.replacements += 1
                    self._log.warning(
                        "relay %s: another connection registered robot %r with its secret "
                        "(%s); trying again in %g s. Is a second copy of this robot running, "
                        "or has its secret leaked?", self.url, self.name,
                        _cut(message.get("reason", "")), self.backoff[1])
                    self._retryAfter = self.backoff[1]
                    return False
                elif kind == "busy":
                    # The name is held by a live socket (a shared relay secret): ours, not yet
                    # dropped after a restart, or another robot's. Retry with backoff.
                    self._log.warning("relay %s: robot %r is connected from another socket "
                                      "(%s); retrying", self.url, self.name,
                                      _cut(message.get("reason", "")))
                    return False
                else:
                    self._log.warning("relay sent a message of unknown type %r", kind)
        except (WebsocketError, SubscriptionClosed) as exc:
            self._log.debug("relay session ended: %r", exc)
            return registered
        finally:
            self._setReady(False)
            ws.close()
            await ws
            self._ws = None

    def _configuration(self) -> Any:
        if self.rtc_configuration is not None:
            return self.rtc_configuration
        if self._relayIce is not None:
            from ..ice import load_ice_config

            return load_ice_config(self._relayIce).rtc_configuration()
        from ..ice import rtc_configuration

        return rtc_configuration()

    async def _answer(self, ws: Websocket, message: dict[str, Any]) -> None:
        request_id = message.get("id")

        def reply(payload: dict[str, Any]) -> bool:
            try:
                ws.put_nowait({"id": request_id, **payload})
            except SubscriptionClosed:
                return False
            return True

        try:
            resume = check_session(message.get("session"))
        except ProtocolError as exc:
            reply({"type": "error", "status": 400, "reason": str(exc)})
            return
        if resume is not None:
            await self._resume(resume, message.get("offer"), reply)
            return
        if len(self._connections) + self._answering >= self.max_connections:
            reply({"type": "error", "status": 503,
                   "reason": f"robot {self.name!r} already has {self.max_connections} "
                             "connections"})
            return
        from ..connection import RTCConnection
        from ..connection._connection import InvalidDescription, validate_description

        try:
            offer = validate_description(message.get("offer"))
        except InvalidDescription as exc:
            reply({"type": "error", "status": 400, "reason": f"invalid offer: {exc}"})
            return
        self._answering += 1
        conn = RTCConnection(rtcConfiguration=self._configuration(),
                             resume_window=self.resume_window)
        try:
            async with aio_timeout(self.answer_timeout):  # a hung on_connection included
                if self.on_connection is not None:
                    result = self.on_connection(conn)
                    if inspect.isawaitable(result):
                        await result
                answer = await conn.getLocalDescription({"sdp": offer.sdp, "type": "offer"})
        except asyncio.CancelledError:
            conn.close()
            raise
        except Exception as exc:
            conn.close()
            if isinstance(exc, TIMEOUT_ERRORS):
                status, reason = 504, f"could not answer within {self.answer_timeout:g} s"
            elif isinstance(exc, (InvalidDescription, ValueError)):
                status, reason = 400, f"invalid offer: {exc}"
            else:
                self._log.exception("could not answer an offer")
                status, reason = 500, f"could not answer: {exc!r}"
            reply({"type": "error", "status": status, "reason": reason})
            return
        finally:
            self._answering -= 1
        if message.get("resume") is True and conn.resume_window != 0 and not conn.closed:
            session_id, secret = secrets.token_urlsafe(12), secrets.token_urlsafe(24)
            self._sessions[session_id] = (secret, conn)
            conn.onClose(lambda: self._sessions.pop(session_id, None))
            answer = {**answer, "session": {"id": session_id, "secret": secret,
                                            "window": conn.resume_window}}
        if conn.closed or not reply({"type": "answer", "answer": answer}):
            conn.close()
            return
        self._connections.add(conn)
        conn.onClose(lambda: self._connections.discard(conn))
        conn.on_link_lost(self._onLinkLost)

    async def _resume(self, resume: dict[str, Any], offer: Any, reply: Any) -> None:
        """A client resumes its session: answered on the same connection (no new slot)."""
        from ..connection._connection import InvalidDescription, SignalingError
        from ..web._connect import _same_secret

        entry = self._sessions.get(resume["id"])
        if entry is None or entry[1].closed:
            reply({"type": "error", "status": 404, "reason": "no such session: it was closed "
                   "or its resume window expired; connect anew"})
            return
        secret, conn = entry
        if not _same_secret(resume["secret"], secret):
            self._log.warning("a resume offer had a wrong session secret")
            reply({"type": "error", "status": 403, "reason": "wrong session secret"})
            return
        try:
            async with aio_timeout(self.answer_timeout):
                answer = await conn.accept_resume(offer)
        except asyncio.CancelledError:
            raise
        except SignalingError as exc:
            reply({"type": "error", "status": 404, "reason": f"the session cannot resume: {exc}"})
            return
        except Exception as exc:
            status = 504 if isinstance(exc, TIMEOUT_ERRORS) else 400
            if not isinstance(exc, (InvalidDescription, ValueError, *TIMEOUT_ERRORS)):
                self._log.exception("could not answer a resume offer")
                status = 500
            reply({"type": "error", "status": status, "reason": f"could not resume: {exc!r}"})
            return
        reply({"type": "answer", "answer": {**answer, "session": {
            "id": resume["id"], "secret": secret, "window": conn.resume_window}}})

    # ------------------------------------------------------------------ closing

    async def _closeConnections(self) -> None:
        from ..connection import close_all

        await close_all(self._connections)

    def close(self) -> None:
        """Unregister (close the relay socket) and close the clients' connections. Returns at
        once; ``await robot`` waits until all is closed."""
        if self._closedFlag:
            return
        for conn in list(self._connections):
            conn.close()
        ws = self._ws
        if ws is not None:
            ws.close()
        super().close()


def connect_robot(
    relay_url: str,
    name: str,
    secret: str,
    on_connection: Callable[[Any], Any] | None = None,
    **options: Any,
) -> RelayRobot:
    """Run the robot side of a relay: returns a :class:`RelayRobot` that keeps a websocket
    open to ``relay_url`` (``http(s)://host:port``), registered as ``name`` with ``secret``,
    and answers each client's offer with a new ``RTCConnection``, first given to
    ``on_connection(conn)`` (a function or coroutine function) to wire::

        def on_connection(conn):
            conn.video.putSubscription(camera.subscribe())
            conn.subscribe(print)

        robot = connect_robot("https://relay.example.org", "rover", SECRET, on_connection)
        await robot            # runs until robot.close()

    It may be called before the event loop runs (at module level); it starts with the loop.
    ``options``:
    ``rtc_configuration`` (ICE servers for the connections; default: those the relay hands
    out, else the environment, see :mod:`rtcbot.ice`), ``max_connections`` (8),
    ``answer_timeout`` (15 s), ``backoff`` ((0.5, 30) s: reconnect delays, doubling, with
    jitter), ``heartbeat`` (10 s: websocket pings, so a dead relay is noticed).
    """
    return RelayRobot(relay_url, name, secret, on_connection, **options)
