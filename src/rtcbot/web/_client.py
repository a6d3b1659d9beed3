"""``rtcbot.web.connect``: the Python client of a robot's ``POST /connect`` endpoint, with
resumable sessions."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..base._compat import timeout as aio_timeout

__all__ = ["connect"]

_log = logging.getLogger("rtcbot.web")

#: Most bytes of an answer read from the server (an answer is a few kilobytes).
MAX_ANSWER_BYTES = 256 * 1024


def _endpoint(url: Any) -> str:
    if not isinstance(url, str):
        raise TypeError(f"url must be a str such as 'http://robot.local:8080', got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
    path = parts.path if parts.path not in ("", "/") else "/connect"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class _Signaling:
    """Posts offers to the endpoint and reads the answers, bounded in bytes and time. Each
    request opens a new TCP connection: after a network change a pooled one is dead."""

    def __init__(self, url: str, token: str | None, request_timeout: float) -> None:
        self.url = url
        self.token = token
        self.request_timeout = request_timeout
        self.session: dict[str, Any] | None = None
        self._http: Any = None

    def _client(self) -> Any:
        import aiohttp

        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True),
                timeout=aiohttp.ClientTimeout(total=self.request_timeout),
            )
        return self._http

    async def post(self, body: dict[str, Any], *, resume: bool) -> dict[str, Any]:
        """POST ``body``; return the answer (a dict). Raises :class:`SessionGone` for a
        resume the server refuses for good (401, 403, 404, 410), :class:`ConnectionLost` for
        any other failure (the caller retries a resume)."""
        from ..connection import ConnectionLost, SessionGone
        from ._connect import RESUME_HEADER

        headers = {"Content-Type": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        if resume:
            headers[RESUME_HEADER] = "1"
        try:
            async with self._client().post(self.url, data=json.dumps(body),
                                           headers=headers) as response:
                raw = bytearray()
                while len(raw) <= MAX_ANSWER_BYTES:  # read() gives what has arrived so far
                    chunk = await response.content.read(MAX_ANSWER_BYTES + 1 - len(raw))
                    if not chunk:
                        break
                    raw += chunk
                status = response.status
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # refused, reset, DNS, timeout: the network
            raise ConnectionLost(f"POST {self.url} failed: {exc!r}") from exc
        text = bytes(raw[:300]).decode("utf-8", "replace")
        if status != 200:
            error = SessionGone if resume and status in (401, 403, 404, 410) else ConnectionLost
            raise error(f"POST {self.url}: HTTP {status}: {text}")
        if len(raw) > MAX_ANSWER_BYTES:
            raise ConnectionLost(f"POST {self.url}: the answer is over {MAX_ANSWER_BYTES} bytes")
        try:
            answer = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ConnectionLost(f"POST {self.url}: the answer is not JSON: {exc}") from None
        if not isinstance(answer, dict):
            raise ConnectionLost(f"POST {self.url}: the answer is not a JSON object")
        return answer

    async def first_offer(self, offer: dict[str, str]) -> dict[str, Any]:
        answer = await self.post({**offer, "resume": True}, resume=False)
        session = answer.pop("session", None)
        if (
            isinstance(session, dict)
            and isinstance(session.get("id"), str)
            and isinstance(session.get("secret"), str)
        ):
            self.session = {"id": session["id"], "secret": session["secret"]}
        return answer

    async def resume_offer(self, offer: dict[str, str]) -> dict[str, Any]:
        from ..connection import SessionGone

        if self.session is None:
            raise SessionGone("the server gave no session to resume")
        answer = await self.post({**offer, "session": self.session}, resume=True)
        answer.pop("session", None)
        return answer

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()


async def connect(
    url: str,
    token: str | None = None,
    *,
    connection: Any = None,
    setup: Callable[[Any], Any] | None = None,
    timeout: float = 20.0,
    request_timeout: float = 10.0,
    **options: Any,
) -> Any:
    """Connect to a robot's ``POST /connect`` endpoint (``rtcbot.web.add_rtcbot_routes``, the
    demo) and return the connected :class:`~rtcbot.RTCConnection`.

    ``url``: the server (``"http://robot.local:8080"``: ``/connect`` is added) or the endpoint
    itself. ``token``: the server's token, if it requires one (sent as ``Authorization:
    Bearer``; never logged). ``connection``: an :class:`~rtcbot.RTCConnection` you configured
    (tracks to send, ``addDataChannel``, ``offerToReceive``); otherwise one is created with
    ``options`` (``rtcConfiguration``, ``resume_window``, ``heartbeat_timeout``...) and asks to
    receive one video and one audio track. ``setup(conn)`` is called before the offer is
    made, to wire a connection created here.

    The session resumes by itself: when the link is lost, a new offer is posted to the same
    URL with the session the server handed out, until the connection's ``resume_window``
    expires (``conn.on_link_lost`` / ``conn.on_link_restored`` tell when). A server that does
    not resume (an older rtcbot, a hand-written endpoint) gives a plain session.

    Returns once the connection is ready (its default data channel open), within ``timeout``
    seconds; ``request_timeout`` bounds each HTTP request. Raises ``ConnectionLost`` (HTTP
    errors, unreachable server) or ``TimeoutError``; the connection is then closed.
    Cancelling it closes the connection.
    """
    from ..connection import RTCConnection

    endpoint = _endpoint(url)
    if token is not None and (not isinstance(token, str) or not token):
        raise ValueError("token must be a non-empty str or None")
    if connection is None:
        conn = RTCConnection(**options)
        conn.video.offerToReceive(1)
        conn.audio.offerToReceive(1)
    elif options:
        raise TypeError(
            f"pass RTCConnection options ({sorted(options)}) or a connection, not both"
        )
    else:
        conn = connection
    signaling = _Signaling(endpoint, token, request_timeout)
    conn.onClose(signaling.close)
    try:
        async with aio_timeout(timeout):
            if setup is not None:
                result = setup(conn)
                if asyncio.iscoroutine(result):
                    await result
            conn.set_resume_signaling(signaling.resume_offer)
            offer = await conn.getLocalDescription()
            answer = await signaling.first_offer(offer)
            if signaling.session is None:
                conn.set_resume_signaling(None)
                _log.info("%s hands out no resumable session: a lost link closes it", endpoint)
            await conn.setRemoteDescription(answer)
            await conn.onReady()
    except asyncio.CancelledError:
        conn.close()
        raise
    except BaseException:
        conn.close()
        await signaling.close()
        try:  # its sockets are released before the error reaches the caller
            async with aio_timeout(5.0):
                await conn
        except Exception as exc:
            _log.debug("closing after a failed connect: %r", exc)
        raise
    return conn
