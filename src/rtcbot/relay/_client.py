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
            offer = await connection.getLocalDescription()
            async with aiohttp.ClientSession() as session, session.post(
                f"{base}/robots/{quote(name)}/connect",
                data=json.dumps(offer),
                headers={"Content-Type": "application/json", **_headers(token)},
            ) as resp:
                if resp.status != 200:
                    raise RelayError(resp.status, await resp.text())
                answer = await resp.json()
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
