"""Two real :class:`~rtcbot.RTCConnection` objects connected over loopback, for tests.

::

    from rtcbot.testing import connected_pair

    async def test_robot_obeys():
        async with connected_pair() as (desktop, robot):
            desktop.put_nowait({"forward": 1})
            assert await robot.get() == {"forward": 1}

Real aiortc peers in this process, with no ICE server (nothing leaves the machine).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ..base._compat import timeout as aio_timeout
from ..connection import RTCConnection

__all__ = ["connect", "connected_pair"]


async def connect(
    offerer: RTCConnection, answerer: RTCConnection, *, timeout: float = 10.0,
    wait_ready: bool = True,
) -> None:
    """Signal ``offerer`` and ``answerer`` to each other in this process (offer, answer) and,
    if ``wait_ready``, wait until both are ready (their default data channels are open).

    Raises ``TimeoutError`` after ``timeout`` seconds. Cancelling it leaves both connections
    half-connected: close them.
    """
    async with aio_timeout(timeout):
        offer = await offerer.getLocalDescription()
        answer = await answerer.getLocalDescription(offer)
        await offerer.setRemoteDescription(answer)
        if wait_ready:
            await asyncio.gather(offerer.onReady(), answerer.onReady())


@contextlib.asynccontextmanager
async def connected_pair(
    offerer: RTCConnection | None = None,
    answerer: RTCConnection | None = None,
    *,
    timeout: float = 10.0,
    wait_ready: bool = True,
    **options: Any,
) -> AsyncIterator[tuple[RTCConnection, RTCConnection]]:
    """``async with connected_pair() as (offerer, answerer):`` two connected RTCConnections.

    Pass your own ``offerer``/``answerer`` to configure them first (data channels, video,
    audio, control timeout); otherwise they are created with ``**options`` (for example
    ``defaultChannelOrdered=False``) and no ICE server. Both are closed on exit, and the exit
    waits (bounded by ``timeout``) until they are.
    """
    if offerer is None:
        offerer = RTCConnection(rtcConfiguration=[], **options)
    if answerer is None:
        answerer = RTCConnection(rtcConfiguration=[], **options)
    try:
        await connect(offerer, answerer, timeout=timeout, wait_ready=wait_ready)
        yield offerer, answerer
    finally:
        closing = [offerer.close(), answerer.close()]
        async with aio_timeout(timeout):
            for c in closing:
                await c
            await offerer
            await answerer


# ---------------------------------------------------------------------------------- echo peer


async def _echo_peer(offer_first: bool, media: bool = False) -> None:
    """A peer in its own process: signalling as JSON lines on stdin/stdout, echoes every
    message of the default channel back (and, with ``media``, the video it receives), prints
    ``{"event": ...}`` lines, ends at stdin EOF."""
    import json
    import sys

    def emit(obj: Any) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    async def readline() -> str:
        return await asyncio.to_thread(sys.stdin.readline)

    conn = RTCConnection(rtcConfiguration=[])
    conn.subscribe(conn.put_nowait)
    if media:
        conn.video.putSubscription(conn.video.subscribe())
    conn.onReady(lambda: emit({"event": "ready"}))
    conn.onClose(lambda: emit({"event": "closed", "error": repr(conn.error)}))
    if offer_first:
        emit(await conn.getLocalDescription())
        await conn.setRemoteDescription(json.loads(await readline()))
    else:
        emit(await conn.getLocalDescription(json.loads(await readline())))
    while await readline():  # keep running until stdin closes
        pass
    await conn.close()


def main(argv: list[str] | None = None) -> None:
    """``python -m rtcbot.testing.connection [--offer] [--media]``: run an echo peer (see
    :func:`_echo_peer`); with ``--offer`` it makes the offer, else it answers one; with
    ``--media`` it also sends back the video it receives."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    asyncio.run(_echo_peer("--offer" in args, "--media" in args))


if __name__ == "__main__":
    main()
