"""The only places where rtcbot reaches into aiortc's private SCTP internals (data channels).

aiortc (1.9 to 1.16) processes each SACK in time proportional to the chunks outstanding, and
sends one packet per chunk: a sender that hands it thousands of small messages at once makes
its congestion window grow to hundreds of chunks, overflows the peer's socket buffer, and pays
for retransmissions and long SACK scans (throughput falls five-fold). Its public
``bufferedAmount`` only counts messages not yet handed to SCTP, so it cannot tell how many
chunks are in flight. :class:`SctpPacer` reads that count from ``RTCSctpTransport`` and calls
back after every SACK, so :class:`~rtcbot.connection.DataChannel` can keep the outstanding
queue small and feed it as acknowledgements come back.

:func:`sctp_pacer` checks that the internals look as expected and returns None (warning once)
if they do not; data channels then pace on the public ``bufferedAmount`` instead.
``tests/test_datachannel_pacing.py`` fails when an aiortc upgrade changes them.
"""

from __future__ import annotations

import collections
import inspect
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["SctpPacer", "sctp_pacer"]

_log = logging.getLogger("rtcbot.connection")
_ATTR = "_rtcbot_pacer"
_QUEUES = ("_sent_queue", "_outbound_queue", "_data_channel_queue")
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        _log.warning(message)


class SctpPacer:
    """What rtcbot reads from one aiortc ``RTCSctpTransport`` (shared by every data channel of
    a connection): the number of message chunks it holds (sent and not acknowledged, waiting
    for the congestion window, or waiting to be split into chunks), and a callback after each
    SACK it processes."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._sent: collections.deque[Any] = transport._sent_queue
        self._outbound: collections.deque[Any] = transport._outbound_queue
        self._waiting: collections.deque[Any] = transport._data_channel_queue
        self._listeners: list[Callable[[], None]] = []

    def outstanding(self) -> int:
        """Chunks (and not yet chunked messages) that the transport holds."""
        return len(self._sent) + len(self._outbound) + len(self._waiting)

    def remote_max_message_size(self) -> int:
        """The largest message in bytes the peer takes (0: no limit or not known)."""
        size = getattr(self._transport, "_remote_max_message_size", 0)
        return size if isinstance(size, int) else 0

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (on the loop, no argument) after every SACK from now on."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        """Stop calling ``listener``; no error if it was not added."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _acknowledged(self) -> None:
        listeners = self._listeners
        if len(listeners) > 1:  # round robin: no channel's backlog starves another's
            listeners.append(listeners.pop(0))
        for listener in tuple(listeners):
            try:
                listener()
            except Exception:  # a listener's bug must not break the SCTP association
                _log.exception("data channel pacing callback %r raised", listener)


def sctp_pacer(transport: Any) -> SctpPacer | None:
    """The :class:`SctpPacer` of ``transport`` (an aiortc ``RTCSctpTransport``, the
    ``transport`` of an ``RTCDataChannel``), installing its SACK hook on first use. Returns None
    (warning once) if this aiortc version does not keep the queues and ``_receive_sack_chunk``
    as expected."""
    pacer = getattr(transport, _ATTR, None)
    if isinstance(pacer, SctpPacer):
        return pacer
    original = getattr(transport, "_receive_sack_chunk", None)
    if (
        original is None
        or not inspect.iscoroutinefunction(original)
        or not all(isinstance(getattr(transport, name, None), collections.deque)
                   for name in _QUEUES)
    ):
        _warn_once(
            "sctp",
            "this aiortc version does not keep RTCSctpTransport's queues and "
            "_receive_sack_chunk as expected: data channels pace on bufferedAmount only "
            "(bursts of small messages are slower)",
        )
        return None
    pacer = SctpPacer(transport)

    async def receive_sack_chunk(chunk: Any) -> None:
        await original(chunk)
        pacer._acknowledged()

    setattr(transport, _ATTR, pacer)
    transport._receive_sack_chunk = receive_sack_chunk
    return pacer
