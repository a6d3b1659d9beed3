"""The asyncio safety gate: the producer/consumer contract, and real aiortc peers operating it."""

from __future__ import annotations

import asyncio

import pytest

from rtcbot import RTCConnection
from rtcbot.safety import Axis, SafetyGate
from rtcbot.testing import check_consumer, check_producer, connected_pair


class Recorder(list):
    """A subscriber that records what it gets and wakes whoever waits for a condition."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def __call__(self, value) -> None:
        self.append(value)
        self.changed.set()

    async def until(self, condition, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition(self):
                self.changed.clear()
                await self.changed.wait()


def gate(**kw):
    kw.setdefault("axes", [Axis("forward", -1, 1), Axis("turn", -1, 1)])
    return SafetyGate(kw.pop("axes"), **kw)


async def test_the_gate_is_a_producer():
    await check_producer(lambda: gate(hold_time=5),
                         emit=lambda g, i: g.put_nowait({"forward": (i % 10) / 10}))


async def test_the_gate_is_a_consumer():
    outputs: dict[int, list] = {}

    def make():
        g = gate(hold_time=5)
        outputs[id(g)] = out = []
        g.subscribe(out.append)
        return g

    async def received(g):
        return outputs[id(g)]

    await check_consumer(make, sample=lambda i: {"turn": (i % 10) / 10}, received=received)


async def test_put_nowait_refuses_malformed_on_the_callers_stack_and_expires():
    g = gate(hold_time=0.2)
    got = []
    expired = asyncio.Event()

    def motors(setpoint):
        got.append(setpoint)
        if setpoint == {"forward": 0.0, "turn": 0.0} and len(got) > 1:
            expired.set()

    g.subscribe(motors)
    g.put_nowait({"forward": 0.5})
    with pytest.raises(ValueError, match="unknown axis 'speed'"):
        g.put_nowait({"speed": 3})
    assert got == [{"forward": 0.5, "turn": 0.0}]
    async with asyncio.timeout(5):
        await expired.wait()  # not refreshed: the gate stopped it by itself
    assert g.statistics()["expired"] == 1
    g.close()
    await g


async def test_estop_from_python_runs_the_stop_callback_once_per_latch():
    stops = Recorder()
    g = gate(on_stop=lambda: stops("sync"), hold_time=5)

    @g.onStop
    async def async_stop():
        stops("async")

    events = g.events.subscribe()
    got = []
    g.subscribe(got.append)
    g.put_nowait({"forward": 1})
    assert g.estop("test") is True
    assert g.estop("again") is False
    assert got[-1] == {"forward": 0.0, "turn": 0.0}
    g.put_nowait({"forward": 1})  # refused while latched: nothing more reaches the motors
    assert len(got) == 2
    async with asyncio.timeout(5):
        event = await events.get()
        while event["event"] != "estop":
            event = await events.get()
    await stops.until(lambda s: len(s) >= 2)
    assert event == {"event": "estop", "reason": "test", "by": "local"}
    assert sorted(stops) == ["async", "sync"]
    g.release()
    g.put_nowait({"forward": 1})
    assert got[-1] == {"forward": 1.0, "turn": 0.0}
    g.estop("second latch")
    await stops.until(lambda s: len(s) >= 4)
    g.close()
    await g


async def test_a_page_drives_through_a_real_connection_and_link_loss_latches():
    """The operator's side is a real aiortc peer speaking the page's protocol."""
    stops = asyncio.Event()
    g = gate(on_stop=stops.set, link_timeout=0.5)
    robot = RTCConnection()
    g.attach(robot)
    got = Recorder()
    g.subscribe(got)
    async with connected_pair(answerer=robot) as (operator, robot):
        state = await operator.get()
        while state.get("type") != "safety" or state["role"] != "driver":
            state = await operator.get()
        assert state["state"]["estop"] is False
        operator.put_nowait({"type": "control", "forward": 2, "turn": -0.25})
        operator.put_nowait({"type": "safety", "action": "nonsense"})
        await got.until(bool)
        async with asyncio.timeout(5):
            reply = await operator.get()
            while "refused" not in reply:
                reply = await operator.get()
        assert got[0] == {"forward": 1.0, "turn": -0.25}
        assert reply["action"] == "nonsense" and "unknown action" in reply["refused"]
        assert g.statistics()["clamped"] == {"forward": 1}
        # the operator goes quiet (no more messages): the link counts as lost
        async with asyncio.timeout(5):
            await stops.wait()
        assert g.latched and "link lost" in g.state["estop_reason"]
        assert got[-1] == {"forward": 0.0, "turn": 0.0}
        # the page reads the latch; a command is refused until it releases
        operator.put_nowait({"type": "control", "forward": 1})
        operator.put_nowait({"type": "safety", "action": "release"})
        operator.put_nowait({"type": "control", "forward": 0.5})
        await got.until(lambda g: g[-1] == {"forward": 0.5, "turn": 0.0})
        assert g.statistics()["refused"] == {"estop": 1}
    g.close()
    await g


async def test_the_drivers_round_trip_time_feeds_the_slow_down():
    from rtcbot.safety import LatencyLimits

    g = gate(latency=LatencyLimits(slow_ms=0.001, stop_ms=60_000, hysteresis_ms=0))
    events = Recorder()
    g.events.subscribe(events)
    robot = RTCConnection()
    g.attach(robot, rtt_interval=0.1)
    async with connected_pair(answerer=robot):
        await events.until(lambda e: any(x["event"] == "slowdown" for x in e), timeout=10)
    slow = next(x for x in events if x["event"] == "slowdown")
    assert slow["mode"] == "slow" and slow["cause"] == "rtt" and slow["latency_ms"] > 0
    g.close()
    await g
