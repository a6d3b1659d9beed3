"""Commands that expire: the rules of age-limited data channels, as plain classes and
functions (no loop, no aiortc; times in milliseconds on a clock the caller passes).

A control channel made with ``max_age`` (Python ``addDataChannel(name, max_age=0.3)``, JS
``addDataChannel(name, {maxAge: 0.3})``) carries, with each message, the time it was sent on
the sender's heartbeat clock (Python: the event loop's clock; browser: ``performance.now()``).
The receiver turns it into its own clock with the clock offset that the heartbeat measures
(:class:`ClockOffset`) and drops, and counts, every message older than the limit
(:class:`AgeFilter`): after a network gap a robot never applies a setpoint that an operator
sent seconds ago.

Wire format (rtcbot's browser library speaks the same):

* The channel's ``protocol`` is ``rtcbot;max_age=<seconds>`` (:func:`make_protocol`), so the
  peer's ``onDataChannel`` gets the channel with its limit. A peer's protocol string is
  hostile input: :func:`parse_protocol` accepts only that exact form, with a limit in
  (0, :data:`MAX_AGE_LIMIT`]; any other string that starts with ``rtcbot`` is refused.
* A text message is the JSON array ``[<sent ms>, <the JSON message>]``; a binary message is
  8 bytes (the sent time, a big-endian IEEE 754 double, ms) then the payload
  (:func:`stamp`, :func:`unstamp`). A message without a valid stamp is dropped and counted.
* The heartbeat's pong carries the answering side's clock: ``{"pong": <ping>, "t": <ms>}``.
  With the ping's send time ``p`` and the pong's arrival ``a`` (our clock), the peer's clock
  minus ours is ``t - (p + a) / 2``, within half the round trip; the sample of the smallest
  round trip among the recent ones is used.

Before the offset is known (the first pong has not come back yet), received messages are
held, at most :data:`HOLD_MESSAGES` of them and never longer than the age limit, and judged as
soon as it is known: nothing is applied without its age checked, and a message held for longer
than the limit is necessarily too old and is dropped.
"""

from __future__ import annotations

import collections
import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HOLD_MESSAGES",
    "MAX_AGE_LIMIT",
    "AgeFilter",
    "AgeStatistics",
    "ClockOffset",
    "check_max_age",
    "make_protocol",
    "parse_protocol",
    "stamp",
    "unstamp",
]

#: The largest age limit, in seconds (an hour: beyond that it is not a control channel).
MAX_AGE_LIMIT = 3600.0
#: Messages held while the clock offset is not known yet.
HOLD_MESSAGES = 64
#: Protocol strings longer than this are refused before any parsing.
MAX_PROTOCOL_LENGTH = 64
#: Pong samples among which the smallest round trip gives the offset.
OFFSET_SAMPLES = 16

_PROTOCOL = re.compile(r"rtcbot;max_age=([0-9]{1,4}(?:\.[0-9]{1,6})?)")
_STAMP = struct.Struct(">d")


def check_max_age(value: Any, name: str = "max_age") -> float:
    """``value`` as seconds, checked: a number in (0, :data:`MAX_AGE_LIMIT`]. Raises
    ``TypeError``/``ValueError`` naming ``name`` and the value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or not 0 < value <= MAX_AGE_LIMIT:
        raise ValueError(
            f"{name} must be more than 0 and at most {MAX_AGE_LIMIT:g} seconds, got {value!r}"
        )
    return float(value)


def make_protocol(max_age: float) -> str:
    """The data channel ``protocol`` that announces ``max_age`` (seconds, checked) to the
    peer: ``rtcbot;max_age=0.3``. Precision: a microsecond."""
    seconds = check_max_age(max_age)
    text = f"{seconds:.6f}".rstrip("0").rstrip(".")
    if text in ("", "0"):
        raise ValueError(f"max_age must be at least a microsecond, got {max_age!r}")
    return f"rtcbot;max_age={text}"


def parse_protocol(protocol: Any) -> float | None:
    """The age limit (seconds) that a peer's channel ``protocol`` announces; None for a channel
    without one (an empty or foreign protocol, one that does not start with ``rtcbot``).
    Raises ``ValueError`` (naming it, shortened) for a string that starts with ``rtcbot`` but is
    not exactly ``rtcbot;max_age=<seconds>`` with seconds in (0, :data:`MAX_AGE_LIMIT`]."""
    if not isinstance(protocol, str):
        raise ValueError(f"a data channel protocol must be a str, got {type(protocol).__name__}")
    if not protocol.startswith("rtcbot"):
        return None
    shown = protocol[:MAX_PROTOCOL_LENGTH] + ("..." if len(protocol) > MAX_PROTOCOL_LENGTH else "")
    if len(protocol) > MAX_PROTOCOL_LENGTH:
        raise ValueError(f"the data channel protocol {shown!r} is too long")
    match = _PROTOCOL.fullmatch(protocol)
    if match is None:
        raise ValueError(
            f"the data channel protocol {shown!r} is not 'rtcbot;max_age=<seconds>'"
        )
    seconds = float(match.group(1))
    if not 0 < seconds <= MAX_AGE_LIMIT:
        raise ValueError(
            f"the data channel protocol {shown!r} has an age limit outside (0, "
            f"{MAX_AGE_LIMIT:g}] s"
        )
    return seconds


def stamp(payload: str | bytes, sent_ms: float) -> str | bytes:
    """``payload`` (a JSON text or a binary message, as encoded by the message rule) with its
    send time ``sent_ms`` (the sender's heartbeat clock, milliseconds)."""
    if isinstance(payload, str):
        return f"[{float(sent_ms)!r},{payload}]"
    return _STAMP.pack(float(sent_ms)) + payload


def unstamp(data: Any) -> tuple[float, Any] | None:
    """``(sent_ms, message)`` from a received stamped message (the message JSON-decoded for
    text, ``bytes`` for binary); None when ``data`` carries no valid stamp."""
    if isinstance(data, str):
        try:
            value = json.loads(data)
        except ValueError:
            return None
        if not (isinstance(value, list) and len(value) == 2):
            return None
        sent = value[0]
        if isinstance(sent, bool) or not isinstance(sent, (int, float)):
            return None
        message = value[1]
    elif isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) < _STAMP.size:
            return None
        (sent,) = _STAMP.unpack_from(data)
        message = bytes(data[_STAMP.size:])
    else:
        return None
    if not math.isfinite(sent):
        return None
    return float(sent), message


class ClockOffset:
    """The peer's heartbeat clock minus ours, in milliseconds, from ping/pong samples.

    :meth:`sample` takes one pong: when our ping left (``ping_ms``), when its pong arrived
    (``now_ms``), both on our clock, and the peer's clock in the pong (``peer_ms``). The offset
    is that of the sample with the smallest round trip among the last :data:`OFFSET_SAMPLES`
    (its error is at most half that round trip)."""

    def __init__(self, samples: int = OFFSET_SAMPLES) -> None:
        self._samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=samples)
        self._best: tuple[float, float] | None = None

    def sample(self, ping_ms: float, now_ms: float, peer_ms: Any) -> None:
        if isinstance(peer_ms, bool) or not isinstance(peer_ms, (int, float)):
            return
        rtt = now_ms - ping_ms
        if not (math.isfinite(peer_ms) and 0 <= rtt < 600_000):
            return
        self._samples.append((rtt, peer_ms - (ping_ms + now_ms) / 2.0))
        self._best = min(self._samples)

    def reset(self) -> None:
        """Forget the samples (the peer may be another process now)."""
        self._samples.clear()
        self._best = None

    @property
    def offset_ms(self) -> float | None:
        """The peer's clock minus ours (ms), or None before the first sample."""
        return None if self._best is None else self._best[1]

    @property
    def error_ms(self) -> float | None:
        """At most how far :attr:`offset_ms` may be off (half the round trip used), or None."""
        return None if self._best is None else self._best[0] / 2.0


@dataclass(frozen=True)
class AgeStatistics:
    """What an age-limited channel did with what it received.

    * ``max_age`` -- the limit, seconds.
    * ``expired`` -- messages dropped because they were older than the limit (including those
      held before the clock offset was known for longer than the limit).
    * ``unstamped`` -- messages dropped because they carried no valid send time.
    * ``held`` -- messages waiting for the clock offset now.
    * ``age_ms_max`` -- the oldest age of a message delivered, ms (None before the first).
    """

    max_age: float
    expired: int
    unstamped: int
    held: int
    age_ms_max: float | None


class AgeFilter:
    """The receive rule of one age-limited channel: which messages to deliver, when.

    :meth:`receive` takes each message as it arrives (the raw payload, ``now_ms`` on our
    clock, the current clock offset or None) and returns the messages to deliver now (zero,
    one, or those held until the offset became known); :meth:`offset_known` is the same when
    only the offset arrived."""

    def __init__(self, max_age: float, hold: int = HOLD_MESSAGES) -> None:
        self.max_age = check_max_age(max_age)
        self._limit_ms = self.max_age * 1000.0
        self._held: collections.deque[tuple[float, float, Any]] = collections.deque()
        self._hold = hold
        self.expired = 0
        self.unstamped = 0
        self._age_max: float | None = None

    def receive(self, data: Any, now_ms: float, offset_ms: float | None) -> list[Any]:
        unpacked = unstamp(data)
        if unpacked is None:
            self.unstamped += 1
            return []
        sent_ms, message = unpacked
        if offset_ms is None:
            self._purge(now_ms)
            if len(self._held) >= self._hold:
                self._held.popleft()
                self.expired += 1
            self._held.append((now_ms, sent_ms, message))
            return []
        out = self.offset_known(now_ms, offset_ms) if self._held else []
        if self._fresh(sent_ms, now_ms, offset_ms):
            out.append(message)
        return out

    def offset_known(self, now_ms: float, offset_ms: float) -> list[Any]:
        """Judge the held messages now that the offset is known; return those to deliver."""
        self._purge(now_ms)
        held, self._held = self._held, collections.deque()
        return [m for _, sent, m in held if self._fresh(sent, now_ms, offset_ms)]

    def _purge(self, now_ms: float) -> None:
        # held longer than the limit: whatever the offset, too old
        held = self._held
        while held and now_ms - held[0][0] > self._limit_ms:
            held.popleft()
            self.expired += 1

    def _fresh(self, sent_ms: float, now_ms: float, offset_ms: float) -> bool:
        age = now_ms - (sent_ms - offset_ms)
        if age > self._limit_ms:
            self.expired += 1
            return False
        if self._age_max is None or age > self._age_max:
            self._age_max = age
        return True

    def drop_held(self) -> int:
        """Drop what is held (the channel closed); returns how many."""
        n = len(self._held)
        self._held.clear()
        self.expired += n
        return n

    def statistics(self) -> AgeStatistics:
        return AgeStatistics(
            max_age=self.max_age,
            expired=self.expired,
            unstamped=self.unstamped,
            held=len(self._held),
            age_ms_max=self._age_max,
        )
