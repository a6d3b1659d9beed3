"""rtcbot's exception tree.

Every error rtcbot raises on purpose derives from :class:`RTCBotError`. Errors that come from a
library rtcbot wraps (aiortc, OpenCV, pyserial...) are chained as ``__cause__``.
"""

from __future__ import annotations

import asyncio

__all__ = [
    "DeviceError",
    "RTCBotError",
    "SubscriptionClosed",
    "SubscriptionFull",
    "WorkerError",
]


class RTCBotError(Exception):
    """Root of every exception that rtcbot raises on purpose."""


class SubscriptionClosed(RTCBotError):
    """The normal end of a stream.

    Raised by ``get()`` of a subscription, producer or consumer once it is closed and holds no
    more data, and by ``put_nowait()`` of an object that is already closed. Closed is not
    broken: a reader treats it as end-of-stream.
    """


class SubscriptionFull(RTCBotError, asyncio.QueueFull):
    """A bounded buffer is full and its policy is to refuse rather than drop.

    Raised by ``put_nowait()`` at the call site; nothing that was already buffered is lost,
    and the next ``put_nowait()`` after the reader caught up succeeds.
    """


class WorkerError(RTCBotError):
    """A worker (thread or child process) failed with an error that could not be sent back
    as-is (for example an exception that cannot be pickled). The message carries its repr and
    traceback text."""


class DeviceError(RTCBotError):
    """A device (camera, display, sound card, serial port, stream) cannot be opened or stopped
    working.

    Reaches the device's ``onError`` (and closes it); the library's own error, if any, is the
    ``__cause__``."""
