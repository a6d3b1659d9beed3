"""Heartbeat and control timeout: the rules as plain classes that take ``now`` (seconds, any
monotonic clock) and return decisions. The connection wires them to loop timers
(``loop.call_at``); their tests need no loop.

Heartbeat wire protocol (rtcbot's browser library speaks the same): a negotiated data channel
labelled ``"rtcbot-heartbeat"``, id 1000, unordered, ``maxRetransmits=0``, created by both sides
before the offer/answer. Each side sends the text ``{"ping": <its monotonic clock in ms>}`` every
:data:`PING_INTERVAL` seconds and answers each ping at once with ``{"pong": <the same number>}``;
the round-trip time is ``now - pong``. Any message proves the peer alive. Once the first
heartbeat message has arrived, :data:`PEER_TIMEOUT` seconds without any message means the peer
vanished. A peer that never sends one (RTCBot 0.2.5's browser library) is not held to it.

Two optional fields: a ping may carry ``"resume": true`` (its sender will re-establish a lost
link through its signalling path, so the other side waits for it instead of closing), and
``{"bye": true}`` says the sender is closing the session on purpose (not a lost link).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HEARTBEAT_CHANNEL_ID",
    "HEARTBEAT_LABEL",
    "PEER_TIMEOUT",
    "PING_INTERVAL",
    "ControlTimeout",
    "Heartbeat",
    "HeartbeatStatistics",
]

HEARTBEAT_LABEL = "rtcbot-heartbeat"
HEARTBEAT_CHANNEL_ID = 1000
#: Seconds between two pings.
PING_INTERVAL = 0.5
#: Seconds of silence after which a peer that sent heartbeats is considered gone.
PEER_TIMEOUT = 2.5


@dataclass(frozen=True)
class HeartbeatStatistics:
    """Heartbeat numbers of a connection (times in milliseconds; None until measured).

    * ``rtt_ms`` -- the latest round-trip time of a ping.
    * ``rtt_min_ms`` -- the smallest round-trip time seen.
    * ``rtt_avg_ms`` -- exponentially weighted average (weight 1/8 for the newest sample).
    * ``pings_sent``, ``pongs_received`` -- counters.
    * ``peer_speaks_heartbeat`` -- True once any heartbeat message arrived from the peer (only
      then is it held to the timeout).
    """

    rtt_ms: float | None
    rtt_min_ms: float | None
    rtt_avg_ms: float | None
    pings_sent: int
    pongs_received: int
    peer_speaks_heartbeat: bool


def _positive_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    return float(value)


class Heartbeat:
    """The heartbeat state of one side of a connection.

    Use: :meth:`start` when the heartbeat channel opens; send :meth:`make_ping` whenever
    :meth:`ping_due`; pass every received heartbeat text to :meth:`receive` (send its return
    value back, if any); call :meth:`heard` for any other proof of life (a message on another
    channel); :meth:`expired` says the peer vanished; wake up at :meth:`next_wakeup`.
    """

    def __init__(self, interval: float = PING_INTERVAL, timeout: float = PEER_TIMEOUT) -> None:
        self.interval = _positive_seconds("interval", interval)
        self.timeout = _positive_seconds("timeout", timeout)
        self._next_ping: float | None = None
        self._last_heard: float | None = None
        self._rtt: float | None = None
        self._rtt_min: float | None = None
        self._rtt_avg: float | None = None
        self._pings = 0
        self._pongs = 0
        #: Put ``"resume": true`` in our pings (we will resume a lost link).
        self.advertise_resume = False
        #: True once a ping of the peer said it resumes lost links.
        self.peer_resumes = False
        #: True once the peer said ``bye`` (it closes the session on purpose).
        self.peer_said_bye = False

    def reset(self) -> None:
        """A new transport: forget the timing of the old one (statistics are kept); the peer
        is held to the timeout again once it speaks on the new one."""
        self._next_ping = None
        self._last_heard = None

    def start(self, now: float) -> None:
        """The channel is open: the first ping is due at once."""
        if self._next_ping is None:
            self._next_ping = now

    @property
    def started(self) -> bool:
        return self._next_ping is not None

    def ping_due(self, now: float) -> bool:
        return self._next_ping is not None and now >= self._next_ping

    def make_ping(self, now: float) -> str:
        """The ping to send now (schedules the next one)."""
        self._pings += 1
        next_ping = (self._next_ping or now) + self.interval
        if next_ping <= now:  # we were late (a busy loop): do not send a burst
            next_ping = now + self.interval
        self._next_ping = next_ping
        if self.advertise_resume:
            return f'{{"ping":{now * 1000.0!r},"resume":true}}'
        return f'{{"ping":{now * 1000.0!r}}}'

    @staticmethod
    def make_bye() -> str:
        """The message that says we close the session on purpose."""
        return '{"bye":true}'

    def heard(self, now: float) -> None:
        """Proof that the peer is alive at ``now`` (only counts once it speaks heartbeat)."""
        if self._last_heard is not None and now > self._last_heard:
            self._last_heard = now

    def receive(self, text: Any, now: float) -> str | None:
        """Handle one heartbeat message; return the reply to send (a pong) or None."""
        if self._last_heard is None or now > self._last_heard:
            self._last_heard = now
        if not isinstance(text, str):
            return None
        try:
            message = json.loads(text)
        except ValueError:
            return None
        if not isinstance(message, dict):
            return None
        if message.get("bye") is True:
            self.peer_said_bye = True
            return None
        ping = message.get("ping")
        if isinstance(ping, (int, float)) and not isinstance(ping, bool):
            if message.get("resume") is True:
                self.peer_resumes = True
            return json.dumps({"pong": ping}, separators=(",", ":"))
        pong = message.get("pong")
        if isinstance(pong, (int, float)) and not isinstance(pong, bool):
            rtt = now * 1000.0 - pong
            if 0 <= rtt < 600_000:  # our own clock: anything else is not our ping
                self._pongs += 1
                self._rtt = rtt
                self._rtt_min = rtt if self._rtt_min is None else min(self._rtt_min, rtt)
                self._rtt_avg = rtt if self._rtt_avg is None else self._rtt_avg + (
                    rtt - self._rtt_avg
                ) / 8
        return None

    @property
    def deadline(self) -> float | None:
        """When the peer counts as vanished if nothing more arrives (None: not held to it)."""
        if self._last_heard is None:
            return None
        return self._last_heard + self.timeout

    def expired(self, now: float) -> bool:
        deadline = self.deadline
        return deadline is not None and now >= deadline

    def silence(self, now: float) -> float | None:
        """Seconds since the peer was last heard (None if it never sent a heartbeat)."""
        return None if self._last_heard is None else now - self._last_heard

    def next_wakeup(self) -> float | None:
        """The next time something is due (a ping or the deadline), or None."""
        times = [t for t in (self._next_ping, self.deadline) if t is not None]
        return min(times) if times else None

    def statistics(self) -> HeartbeatStatistics:
        return HeartbeatStatistics(
            rtt_ms=self._rtt,
            rtt_min_ms=self._rtt_min,
            rtt_avg_ms=self._rtt_avg,
            pings_sent=self._pings,
            pongs_received=self._pongs,
            peer_speaks_heartbeat=self._last_heard is not None,
        )


class ControlTimeout:
    """The dead-man rule: fire once when no control message arrived for ``seconds``.

    :meth:`arm` starts the clock (the channel opened); each :meth:`feed` (a message arrived)
    restarts it and re-arms a timeout that already fired; :meth:`poll` returns True exactly once
    per silence; :meth:`disarm` returns whether a final firing is due when the channel closes
    (True unless it already fired for the current silence).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = _positive_seconds("seconds", seconds)
        self._deadline: float | None = None
        self._armed = False
        self.fired = 0

    @property
    def armed(self) -> bool:
        """True while a firing is pending (the clock runs and it has not fired yet)."""
        return self._armed

    @property
    def deadline(self) -> float | None:
        """When it fires if no message arrives (None when not armed)."""
        return self._deadline if self._armed else None

    def arm(self, now: float) -> None:
        """Start the clock (if it is not running already)."""
        if not self._armed and self._deadline is None:
            self._armed = True
            self._deadline = now + self.seconds

    def feed(self, now: float) -> None:
        """A control message arrived at ``now``."""
        self._armed = True
        self._deadline = now + self.seconds

    def poll(self, now: float) -> bool:
        """True if the timeout fires now (then it waits for the next :meth:`feed`)."""
        if self._armed and self._deadline is not None and now >= self._deadline:
            self._armed = False
            self.fired += 1
            return True
        return False

    def disarm(self) -> bool:
        """Stop for good (the channel closed); True if the stop action must run one last time."""
        due = self._armed
        self._armed = False
        if due:
            self.fired += 1
        return due
