"""The client side of the relay for Python programs: offer to a named robot, get its answer."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from ..base._compat import timeout as aio_timeout
from ..base.errors import RTCBotError
from ._protocol import check_name

__all__ = ["RelayError", "connect_to_robot", "fetch_ice"]


class RelayError(RTCBotError, ConnectionError):
    """The relay (or the robot through it) refused the connection. ``status`` is the HTTP
    status (401/403: token, 503: robot not connected or busy, 504: no answer in time) and
    ``reason`` the relay's explanation."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"relay refused the connection: HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


def _base(relay_url: str) -> str:
    parts = urlsplit(relay_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the relay URL must be http(s)://host[:port], got {relay_url!r}")
    return relay_url.rstrip("/")


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def fetch_ice(relay_url: str, *, token: str | None = None, timeout: float = 10.0) -> dict:
    """The ICE configuration the relay hands to clients (``GET /ice``):
    ``{"iceServers": [...], "iceTransportPolicy": ...}``, accepted by
    :func:`rtcbot.ice.load_ice_config`. Raises :class:`RelayError` if refused."""
    async with aiohttp.ClientSession() as session, aio_timeout(timeout):
        async with session.get(_base(relay_url) + "/ice", headers=_headers(token)) as resp:
            if resp.status != 200:
                raise RelayError(resp.status, await resp.text())
            return await resp.json()


async def connect_to_robot(
    relay_url: str,
    name: str,
    connection: Any = None,
    *,
    token: str | None = None,
    use_relay_ice: bool = True,
    timeout: float = 30.0,
) -> Any:
    """Connect ``connection`` (an :class:`~rtcbot.RTCConnection`; a new one if None) to the
    robot ``name`` registered at ``relay_url`` (``http(s)://host:port``) and return it.

    Configure what to receive and send before calling (``conn.video.subscribe(...)``,
    ``conn.video.offerToReceive()``): this makes the offer, POSTs it to
    ``/robots/NAME/connect`` with ``token`` and sets the robot's answer. A new connection takes
    its ICE servers from the relay (``GET /ice``) when ``use_relay_ice``. Returns once the
    answer is set; ``await conn.onReady()`` then waits for the link. Raises
    :class:`RelayError` (the relay's status and reason; a connection made here is closed).
    Cancelling it leaves a given connection unusable: close it.
    """
    name = check_name(name)
    base = _base(relay_url)
    url = f"{base}/robots/{quote(name)}/connect"
    made = connection is None
    if made:
        from ..connection import RTCConnection
        from ..ice import load_ice_config

        config = None
        if use_relay_ice:
            config = load_ice_config(await fetch_ice(base, token=token)).rtc_configuration()
        connection = RTCConnection(rtcConfiguration=config)
    try:
        async with aio_timeout(timeout):
            session: dict[str, str] = {}

            async def resume_offer(offer: dict[str, str]) -> dict[str, Any]:
                from ..connection import ConnectionLost, SessionGone

                try:
                    reply = await _post(url, {**offer, "session": session}, token, resume=True)
                except RelayError as exc:
                    gone = exc.status in (401, 403, 404, 410)
                    raise (SessionGone if gone else ConnectionLost)(str(exc)) from exc
                except (aiohttp.ClientError, OSError) as exc:
                    raise ConnectionLost(f"POST {url} failed: {exc!r}") from exc
                reply.pop("session", None)
                return reply

            connection.set_resume_signaling(resume_offer)
            offer = await connection.getLocalDescription()
            answer = await _post(url, {**offer, "resume": True}, token)
            given = answer.pop("session", None)
            if isinstance(given, dict) and isinstance(given.get("id"), str) and isinstance(
                given.get("secret"), str
            ):
                session.update(id=given["id"], secret=given["secret"])
            else:
                connection.set_resume_signaling(None)
            await connection.setRemoteDescription(answer)
    except Exception:
        if made:
            await connection.close()
        raise
    except BaseException:  # cancelled: close without waiting
        if made:
            connection.close()
        raise
    return connection


async def _post(url: str, body: dict[str, Any], token: str | None, *,
                resume: bool = False) -> dict[str, Any]:
    """POST ``body`` as JSON on a new TCP connection (after a network change a pooled one is
    dead); the JSON reply, or :class:`RelayError`."""
    from ..web._connect import RESUME_HEADER

    headers = {"Content-Type": "application/json", **_headers(token)}
    if resume:
        headers[RESUME_HEADER] = "1"
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as client, client.post(
        url, data=json.dumps(body), headers=headers
    ) as resp:
        if resp.status != 200:
            raise RelayError(resp.status, (await resp.text())[:1000])
        reply = await resp.json()
    if not isinstance(reply, dict):
        raise RelayError(502, "the relay's answer is not a JSON object")
    return reply
