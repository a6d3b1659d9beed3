"""The link model of the field lab: plain rules fed ``now`` (seconds) and packet sizes.

No sockets and no loop here: :class:`Direction` decides, for one direction of an emulated link,
whether a packet is dropped and when it leaves the far end. The emulator process
(:mod:`rtcbot.testing.fieldlab._emulator`) wires it to ``AF_PACKET`` sockets.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["PROFILES", "Direction", "LinkParams", "Profile", "profile_from_dict"]

JITTER_TAU = 0.05  # seconds over which the delay's jitter wanders


@dataclass(frozen=True)
class LinkParams:
    """One direction of a link.

    ``rate_bps`` is the capacity in bit/s (``None`` = unlimited); ``delay`` and ``jitter`` are
    the one-way delay and its spread in seconds (within ``delay ± jitter``, wandering over
    tens of milliseconds; packet order is kept); ``loss`` is the probability (0..1) that a
    packet is lost at random; ``queue`` is the drop-tail queue in seconds worth of data at
    ``rate_bps`` (a packet that would wait longer is dropped).
    """

    rate_bps: float | None = None
    delay: float = 0.0
    jitter: float = 0.0
    loss: float = 0.0
    queue: float = 0.5

    def __post_init__(self) -> None:
        if self.rate_bps is not None and not self.rate_bps > 0:
            raise ValueError(f"rate_bps must be positive or None, not {self.rate_bps!r}")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"loss must be within 0..1, not {self.loss!r}")
        for name in ("delay", "jitter", "queue"):
            value = getattr(self, name)
            if not value >= 0.0:
                raise ValueError(f"{name} must be >= 0 seconds, not {value!r}")


@dataclass(frozen=True)
class Profile:
    """A named link: ``up`` is robot to viewer, ``down`` viewer to robot.

    ``cut_after``/``cut_rate_bps``: if set, the emulator cuts both directions' rate to
    ``cut_rate_bps`` that many seconds after the profile is applied (the ``drop`` profile).
    """

    name: str
    up: LinkParams
    down: LinkParams
    cut_after: float | None = None
    cut_rate_bps: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def profile_from_dict(data: dict[str, Any]) -> Profile:
    """The :class:`Profile` that :meth:`Profile.to_dict` described (raises on bad fields)."""
    if not isinstance(data, dict):
        raise TypeError(f"a profile is a dict, not {type(data).__name__}")
    fields = dict(data)
    fields["up"] = LinkParams(**fields["up"])
    fields["down"] = LinkParams(**fields["down"])
    return Profile(**fields)


def _both(name: str, params: LinkParams, **extra: Any) -> Profile:
    return Profile(name, params, params, **extra)


_4G = LinkParams(rate_bps=4_000_000, delay=0.030, jitter=0.005, loss=0.005)

PROFILES: dict[str, Profile] = {
    "lan": _both("lan", LinkParams()),
    "4g": _both("4g", _4G),
    "bad4g": _both("bad4g", LinkParams(rate_bps=1_500_000, delay=0.060, jitter=0.015,
                                       loss=0.03)),
    # 4g, cut to 0.8 Mbit/s mid-run (10 s after it is applied)
    "drop": _both("drop", _4G, cut_after=10.0, cut_rate_bps=800_000),
}


@dataclass
class DirectionStats:
    """What one direction did with the packets offered to it (counts, and bytes forwarded)."""

    offered: int = 0
    forwarded: int = 0
    forwarded_bytes: int = 0
    lost: int = 0  # random loss
    queue_dropped: int = 0  # drop-tail: the queue was full
    outage_dropped: int = 0  # the link was down (an outage)
    peak_queue: float = 0.0  # the longest wait in the queue, seconds


@dataclass
class Direction:
    """One direction of an emulated link: a drop-tail queue in front of a rate limit, random
    loss, then a one-way delay with jitter that never reorders packets. Also an outage window
    during which every packet (offered or still in flight) is dropped.

    Call :meth:`admit` when a packet arrives; it returns the time the packet leaves the far
    end, or ``None`` if it is dropped. Call :meth:`deliverable` at that time (an outage may
    have started in between).
    """

    params: LinkParams
    rng: random.Random = field(default_factory=random.Random)
    stats: DirectionStats = field(default_factory=DirectionStats)
    outage_until: float = 0.0
    outage_from: float = 0.0
    _free_at: float = 0.0  # when the rate limiter finishes sending what it holds
    _last_release: float = 0.0
    _offset: float = 0.0
    _jitter_at: float = 0.0

    def set_params(self, params: LinkParams) -> None:
        self.params = params

    def set_rate(self, rate_bps: float | None) -> None:
        self.params = replace(self.params, rate_bps=rate_bps)

    def start_outage(self, now: float, seconds: float) -> None:
        if not seconds >= 0:
            raise ValueError(f"an outage lasts >= 0 seconds, not {seconds!r}")
        self.outage_from = now
        self.outage_until = max(self.outage_until, now + seconds)

    def in_outage(self, now: float) -> bool:
        return self.outage_from <= now < self.outage_until

    def admit(self, now: float, size: int) -> float | None:
        """The time (same clock as ``now``) this ``size``-byte packet leaves the far end, or
        None if it is dropped here."""
        stats = self.stats
        stats.offered += 1
        if self.in_outage(now):
            stats.outage_dropped += 1
            return None
        p = self.params
        leave = now
        if p.rate_bps is not None:
            start = max(now, self._free_at)
            wait = start - now
            if wait > p.queue:
                stats.queue_dropped += 1
                return None
            stats.peak_queue = max(stats.peak_queue, wait)
            self._free_at = start + size * 8.0 / p.rate_bps
            leave = self._free_at
        if p.loss and self.rng.random() < p.loss:
            stats.lost += 1
            return None
        delay = p.delay + self._jitter(now, p.jitter)
        release = max(leave + max(delay, 0.0), self._last_release)  # order is kept
        self._last_release = release
        return release

    def _jitter(self, now: float, jitter: float) -> float:
        """The delay's current offset within ``±jitter``: a random process that wanders
        (correlated over ``JITTER_TAU``), as a radio link's delay does, so that keeping
        packet order does not push every packet to the top of the range."""
        if not jitter:
            return 0.0
        keep = math.exp(-max(now - self._jitter_at, 0.0) / JITTER_TAU)
        self._jitter_at = now
        sigma = jitter / 2.0
        value = self._offset * keep + math.sqrt(1.0 - keep * keep) * self.rng.gauss(0.0, sigma)
        self._offset = min(max(value, -jitter), jitter)
        return self._offset

    def deliverable(self, now: float, size: int) -> bool:
        """Whether a packet admitted earlier may leave now (not inside an outage)."""
        if self.in_outage(now):
            self.stats.outage_dropped += 1
            return False
        self.stats.forwarded += 1
        self.stats.forwarded_bytes += size
        return True
