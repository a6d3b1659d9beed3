"""Websocket: a websocket connection (client or server side) as an rtcbot producer and consumer.

``Websocket("ws://host:port/path")`` connects out (``http://``, ``https://``, ``ws://`` and
``wss://`` URLs are accepted); ``Websocket(request)`` inside an aiohttp handler accepts the
client's websocket. Either way ``put_nowait(msg)``/``putSubscription(s)`` send messages and
``subscribe()``/``get()`` receive them, with the same rule as rtcbot's data channels
(see :mod:`rtcbot.connection._codec`):

* values are JSON-encoded on the caller's stack (strings too); ``bytes`` travel as binary frames;
* received text frames are JSON-decoded (text that is not JSON arrives as ``str``, counted);
  binary frames arrive as ``bytes``.

With ``json=False`` only ``str`` and ``bytes`` are sent, and frames arrive as they came.

A connect that fails is reported (``onError`` with a :class:`WebsocketError` naming the URL)
and the object closes, so ``await ws`` always returns. ``close()`` is synchronous and prompt;
messages already given to ``put_nowait`` are still sent before the close frame (bounded by
``close_timeout``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from .base._compat import TIMEOUT_ERRORS
from .base._compat import timeout as aio_timeout
from .base.base import SubscriptionProducerConsumer
from .base.errors import RTCBotError, SubscriptionClosed
from .base.subscriptions import describe
from .connection._codec import MessageDecoder, encode_message

__all__ = ["Websocket", "WebsocketError", "WebsocketStatistics"]

_log = logging.getLogger("rtcbot.websocket")

_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


class WebsocketError(RTCBotError, ConnectionError):
    """The websocket could not connect, or broke (an error frame, a lost connection)."""


@dataclass(frozen=True)
class WebsocketStatistics:
    """Counters of one websocket.

    * ``sent`` -- messages written to the socket.
    * ``received`` -- messages received (text and binary).
    * ``not_json`` -- received text messages that were not JSON (delivered as ``str``).
    * ``failed`` -- messages that could not be sent (a ``putSubscription`` element that could
      not be encoded, or the socket closed under it); each is logged.
    """

    sent: int
    received: int
    not_json: int
    failed: int


class _Encoded:
    """A payload already encoded by ``put_nowait`` (on the caller's stack)."""

    __slots__ = ("payload",)

    def __init__(self, payload: str | bytes) -> None:
        self.payload = payload


class _Closing:
    """What ``Websocket.close()`` returns: awaiting it waits until the socket is shut down.
    Cancelling the await does not stop the close."""

    __slots__ = ("_ws",)

    def __init__(self, ws: Websocket) -> None:
        self._ws = ws

    def __await__(self):
        return self._ws._waitClosed().__await__()


class Websocket(SubscriptionProducerConsumer):
    """A websocket as a producer (received messages) and consumer (messages to send).

    ``url_or_request``: a URL (``str`` or ``yarl.URL``; ``http(s)://`` is taken as
    ``ws(s)://``) to connect to, or an aiohttp ``web.Request`` whose websocket to accept. In a
    handler, return ``ws.ws`` once the socket is done::

        async def handler(request):
            ws = Websocket(request)
            ...
            await ws            # until either side closes
            return ws.ws

    ``json``: the message rule (see the module docstring). ``loop`` is accepted for RTCBot
    0.2.5 compatibility; the object otherwise binds to the loop that first uses it (it may be
    created at module level). Keyword-only: ``headers`` (client: extra HTTP headers, for example
    ``{"Authorization": "Bearer ..."}``), ``heartbeat`` (seconds between websocket pings; a peer
    that does not answer within half of it is taken as gone and the socket closes; default None,
    no pings), ``connect_timeout`` (seconds; client), ``close_timeout`` (seconds to flush and
    close politely before the socket is dropped), ``max_msg_size`` (bytes, received messages).

    Events: ``onReady`` once connected (accepted), ``onError`` with a :class:`WebsocketError`
    when the connect fails or the socket breaks, ``onClose`` when either side closes. Messages
    received before the first subscriber are kept for it (bounded).
    """

    def __init__(
        self,
        url_or_request: Any,
        json: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        headers: dict[str, str] | None = None,
        heartbeat: float | None = None,
        connect_timeout: float = 10.0,
        close_timeout: float = 2.0,
        max_msg_size: int = 4 * 1024 * 1024,
    ) -> None:
        super().__init__(logger=_log)
        if isinstance(url_or_request, (str, URL)):
            url = URL(str(url_or_request))
            scheme = _SCHEMES.get(url.scheme)
            if scheme is None or not url.host:
                raise ValueError(
                    f"Websocket needs a ws://, wss://, http:// or https:// URL, got "
                    f"{str(url_or_request)!r}"
                )
            self._url: URL | None = url.with_scheme(scheme)
            self._request: web.BaseRequest | None = None
        elif isinstance(url_or_request, web.BaseRequest):
            self._url = None
            self._request = url_or_request
        else:
            raise TypeError(
                f"Websocket needs a URL (str) or an aiohttp web.Request, got "
                f"{describe(url_or_request)}"
            )
        for name, value in (("connect_timeout", connect_timeout), ("close_timeout", close_timeout)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if heartbeat is not None and (not isinstance(heartbeat, (int, float)) or heartbeat <= 0):
            raise ValueError(f"heartbeat must be None or positive seconds, got {heartbeat!r}")
        self._json = bool(json)
        self._decoder = MessageDecoder("websocket", self._json)
        self._headers = dict(headers or {})
        self._heartbeat = heartbeat
        self._connectTimeout = float(connect_timeout)
        self._closeTimeout = float(close_timeout)
        self._maxMsgSize = int(max_msg_size)
        self._session: aiohttp.ClientSession | None = None
        self._ws: Any = None
        self._refusal: web.StreamResponse | None = None
        self._life: asyncio.Task[None] | None = None
        self._sent = 0
        self._received = 0
        self._failed = 0
        self._addFinisher(self._waitLife)
        if loop is not None:
            self._bindLoop(loop)
        self._callFromThread(self._start)

    # ------------------------------------------------------------------ properties

    @property
    def url(self) -> str | None:
        """The URL connected to (``ws://`` or ``wss://``), or None on the server side."""
        return None if self._url is None else str(self._url)

    @property
    def ws(self) -> Any:
        """The aiohttp websocket (``ClientWebSocketResponse`` or ``WebSocketResponse``), None
        before it exists. On the server side, when the request was not a websocket upgrade,
        the HTTP error response to return instead (so ``return ws.ws`` is always right)."""
        if self._refusal is not None:
            return self._refusal
        return self._ws

    def statistics(self) -> WebsocketStatistics:
        """The counters of this websocket (see :class:`WebsocketStatistics`)."""
        return WebsocketStatistics(
            sent=self._sent,
            received=self._received,
            not_json=self._decoder.not_json,
            failed=self._failed,
        )

    # ------------------------------------------------------------------ sending

    def _encode(self, message: Any) -> str | bytes:
        if self._json:
            return encode_message(message)
        if isinstance(message, (str, bytes)):
            return message
        if isinstance(message, (bytearray, memoryview)):
            return bytes(message)
        raise TypeError(f"cannot send {describe(message)} on a json=False Websocket: send str "
                        "or bytes")

    def put_nowait(self, message: Any) -> None:
        """Send ``message``; never blocks. Messages put before the socket is open are sent in
        order once it is (at most 10 000 wait; beyond that :class:`SubscriptionFull`).

        Raises :class:`TypeError`/:class:`ValueError` naming a value that cannot be encoded
        (nothing is sent; the socket keeps working) and :class:`SubscriptionClosed` once closed.
        """
        if self._closedFlag:
            raise SubscriptionClosed(f"the Websocket is closed: cannot send {describe(message)}")
        super().put_nowait(_Encoded(self._encode(message)))

    send = put_nowait

    async def _sendLoop(self, ws: Any) -> None:
        """Send what ``put_nowait``/``putSubscription`` give until close, then what is left."""
        while True:
            try:
                item = await self._get()
            except SubscriptionClosed:
                if self._shouldClose:
                    break
                continue  # a putSubscription source ended: back to put_nowait messages
            if not await self._sendOne(ws, item):
                return
        # Closed: flush what put_nowait queued before close().
        buffered = self._directPutSubscription
        while not ws.closed:
            try:
                item = buffered.get_nowait()
            except (asyncio.QueueEmpty, SubscriptionClosed):
                break
            if not await self._sendOne(ws, item):
                break

    async def _sendOne(self, ws: Any, item: Any) -> bool:
        if isinstance(item, _Encoded):
            payload = item.payload
        else:
            try:
                payload = self._encode(item)
            except (TypeError, ValueError) as exc:
                self._failed += 1
                self._log.error("Websocket: not sent: %s", exc)
                return True
        try:
            if isinstance(payload, str):
                await ws.send_str(payload)
            else:
                await ws.send_bytes(payload)
        except (ConnectionError, RuntimeError) as exc:  # closed under us
            self._failed += 1
            self._log.debug("Websocket: send failed (%r); %s", exc, describe(payload))
            return False
        self._sent += 1
        return True

    # ------------------------------------------------------------------ lifecycle

    def _start(self) -> None:
        if self._closedFlag or self._life is not None:
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self._life = loop.create_task(self._run(), name="rtcbot Websocket")

    async def _waitLife(self) -> None:
        life = self._life
        if life is not None and asyncio.current_task() is not life:
            await asyncio.shield(life)

    async def _run(self) -> None:
        try:
            if self._request is not None:
                # Accepting is a local handshake: not interrupted by close(), so messages put
                # before close() are still sent.
                try:
                    await self._open()
                except WebsocketError as exc:
                    self._setError(exc)
                    return
            else:  # connecting may take long: close() interrupts it
                # owned (close() cancels it) but not reported by the base class: a failed
                # connect is reported once, below, as a WebsocketError
                opener = asyncio.get_running_loop().create_task(self._open())
                self._tasks.add(opener)
                opener.add_done_callback(self._tasks.discard)
                await asyncio.wait({opener})
                if opener.cancelled() or self._closedFlag:
                    return
                exc = opener.exception()
                if exc is not None:
                    self._setError(exc)
                    return
            ws = self._ws
            self._setReady(True)
            if not self._closedFlag:
                self._spawn(self._readLoop(ws), name="rtcbot Websocket reader")
            await self._sendLoop(ws)
        except Exception as exc:  # pragma: no cover - a bug here must not hang `await ws`
            self._log.exception("Websocket failed")
            self._setError(exc)
        finally:
            await self._shutdown()

    async def _open(self) -> None:
        if self._request is not None:
            ws = web.WebSocketResponse(
                timeout=self._closeTimeout,
                heartbeat=self._heartbeat,
                max_msg_size=self._maxMsgSize,
            )
            check = ws.can_prepare(self._request)
            if not check.ok:
                self._refusal = web.Response(
                    status=400, text="this URL is a websocket: connect with a websocket client"
                )
                raise WebsocketError(
                    f"the request to {self._request.path} is not a websocket upgrade"
                )
            self._ws = ws
            try:
                await ws.prepare(self._request)
            except (ConnectionError, OSError) as exc:
                raise WebsocketError(f"could not accept the websocket: {exc}") from exc
            return
        session = aiohttp.ClientSession()
        self._session = session
        try:
            async with aio_timeout(self._connectTimeout):
                self._ws = await session.ws_connect(
                    self._url,
                    headers=self._headers,
                    heartbeat=self._heartbeat,
                    max_msg_size=self._maxMsgSize,
                    timeout=aiohttp.ClientWSTimeout(ws_close=self._closeTimeout),
                )
        except TIMEOUT_ERRORS:
            raise WebsocketError(
                f"could not connect to {self._url}: no answer within {self._connectTimeout:g} s"
            ) from None
        except aiohttp.WSServerHandshakeError as exc:
            raise WebsocketError(
                f"could not connect to {self._url}: the server answered HTTP {exc.status} "
                f"{exc.message}"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise WebsocketError(f"could not connect to {self._url}: {exc}") from exc

    async def _readLoop(self, ws: Any) -> None:
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind == aiohttp.WSMsgType.TEXT:
                self._received += 1
                self._put_nowait(self._decoder.decode(msg.data))
            elif kind == aiohttp.WSMsgType.BINARY:
                self._received += 1
                self._put_nowait(bytes(msg.data))
            elif kind == aiohttp.WSMsgType.ERROR:
                where = self._url if self._url is not None else "the client"
                self._setError(WebsocketError(f"the websocket to {where} broke: {msg.data!r}"))
                return
            else:  # CLOSE, CLOSING, CLOSED: the peer closed (or the connection is gone)
                self._log.debug("websocket closed by the peer (%s)", kind.name)
                self.close()
                return

    async def _shutdown(self) -> None:
        """Close the socket (politely, bounded) and the client session."""
        ws, session = self._ws, self._session
        try:
            if ws is not None and not ws.closed:
                try:
                    async with aio_timeout(self._closeTimeout + 1):
                        await ws.close()
                except (*TIMEOUT_ERRORS, ConnectionError, RuntimeError) as exc:
                    self._log.debug("websocket close: %r", exc)
        finally:
            self._session = None
            if session is not None:
                await session.close()
            if not self._closedFlag:
                self.close()

    def close(self) -> _Closing:  # type: ignore[override]
        """Close the websocket: returns at once; messages already given to ``put_nowait`` are
        sent first, then the close frame. The returned object may be awaited (``await
        ws.close()``, as in RTCBot 0.2.5) to wait for that, at most about ``close_timeout``
        seconds; not awaiting it closes just the same. Readers get :class:`SubscriptionClosed`
        after the messages received so far. Idempotent."""
        super().close()
        return _Closing(self)

    def __repr__(self) -> str:
        state = "closed" if self._closedFlag else ("ready" if self._readyFlag else "connecting")
        where = self._url if self._url is not None else "server side"
        return f"<Websocket {where} {state}>"
