"""Helpers for testing robots and rtcbot itself: real implementations, never mocks.

* :func:`check_producer` / :func:`check_consumer` -- a conformance kit asserting the
  producer/consumer contract once, for any device, connection stream or bridge.
* :func:`connected_pair` -- two :class:`~rtcbot.RTCConnection` objects connected over loopback
  (imported lazily: it needs aiortc).
"""

from __future__ import annotations

from typing import Any

from .conformance import check_consumer, check_producer

__all__ = ["check_consumer", "check_producer", "connected_pair"]


def __getattr__(name: str) -> Any:
    if name == "connected_pair":
        from .connection import connected_pair

        return connected_pair
    raise AttributeError(f"module 'rtcbot.testing' has no attribute {name!r}")
