"""The asyncio safety gate: :class:`SafetyRules` wired to connections, timers and subscribers."""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..base.base import SubscriptionProducer, SubscriptionProducerConsumer
from ..base.errors import SubscriptionClosed, SubscriptionFull
from ._rules import LOCAL, Axis, LatencyLimits, SafetyRules

__all__ = ["SafetyGate"]

_log = logging.getLogger("rtcbot.safety")

#: Seconds between two state messages to the pages when only counters changed.
STATE_INTERVAL = 0.5

_ACTIONS = ("estop", "release", "request", "accept", "deny", "takeover", "latency", "state")


class SafetyGate(SubscriptionProducerConsumer):
    """Commands in, safe commands out: the recommended way to wire motors.

    A consumer of commands (``put_nowait(cmd)`` from the robot's own program,
    ``putSubscription(producer)``, or the operators' pages through :meth:`attach`) and a
    producer of setpoints for the motors: ``gate.subscribe(motors.set)`` receives a dict with a
    float for every axis, each time a command is accepted and whenever the gate changes the
    output by itself (a held command expired, the E-stop latched, the link got slow, a ramp
    step). A command is a dict ``{axis: value, ...}`` holding the operator's full state (an axis
    missing from it is 0) plus optional meta fields (``type``, ``source``...).

    What it enforces: a latched E-stop (:meth:`estop`, from a page, and on link loss), per-axis
    clamps and rate limits (:class:`Axis`), refusal of malformed, stale or unauthorised commands,
    the expiry of a command not refreshed within ``hold_time`` s (a lost key-up never leaves the
    robot driving), a latency-aware slow-down (:class:`LatencyLimits`) and one operator at a
    time with hand-over. Every change is an event: ``gate.events`` is a producer of event dicts
    (``{"event": "estop", "reason": ..., "by": ...}``, ``"release"``, ``"driver"``,
    ``"request"``, ``"request_ended"``, ``"slowdown"``, ``"expired"``, ``"joined"``,
    ``"left"``), and every attached page receives them with the state.

    ``on_stop``: called (no argument) once each time the E-stop latches, after the zero setpoint
    went to the subscribers; a plain function runs on the event loop, an ``async def`` one as a
    task the gate owns. ``link_timeout``: seconds without a message from the driver's page
    before its link counts as lost (the E-stop latches); see :meth:`attach`. The other
    arguments are :class:`SafetyRules`'.

    ``put_nowait`` applies a command at once, on the caller's stack: a malformed one raises
    ``ValueError`` naming the reason, a refused one (E-stop latched, too old) is counted.
    ``close()`` sends a last zero setpoint if the output was not zero, then ends the streams.
    """

    def __init__(
        self,
        axes: Iterable[Axis | str],
        *,
        on_stop: Callable[[], Any] | None = None,
        hold_time: float = 0.5,
        max_age: float = 0.5,
        link_timeout: float = 0.5,
        latency: LatencyLimits | None = None,
        handover_timeout: float = 10.0,
        admin_token: str | None = None,
        max_fields: int = 16,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(logger=logger)
        self.rules = SafetyRules(
            axes, hold_time=hold_time, max_age=max_age, latency=latency,
            handover_timeout=handover_timeout, admin_token=admin_token, max_fields=max_fields,
        )
        if isinstance(link_timeout, bool) or not isinstance(link_timeout, (int, float)) or not (
            math.isfinite(link_timeout) and link_timeout > 0
        ):
            raise ValueError(f"link_timeout must be a positive number of seconds, got "
                             f"{link_timeout!r}")
        self.link_timeout = float(link_timeout)
        self.events = SubscriptionProducer(logger=logger)
        self._stopCallbacks: list[Callable[[], Any]] = []
        if on_stop is not None:
            self.onStop(on_stop)
        self._timer: asyncio.TimerHandle | None = None
        self._timerAt: float | None = None
        self._reader: asyncio.Task[None] | None = None
        self._peers: dict[int, Any] = {}
        self._nextClient = 1
        self._pushHandle: asyncio.Handle | None = None
        self._stateTimer: asyncio.TimerHandle | None = None
        self._pending: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ public verbs

    def onStop(self, callback: Callable[[], Any]) -> Callable[[], Any]:
        """Add a stop callback (run once per latch); returns it, so it works as a decorator."""
        if not callable(callback):
            raise TypeError(f"a stop callback must be callable, got {callback!r}")
        self._stopCallbacks.append(callback)
        return callback

    @property
    def state(self) -> dict[str, Any]:
        """A snapshot of the gate (what the pages show; JSON-ready)."""
        return self.rules.snapshot(time.monotonic())

    @property
    def output(self) -> dict[str, float]:
        """The setpoint the motors have now."""
        return self.rules.output

    @property
    def latched(self) -> bool:
        return self.rules.latched

    def estop(self, reason: str = "E-stop from the robot program") -> bool:
        """Latch the E-stop: the motors get 0 at once and stay stopped until :meth:`release`.
        True if this call latched it (the stop callbacks ran); False if it was latched."""
        latched = self.rules.estop(reason, time.monotonic(), by=LOCAL)
        self._after()
        return latched

    def release(self) -> None:
        """Release the E-stop from the robot program (pages release it with their button). The
        robot stays still until the next command."""
        self.rules.release(LOCAL, time.monotonic())
        self._after()

    def report_latency(self, source: str, ms: float) -> None:
        """Feed a latency sample in milliseconds (``"glass-to-glass"``, ``"rtt"``, or your own
        name); the slow-down follows the largest fresh sample."""
        if not self.rules.report_latency(source, ms, time.monotonic()):
            raise ValueError(f"a latency must be a finite number of ms in [0, 600000), got "
                             f"{ms!r} for {source!r}")
        self._after()

    def command(self, client: Any, message: Any, age: float | None = None) -> Any:
        """Apply ``message`` as a command from ``client`` (an id given by :meth:`attach`, or
        :data:`LOCAL`), ``age`` seconds old if known; returns the :class:`Decision`."""
        decision = self.rules.command(client, message, time.monotonic(), age)
        if decision.output is not None and not self._shouldClose:
            self._put_nowait(decision.output)
        self._after()
        return decision

    def statistics(self) -> dict[str, Any]:
        """Counters: accepted, refused by kind, clamped by axis, expired, estops."""
        return self.rules.statistics()

    # ------------------------------------------------------------------ consumer side

    def put_nowait(self, data: Any) -> None:
        """Apply a command from the robot's own program now (see the class docstring)."""
        if self._shouldClose:
            raise SubscriptionClosed("SafetyGate is closed")
        self._ensureLoop()
        decision = self.rules.command(LOCAL, data, time.monotonic())
        if decision.output is not None:
            self._put_nowait(decision.output)
        elif decision.kind == "malformed":
            self._after()
            raise ValueError(f"SafetyGate refused a command: {decision.refused}")
        self._after()

    def putSubscription(self, subscription: Any) -> None:
        """Read commands from ``subscription`` (a producer or a subscription) from now on."""
        super().putSubscription(subscription)
        if self._reader is None:
            self._reader = self._spawn(self._read(), name="rtcbot safety gate reader")

    async def _read(self) -> None:
        while True:
            try:
                data = await self._get()
            except SubscriptionClosed:
                if self._shouldClose:
                    return
                continue
            decision = self.command(LOCAL, data)
            if decision.kind == "malformed":
                self._log.warning("refused a command: %s", decision.refused)

    # ------------------------------------------------------------------ pages

    def attach(
        self,
        conn: Any,
        *,
        age_of: Callable[[dict[str, Any]], float | None] | None = None,
        rtt_interval: float | None = 1.0,
    ) -> int:
        """Let the page (or program) at the other end of ``conn`` operate through the gate.

        ``conn`` is an :class:`~rtcbot.RTCConnection` (or anything with ``subscribe``,
        ``put_nowait``, ``onClose`` and ``set_control_timeout``). The gate takes over its control
        timeout (``link_timeout``): silence from the driver latches the E-stop, as do the connection
        reporting its link lost (``on_link_lost``, while it tries to resume) and the connection
        closing; a resumed page re-reads the state (the latch holds). Messages it reads: ``{"type":
        "control", <axis>: value...}`` (a command) and ``{"type": "safety", "action": ...}`` with
        action ``"estop"`` (any page; ``"reason"``), ``"release"``, ``"accept"``, ``"deny"`` (the
        driver), ``"request"`` (a viewer), ``"takeover"`` (``"token"``), ``"latency"``
        (``"glass_ms"``, ``"rtt_ms"``; only the driver's count) and ``"state"``. It sends ``{"type":
        "safety", "you": id, "role": "driver" | "viewer", "state": {...}, "events": [...]}`` on
        every change and ``{"type": "safety", "action": ..., "refused": reason}`` when a page's
        action is refused. ``age_of(message)``, if given, returns a command's age in seconds (None
        if unknown). ``rtt_interval``: seconds between two reads of ``await conn.stats()``'s
        round-trip time while this page drives (it feeds the slow-down as ``"rtt"``); None to not
        read it. Returns the client id.
        """
        client = self._nextClient
        self._nextClient += 1
        self._ensureLoop()
        self._peers[client] = conn

        def on_message(message: Any) -> None:
            self._on_message(client, message, age_of)

        def lost() -> None:
            if not self._shouldClose:
                self.rules.link_lost(client, time.monotonic(),
                                     f"nothing from the driver for {self.link_timeout:g} s")
                self._after()

        def closed() -> None:
            self._peers.pop(client, None)
            if not self._shouldClose:
                self.rules.leave(client, time.monotonic())
                self._after()

        def link_lost(reason: Any = None) -> None:
            if not self._shouldClose:
                why = str(reason)[:120] if reason is not None else "the connection lost its link"
                self.rules.link_lost(client, time.monotonic(), why)
                self._after()

        conn.subscribe(on_message)
        conn.set_control_timeout(self.link_timeout, lost)
        conn.onClose(closed)
        if callable(getattr(conn, "on_link_lost", None)):  # a resumable session
            conn.on_link_lost(link_lost)
            conn.on_link_restored(lambda: self._push_to(client))
        on_ready = getattr(conn, "onReady", None)
        if on_ready is not None:
            on_ready(lambda: self._push_to(client))
        self.rules.join(client, time.monotonic())
        self._after()
        if rtt_interval is not None and callable(getattr(conn, "stats", None)):
            if not rtt_interval > 0:
                raise ValueError(f"rtt_interval must be positive seconds or None, got "
                                 f"{rtt_interval!r}")
            self._spawn(self._measure_rtt(client, conn, float(rtt_interval)), critical=False,
                        name=f"rtcbot safety rtt {client}")
        return client

    async def _measure_rtt(self, client: int, conn: Any, interval: float) -> None:
        """While ``conn`` is open: every ``interval`` s, its round-trip time (when it drives)."""
        while not getattr(conn, "closed", False) and not self._shouldClose:
            await asyncio.sleep(interval)
            if self.rules.driver != client or not getattr(conn, "ready", True):
                continue
            try:
                stats = await conn.stats()
            except Exception as exc:  # a closing connection: try again or end
                self._log.debug("no stats from operator %d: %r", client, exc)
                continue
            rtt = stats.get("rtt_ms") if isinstance(stats, dict) else None
            if self.rules.driver == client and self.rules.report_latency("rtt", rtt,
                                                                         time.monotonic()):
                self._after()

    def _on_message(self, client: int, message: Any, age_of: Any) -> None:
        if self._shouldClose or not isinstance(message, dict):
            return
        kind = message.get("type")
        now = time.monotonic()
        if kind == "control":
            age = None
            if age_of is not None:
                try:
                    age = age_of(message)
                except Exception as exc:  # a hostile field: no age, and say so once per kind
                    self._log.debug("age of a command unknown: %r", exc)
            body = message
            decision = self.rules.command(client, body, now, age)
            if decision.output is not None:
                self._put_nowait(decision.output)
            self._after()
            return
        if kind != "safety":
            return
        action = message.get("action")
        rules = self.rules
        refused: str | None = None
        if action == "estop":
            reason = message.get("reason")
            reason = reason[:100] if isinstance(reason, str) and reason else "E-stop"
            rules.estop(f"{reason} (operator {client})", now, by=client)
        elif action == "release":
            refused = rules.release(client, now)
        elif action == "request":
            refused = rules.request_control(client, now)
        elif action in ("accept", "deny"):
            refused = rules.answer_request(client, action == "accept", now)
        elif action == "takeover":
            refused = rules.take_over(client, message.get("token"), now)
        elif action == "latency":
            if client != rules.driver:  # a watcher's link is not the one that drives
                self._after()
                return
            for field, source in (("glass_ms", "glass-to-glass"), ("rtt_ms", "rtt")):
                value = message.get(field)
                if value is not None:
                    rules.report_latency(source, value, now)
        elif action == "state":
            self._push_to(client)
        else:
            refused = f"unknown action {str(action)[:40]!r} (known: {', '.join(_ACTIONS)})"
        if refused is not None:
            self._send(client, {"type": "safety", "action": str(action)[:40],
                                "refused": refused})
        self._after()

    # ------------------------------------------------------------------ internals

    def _after(self) -> None:
        """After any change: hand out events, run stop callbacks, keep the timer."""
        events = self.rules.events()
        if events:
            self._handle_events(events)
        wakeup = self.rules.next_wakeup()
        if wakeup is not None and not self._shouldClose:
            at = self._timerAt
            if at is None or wakeup < at - 0.001:
                self._schedule(wakeup)

    def _schedule(self, wakeup: float) -> None:
        loop = self._ensureLoop()
        if loop is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timerAt = wakeup
        self._timer = loop.call_later(max(0.0, wakeup - time.monotonic()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timerAt = None
        if self._shouldClose:
            return
        output = self.rules.poll(time.monotonic())
        if output is not None:
            self._put_nowait(output)
        self._after()

    def _handle_events(self, events: list[dict[str, Any]]) -> None:
        stops = 0
        for event in events:
            kind = event["event"]
            if kind == "estop":
                stops += 1
                self._log.warning("E-stop latched: %s", event.get("reason"))
            elif kind in ("release", "driver", "slowdown"):
                self._log.info("safety: %s", event)
            if not self.events.closed:
                try:
                    self.events.put_nowait(event)
                except SubscriptionFull:
                    self._log.warning("safety event not kept (nobody reads gate.events): %s",
                                      event)
        if stops and not self._shouldClose:
            self._put_nowait(self.rules.output)
        for _ in range(stops):
            self._run_stop_callbacks()
        self._pending.extend(events)
        self._schedule_push()

    def _run_stop_callbacks(self) -> None:
        for callback in self._stopCallbacks:
            try:
                if inspect.iscoroutinefunction(callback):
                    self._spawn(callback(), critical=False, name="rtcbot safety stop")
                else:
                    result = callback()
                    if inspect.isawaitable(result):
                        self._spawn(_await(result), critical=False, name="rtcbot safety stop")
            except Exception:
                self._log.exception("the stop callback %r raised", callback)

    def _schedule_push(self) -> None:
        if self._pushHandle is not None or not self._peers:
            return
        loop = self._ensureLoop()
        if loop is None:
            return
        self._pushHandle = loop.call_soon(self._push_all)

    def _push_all(self) -> None:
        self._pushHandle = None
        events, self._pending = self._pending[-32:], []
        if self._stateTimer is not None:
            self._stateTimer.cancel()
            self._stateTimer = None
        for client in list(self._peers):
            self._push_to(client, events)
        if self._peers and not self._shouldClose and self._loop is not None:
            self._stateTimer = self._loop.call_later(STATE_INTERVAL, self._push_all)

    def _push_to(self, client: int, events: list[dict[str, Any]] | None = None) -> None:
        rules = self.rules
        self._send(client, {
            "type": "safety",
            "you": client,
            "role": "driver" if rules.driver == client else "viewer",
            "state": rules.snapshot(time.monotonic()),
            "events": events or [],
        })

    def _send(self, client: int, message: dict[str, Any]) -> None:
        conn = self._peers.get(client)
        if conn is None or getattr(conn, "closed", False) or not getattr(conn, "ready", True):
            return
        try:
            conn.put_nowait(message)
        except (SubscriptionFull, SubscriptionClosed) as exc:
            self._log.debug("safety state not sent to operator %d: %r", client, exc)

    def close(self) -> None:
        """Send a last zero setpoint (if the output was not zero) and end the streams."""
        if self._closedFlag:
            return
        if any(self.rules.output.values()):
            self.rules.estop("the safety gate closed", time.monotonic())
            self.rules.events()
            self._put_nowait(self.rules.output)
        for handle in (self._timer, self._pushHandle, self._stateTimer):
            if handle is not None:
                handle.cancel()
        self._timer = self._pushHandle = self._stateTimer = None
        self._peers.clear()
        self.events.close()
        super().close()


async def _await(awaitable: Any) -> None:
    await awaitable
