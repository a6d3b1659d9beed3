"""The safety gate's rules as a plain class: commands, operator actions, latency samples and
``now`` (seconds, any monotonic clock) go in; decisions (the setpoint for the motors, a
refusal with its reason) and events come out. No event loop, no I/O: the asyncio gate in
``_gate.py`` wires it to connections and timers, and its tests run in microseconds.

Order of the checks for one command (each refusal is counted under its kind):

1. shape (``malformed``): an object of at most ``max_fields`` fields, every field a known axis
   (or a meta field such as ``type``), every axis value a finite number;
2. sender (``not driver``): only the current driver (or the robot's own program) commands;
3. age (``too old``): a command whose age is known and exceeds ``max_age`` is dropped;
4. E-stop (``estop``): while latched, nothing moves;
then the values are clamped into each axis's range (counted per axis), scaled down when the
link is slow, stopped when it is too slow, and ramped at each axis's rate limit.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "LOCAL",
    "Axis",
    "Decision",
    "LatencyLimits",
    "SafetyRules",
]

#: The client id of the robot's own program (``gate.put_nowait``): always allowed to command,
#: never held to the operator rules, still subject to the E-stop, limits and slow-down.
LOCAL = "local"

#: Fields of a command that are not axes (ignored by the gate).
META_FIELDS = frozenset({"type", "source", "t", "sent", "seq", "age_ms"})

#: Longest time step a rate-limited ramp takes at once: a ramp that was not ticked for a while
#: still grows at its rate, it does not jump.
MAX_RAMP_STEP = 0.05


def _number(name: str, value: Any, *, positive: bool = False, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Axis:
    """One controlled quantity (a wheel speed, a steering rate, an arm joint velocity).

    * ``name`` -- the field of a command that sets it.
    * ``min``, ``max`` -- the allowed range (a value outside is clamped and counted); 0, the
      stop value, must lie inside.
    * ``rate`` -- the most its magnitude may grow per second (units/s, an acceleration limit),
      or None for no limit. Slowing towards 0 is never delayed: a stop is a stop.
    * ``scaled`` -- True if the latency slow-down scales it (speeds); False for axes that must
      not shrink (a gripper, a camera pan).
    """

    name: str
    min: float = -1.0
    max: float = 1.0
    rate: float | None = None
    scaled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or self.name in META_FIELDS:
            raise ValueError(f"Axis name must be a non-empty string that is not a meta field "
                             f"({sorted(META_FIELDS)}), got {self.name!r}")
        lo = _number(f"Axis {self.name!r} min", self.min)
        hi = _number(f"Axis {self.name!r} max", self.max)
        if not lo <= 0.0 <= hi:
            raise ValueError(f"Axis {self.name!r}: min <= 0 <= max is needed (0 is the stop "
                             f"value), got min={lo!r} max={hi!r}")
        _number(f"Axis {self.name!r} rate", self.rate, positive=True, allow_none=True)


@dataclass(frozen=True)
class LatencyLimits:
    """When the link is too slow to drive at full speed (milliseconds).

    The gate's latency is the largest of its fresh samples: the glass-to-glass video latency the
    page measures, the round-trip time, and the age of the last command. At or above
    ``slow_ms`` scaled axes are multiplied by ``slow_scale``; at or above ``stop_ms`` the robot
    stops (not latched: it drives again when the link recovers). Going back down needs the
    latency ``hysteresis_ms`` below the threshold, so a latency hovering at a threshold does not
    make the robot jerk. A sample older than ``sample_lifetime`` seconds is forgotten.
    """

    slow_ms: float = 300.0
    stop_ms: float = 800.0
    hysteresis_ms: float = 50.0
    slow_scale: float = 0.5
    sample_lifetime: float = 3.0

    def __post_init__(self) -> None:
        slow = _number("slow_ms", self.slow_ms, positive=True)
        stop = _number("stop_ms", self.stop_ms, positive=True)
        if stop < slow:
            raise ValueError(f"stop_ms ({stop!r}) must be at least slow_ms ({slow!r})")
        hyst = _number("hysteresis_ms", self.hysteresis_ms)
        if not 0 <= hyst < slow:
            raise ValueError(f"hysteresis_ms must be in [0, slow_ms), got {hyst!r}")
        scale = _number("slow_scale", self.slow_scale)
        if not 0 < scale <= 1:
            raise ValueError(f"slow_scale must be in (0, 1], got {scale!r}")
        _number("sample_lifetime", self.sample_lifetime, positive=True)


@dataclass(frozen=True)
class Decision:
    """What the gate did with one command.

    ``output``: the setpoint to send to the motors now (axis name -> value), or None when
    nothing is sent (the command was refused). ``refused``: the reason, or None.
    ``clamped``: the axes whose value was outside its range.
    """

    output: dict[str, float] | None
    refused: str | None = None
    kind: str | None = None
    clamped: tuple[str, ...] = ()


@dataclass
class _Request:
    client: Any
    until: float


@dataclass
class _Counters:
    accepted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    clamped: dict[str, int] = field(default_factory=dict)
    expired: int = 0
    estops: int = 0


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SafetyRules:
    """The whole state of a safety gate (see the module docstring for the checks).

    Operators are client ids (any hashable: the gate uses small integers) in the order they
    joined: the first drives, the others watch. Every change appends an event (a dict with an
    ``"event"`` key) that :meth:`events` hands out once. Call :meth:`poll` at
    :meth:`next_wakeup` for time-driven changes (a held command expiring, a ramp, a hand-over
    request timing out, a stale latency sample).

    ``hold_time``: seconds a command stays in force without being refreshed (the heartbeat of
    intent: a page repeats its state while a key or stick is held). ``max_age``: seconds after
    which a command whose age is known is refused. ``handover_timeout``: seconds a viewer's
    request for control waits for the driver's answer. ``admin_token``: a secret that lets a
    client take control at once (None: nobody can). ``max_fields``: the most fields a command
    may have.
    """

    def __init__(
        self,
        axes: Iterable[Axis | str],
        *,
        hold_time: float = 0.5,
        max_age: float = 0.5,
        latency: LatencyLimits | None = None,
        handover_timeout: float = 10.0,
        admin_token: str | None = None,
        max_fields: int = 16,
    ) -> None:
        self.axes: dict[str, Axis] = {}
        for axis in axes:
            if isinstance(axis, str):
                axis = Axis(axis)
            if not isinstance(axis, Axis):
                raise TypeError(f"axes must be Axis objects or names, got {axis!r}")
            if axis.name in self.axes:
                raise ValueError(f"axis {axis.name!r} is given twice")
            self.axes[axis.name] = axis
        if not self.axes:
            raise ValueError("a safety gate needs at least one axis")
        self.hold_time = _number("hold_time", hold_time, positive=True)
        self.max_age = _number("max_age", max_age, positive=True)
        self.latency = latency if latency is not None else LatencyLimits()
        if not isinstance(self.latency, LatencyLimits):
            raise TypeError(f"latency must be a LatencyLimits, got {latency!r}")
        self.handover_timeout = _number("handover_timeout", handover_timeout, positive=True)
        if admin_token is not None and (not isinstance(admin_token, str) or not admin_token):
            raise ValueError("admin_token must be a non-empty string or None")
        self._admin_token = admin_token
        if isinstance(max_fields, bool) or not isinstance(max_fields, int) or max_fields < 1:
            raise ValueError(f"max_fields must be a positive integer, got {max_fields!r}")
        self.max_fields = max_fields

        self._zero = {name: 0.0 for name in self.axes}
        self._target = dict(self._zero)  # the clamped setpoint of the last command
        self._held_until: float | None = None
        self._output = dict(self._zero)
        self._output_at: float | None = None
        self._estop: str | None = None
        self._clients: list[Any] = []
        self._driver: Any = None
        self._request: _Request | None = None
        self._samples: dict[str, tuple[float, float]] = {}  # source -> (ms, at)
        self._mode = "normal"
        self._mode_latency: float | None = None
        self._mode_cause: str | None = None
        self._counters = _Counters()
        self._last_refusal: str | None = None
        self._events: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ reading the state

    @property
    def output(self) -> dict[str, float]:
        """The setpoint the motors have now (a copy)."""
        return dict(self._output)

    @property
    def latched(self) -> bool:
        """True while the E-stop is latched."""
        return self._estop is not None

    @property
    def estop_reason(self) -> str | None:
        return self._estop

    @property
    def driver(self) -> Any:
        """The client id of the operator who drives, or None."""
        return self._driver

    @property
    def clients(self) -> tuple[Any, ...]:
        return tuple(self._clients)

    @property
    def mode(self) -> str:
        """``"normal"``, ``"slow"`` (scaled down) or ``"stopped"`` (the link is too slow)."""
        return self._mode

    @property
    def scale(self) -> float:
        return {"normal": 1.0, "slow": self.latency.slow_scale, "stopped": 0.0}[self._mode]

    def snapshot(self, now: float) -> dict[str, Any]:
        """Everything a page shows, as JSON-ready values (times in ms)."""
        c = self._counters
        request = None
        if self._request is not None:
            request = {"from": self._request.client,
                       "expires_in_ms": max(0.0, (self._request.until - now) * 1000)}
        return {
            "estop": self._estop is not None,
            "estop_reason": self._estop,
            "driver": self._driver,
            "request": request,
            "mode": self._mode,
            "scale": self.scale,
            "latency_ms": self._mode_latency,
            "latency_cause": self._mode_cause,
            "limits": {name: [a.min, a.max] for name, a in self.axes.items()},
            "limits_hit": dict(c.clamped),
            "refused": dict(c.refused),
            "last_refusal": self._last_refusal,
            "accepted": c.accepted,
            "expired": c.expired,
            "output": dict(self._output),
        }

    def events(self) -> list[dict[str, Any]]:
        """The events since the last call (each once)."""
        events, self._events = self._events, []
        return events

    def _emit(self, kind: str, **fields: Any) -> None:
        self._events.append({"event": kind, **fields})

    # ------------------------------------------------------------------ commands

    def _refuse(self, kind: str, reason: str) -> Decision:
        refused = self._counters.refused
        refused[kind] = refused.get(kind, 0) + 1
        self._last_refusal = reason
        return Decision(None, reason, kind)

    def command(self, client: Any, message: Any, now: float, age: float | None = None) -> Decision:
        """A command from ``client`` (its full state: an axis missing from it is 0).

        ``age``: seconds since it was sent, if known (clock-offset corrected by the caller).
        Returns the decision; the output, if any, must go to the motors.
        """
        if not isinstance(message, dict):
            return self._refuse("malformed", f"a command must be an object, got {_short(message)}")
        if len(message) > self.max_fields:
            return self._refuse("malformed", f"too many fields ({len(message)} > "
                                             f"{self.max_fields})")
        values: dict[str, float] = {}
        axes = self.axes
        for key, value in message.items():
            axis = axes.get(key) if isinstance(key, str) else None
            if axis is None:
                if key in META_FIELDS:
                    continue
                return self._refuse("malformed", f"unknown axis {_short(key)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return self._refuse("malformed", f"axis {key!r} is not a number: {_short(value)}")
            if not math.isfinite(value):
                return self._refuse("malformed", f"axis {key!r} is not finite: {value!r}")
            values[key] = value
        if client != LOCAL and client != self._driver:
            return self._refuse("not driver", "only the driver's commands move the robot")
        if age is not None:
            if isinstance(age, bool) or not isinstance(age, (int, float)) or math.isnan(age):
                return self._refuse("malformed", f"the command's age is not a number: {age!r}")
            if age > self.max_age:
                return self._refuse("too old", f"command {age * 1000:.0f} ms old (limit "
                                               f"{self.max_age * 1000:.0f} ms)")
            self._sample("command age", max(0.0, age) * 1000, now)
        if self._estop is not None:
            return self._refuse("estop", f"E-stop latched: {self._estop}")
        clamped = []
        target = dict(self._zero)
        counts = self._counters.clamped
        for key, value in values.items():
            axis = axes[key]
            if value < axis.min or value > axis.max:
                value = axis.min if value < axis.min else axis.max
                clamped.append(key)
                counts[key] = counts.get(key, 0) + 1
            target[key] = float(value)
        self._counters.accepted += 1
        self._target = target
        self._held_until = now + self.hold_time
        self._update_mode(now)
        return Decision(self._advance(now), None, None, tuple(clamped))

    def _effective_target(self, now: float) -> dict[str, float]:
        if self._estop is not None or self._mode == "stopped":
            return self._zero
        if self._held_until is None or now >= self._held_until:
            return self._zero
        scale = self.scale
        if scale == 1.0:
            return self._target
        axes = self.axes
        return {k: v * scale if axes[k].scaled else v for k, v in self._target.items()}

    def _advance(self, now: float) -> dict[str, float]:
        """Move the output towards the effective target, each axis at most at its rate."""
        target = self._effective_target(now)
        last = self._output_at
        dt = MAX_RAMP_STEP if last is None else min(max(0.0, now - last), MAX_RAMP_STEP)
        self._output_at = now
        previous = self._output
        output = {}
        for name, axis in self.axes.items():
            want = target[name]
            have = previous[name]
            rate = axis.rate
            if rate is None or (abs(want) <= abs(have) and want * have >= 0):
                output[name] = want  # no limit, or slowing down on the same side: at once
                continue
            if want * have < 0:
                have = 0.0  # reversing: stop at once, then grow from 0
            step = rate * dt
            output[name] = max(have - step, min(have + step, want))
        self._output = output
        return dict(output)

    @property
    def ramping(self) -> bool:
        """True while a rate-limited axis has not reached its target yet."""
        return self._output != self._effective_target(self._output_at or 0.0)

    # ------------------------------------------------------------------ E-stop

    def estop(self, reason: str, now: float, by: Any = LOCAL) -> bool:
        """Latch the E-stop; the output becomes 0 at once. True if it was not latched (then the
        robot's stop callback must run); a second E-stop while latched changes nothing."""
        if not isinstance(reason, str) or not reason:
            reason = "E-stop"
        reason = reason[:200]
        if self._estop is not None:
            return False
        self._estop = reason
        self._counters.estops += 1
        self._target = dict(self._zero)
        self._held_until = None
        self._output = dict(self._zero)
        self._output_at = now
        self._emit("estop", reason=reason, by=by)
        return True

    def release(self, by: Any, now: float) -> str | None:
        """Release the latch (only the driver or the robot's program may). Returns None when
        released, or why not. The robot stays still until a new command arrives."""
        if self._estop is None:
            return "the E-stop is not latched"
        if by != LOCAL and by != self._driver:
            return "only the driver can release the E-stop"
        self._estop = None
        self._target = dict(self._zero)
        self._held_until = None
        self._emit("release", by=by)
        return None

    # ------------------------------------------------------------------ operators

    def join(self, client: Any, now: float) -> None:
        """A page connected: it drives if nobody does, else it watches."""
        if client in self._clients or client == LOCAL:
            return
        self._clients.append(client)
        self._emit("joined", client=client)
        if self._driver is None:
            self._set_driver(client, "first to connect", now)

    def leave(self, client: Any, now: float) -> None:
        """A page left (its connection closed). A leaving driver latches the E-stop; the
        longest-connected viewer then drives (the latch holds until it releases it)."""
        if client not in self._clients:
            return
        self._clients.remove(client)
        self._emit("left", client=client)
        if self._request is not None and self._request.client == client:
            self._request = None
            self._emit("request_ended", client=client, reason="the viewer left")
        if client == self._driver:
            self.estop("the driver disconnected", now, by=client)
            self._driver = None
            if self._request is not None:
                self._request = None
            if self._clients:
                self._set_driver(self._clients[0], "the driver left", now)
            else:
                self._emit("driver", driver=None, reason="the driver left")

    def link_lost(self, client: Any, now: float, why: str = "link lost") -> bool:
        """The driver's link is gone (its control timeout fired, or the connection reports it
        lost): latch the E-stop. True if this latched it (run the stop callback)."""
        if client != self._driver:
            return False
        return self.estop(f"link lost: {why}", now, by=client)

    def _set_driver(self, client: Any, reason: str, now: float) -> None:
        self._driver = client
        self._target = dict(self._zero)  # a new driver starts from standstill
        self._held_until = None
        # the samples measured another operator's link: the new driver's reports replace them
        self._samples.clear()
        self._update_mode(now)
        self._emit("driver", driver=client, reason=reason)

    def request_control(self, client: Any, now: float) -> str | None:
        """A viewer asks to drive. Returns None when the request stands (or it drives now,
        when nobody did), or why it was refused."""
        if client not in self._clients:
            return "not connected"
        if client == self._driver:
            return "already driving"
        if self._driver is None:
            self._set_driver(client, "nobody was driving", now)
            return None
        if self._request is not None and self._request.client != client:
            return "another viewer's request is pending"
        self._request = _Request(client, now + self.handover_timeout)
        self._emit("request", client=client, driver=self._driver,
                   timeout_ms=self.handover_timeout * 1000)
        return None

    def answer_request(self, client: Any, accept: bool, now: float) -> str | None:
        """The driver's answer to a pending request. None when done, else why not."""
        if client != self._driver:
            return "only the driver can answer"
        request = self._request
        if request is None:
            return "no request is pending"
        self._request = None
        if accept:
            self._emit("request_ended", client=request.client, reason="accepted")
            self._set_driver(request.client, "handed over", now)
        else:
            self._emit("request_ended", client=request.client, reason="refused by the driver")
        return None

    def take_over(self, client: Any, token: Any, now: float) -> str | None:
        """Take control at once with the admin token. None when done, else why not."""
        if client not in self._clients:
            return "not connected"
        expected = self._admin_token
        if expected is None or not isinstance(token, str) or not hmac.compare_digest(
            token.encode("utf-8", "replace"), expected.encode("utf-8")
        ):
            self._counters.refused["bad token"] = self._counters.refused.get("bad token", 0) + 1
            return "wrong admin token"
        if client != self._driver:
            if self._request is not None:
                self._request = None
                self._emit("request_ended", client=None, reason="admin take-over")
            self._set_driver(client, "admin take-over", now)
        return None

    # ------------------------------------------------------------------ latency

    def report_latency(self, source: str, ms: Any, now: float) -> bool:
        """A latency sample (``"glass-to-glass"``, ``"rtt"``, or any name) in milliseconds.
        False (and ignored) when it is not a finite number in [0, 10 min)."""
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms):
            return False
        if not 0 <= ms < 600_000 or not isinstance(source, str) or len(source) > 32:
            return False
        self._sample(source, float(ms), now)
        self._update_mode(now)
        return True

    def _sample(self, source: str, ms: float, now: float) -> None:
        if source in self._samples or len(self._samples) < 8:
            self._samples[source] = (ms, now)

    def _latency(self, now: float) -> tuple[float | None, str | None]:
        lifetime = self.latency.sample_lifetime
        worst: float | None = None
        cause = None
        for source, (ms, at) in list(self._samples.items()):
            if now - at > lifetime:
                del self._samples[source]
                continue
            if worst is None or ms > worst:
                worst, cause = ms, source
        return worst, cause

    def _update_mode(self, now: float) -> None:
        ms, cause = self._latency(now)
        limits = self.latency
        mode = self._mode
        if ms is None:
            new = "normal"
        elif mode == "normal":
            new = "stopped" if ms >= limits.stop_ms else "slow" if ms >= limits.slow_ms else mode
        elif mode == "slow":
            new = ("stopped" if ms >= limits.stop_ms
                   else "normal" if ms < limits.slow_ms - limits.hysteresis_ms else mode)
        else:
            new = ("normal" if ms < limits.slow_ms - limits.hysteresis_ms
                   else "slow" if ms < limits.stop_ms - limits.hysteresis_ms else mode)
        if new != mode:
            self._mode = new
            self._emit("slowdown", mode=new, scale=self.scale, latency_ms=ms, cause=cause)
        self._mode_latency, self._mode_cause = ms, cause

    # ------------------------------------------------------------------ time

    def poll(self, now: float) -> dict[str, float] | None:
        """Apply what time changed; returns the new output if it changed (send it to the
        motors), else None."""
        request = self._request
        if request is not None and now >= request.until:
            self._request = None
            self._emit("request_ended", client=request.client,
                       reason="timed out: the driver keeps control")
        if self._samples:
            self._update_mode(now)
        if self._held_until is not None and now >= self._held_until:
            self._held_until = None
            if any(self._target.values()):
                self._counters.expired += 1
                self._emit("expired", after_ms=self.hold_time * 1000)
            self._target = dict(self._zero)
        before = self._output
        after = self._advance(now)
        return after if after != before else None

    def next_wakeup(self) -> float | None:
        """When :meth:`poll` next has something to do, or None."""
        times = []
        if self._held_until is not None:
            times.append(self._held_until)
        if self._request is not None:
            times.append(self._request.until)
        if self._samples:
            lifetime = self.latency.sample_lifetime
            times.append(min(at for _, at in self._samples.values()) + lifetime + 1e-3)
        if self._output_at is not None and self.ramping:
            times.append(self._output_at + MAX_RAMP_STEP / 2)
        return min(times) if times else None

    def statistics(self) -> dict[str, Any]:
        """Counters: accepted, refused (by kind), clamped (by axis), expired, estops."""
        c = self._counters
        return {"accepted": c.accepted, "refused": dict(c.refused), "clamped": dict(c.clamped),
                "expired": c.expired, "estops": c.estops}
