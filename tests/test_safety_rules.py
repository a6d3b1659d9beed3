"""The safety gate's rules, fed ``now`` by hand: no event loop, no sleeps."""

from __future__ import annotations

import itertools
import math

import pytest

from rtcbot.safety import LOCAL, Axis, LatencyLimits, SafetyRules


def make(**kw):
    axes = kw.pop("axes", [Axis("forward", -1, 1, rate=2.0), Axis("turn", -0.5, 0.5),
                           Axis("grip", 0, 1, scaled=False)])
    rules = SafetyRules(axes, **kw)
    rules.join("a", 0.0)
    return rules


def kinds(rules):
    return [e["event"] for e in rules.events()]


def test_first_page_drives_others_watch_and_only_the_driver_commands():
    rules = make()
    rules.join("b", 0.0)
    assert rules.driver == "a"
    assert kinds(rules) == ["joined", "driver", "joined"]
    assert rules.command("a", {"turn": 0.25}, 0.1).output == {"forward": 0.0, "turn": 0.25,
                                                              "grip": 0.0}
    refused = rules.command("b", {"turn": 0.5}, 0.1)
    assert refused.output is None and refused.kind == "not driver"
    assert rules.statistics()["refused"] == {"not driver": 1}


@pytest.mark.parametrize(
    ("message", "why"),
    [
        ([1, 2], "must be an object"),
        ("forward", "must be an object"),
        ({"forward": "1"}, "not a number"),
        ({"forward": True}, "not a number"),
        ({"forward": math.nan}, "not finite"),
        ({"forward": math.inf}, "not finite"),
        ({"speed": 1}, "unknown axis 'speed'"),
        ({1: 1}, "unknown axis 1"),
        ({f"k{i}": 0 for i in range(40)}, "too many fields"),
        ({"forward": None}, "not a number"),
    ],
)
def test_malformed_commands_are_refused_with_a_reason(message, why):
    rules = make()
    rules.command("a", {"forward": 0.5}, 0.0)
    decision = rules.command("a", message, 0.01)
    assert decision.output is None and decision.kind == "malformed"
    assert why in decision.refused
    assert rules.statistics()["refused"] == {"malformed": 1}
    assert rules.snapshot(0.01)["last_refusal"] == decision.refused
    # the refusal changed nothing: the previous command still holds
    assert rules.poll(0.02) is None or rules.output["forward"] > 0


def test_out_of_range_values_are_clamped_and_counted_per_axis():
    rules = make(axes=[Axis("forward", -1, 1), Axis("turn", -0.5, 0.5)])
    decision = rules.command("a", {"forward": 3, "turn": -9, "type": "control"}, 0.0)
    assert decision.output == {"forward": 1.0, "turn": -0.5}
    assert decision.clamped == ("forward", "turn")
    rules.command("a", {"forward": -1.5}, 0.1)
    assert rules.statistics()["clamped"] == {"forward": 2, "turn": 1}
    assert rules.snapshot(0.1)["limits_hit"] == {"forward": 2, "turn": 1}


def test_rate_limit_grows_at_its_rate_and_brakes_at_once():
    rules = make()  # forward: 2 units/s
    out = rules.command("a", {"forward": 1}, 0.0).output
    assert out["forward"] == pytest.approx(0.1)  # first step: one ramp step of 50 ms
    t = 0.0
    values = []
    while t < 0.6:
        t += 0.02
        rules.command("a", {"forward": 1}, t)
        values.append(rules.output["forward"])
    steps = [b - a for a, b in itertools.pairwise(values) if b < 1]
    assert all(s == pytest.approx(0.04) for s in steps), steps
    assert values[-1] == 1.0
    # braking is immediate; reversing stops at once and grows from 0
    assert rules.command("a", {"forward": 0.2}, t + 0.02).output["forward"] == 0.2
    out = rules.command("a", {"forward": -1}, t + 0.04).output
    assert out["forward"] == pytest.approx(-0.04)
    # the timer ramps without new commands too
    assert rules.next_wakeup() is not None
    assert rules.poll(t + 0.06)["forward"] == pytest.approx(-0.08)


def test_a_held_command_expires_when_not_refreshed():
    rules = make(hold_time=0.3)
    rules.command("a", {"turn": 0.5}, 0.0)
    rules.events()
    assert rules.next_wakeup() == pytest.approx(0.3)
    assert rules.poll(0.29) is None
    assert rules.poll(0.3) == {"forward": 0.0, "turn": 0.0, "grip": 0.0}
    assert kinds(rules) == ["expired"]
    assert rules.statistics()["expired"] == 1
    # a refreshed command keeps going
    for i in range(10):
        rules.command("a", {"turn": 0.5}, 1.0 + i * 0.1)
        assert rules.poll(1.0 + i * 0.1 + 0.05) is None
    assert rules.output["turn"] == 0.5


def test_estop_latches_until_the_driver_releases_it():
    rules = make()
    rules.join("b", 0.0)
    rules.command("a", {"turn": 0.5}, 0.0)
    rules.events()
    assert rules.estop("button", 0.1, by="b") is True  # any operator may stop
    assert rules.output == {"forward": 0.0, "turn": 0.0, "grip": 0.0}
    assert rules.estop("again", 0.2, by="a") is False  # once per latch
    assert [e["event"] for e in rules.events()] == ["estop"]
    assert rules.command("a", {"turn": 0.5}, 0.3).kind == "estop"
    assert rules.release("b", 0.4) == "only the driver can release the E-stop"
    assert rules.latched
    assert rules.release("a", 0.5) is None
    assert not rules.latched and rules.output["turn"] == 0  # still until a new command
    assert rules.command("a", {"turn": 0.5}, 0.6).output["turn"] == 0.5
    assert rules.release("a", 0.7) == "the E-stop is not latched"
    assert rules.estop("program", 0.8) is True
    assert rules.release(LOCAL, 0.9) is None


def test_link_loss_of_the_driver_latches_a_viewer_does_not():
    rules = make()
    rules.join("b", 0.0)
    assert rules.link_lost("b", 1.0) is False
    assert not rules.latched
    assert rules.link_lost("a", 1.0, "no message for 0.5 s") is True
    assert rules.estop_reason == "link lost: no message for 0.5 s"


def test_driver_leaving_latches_and_the_oldest_viewer_drives_still_latched():
    rules = make()
    rules.join("b", 0.0)
    rules.join("c", 0.0)
    rules.events()
    rules.leave("a", 1.0)
    events = rules.events()
    assert [e["event"] for e in events] == ["left", "estop", "driver"]
    assert events[-1]["driver"] == "b"
    assert rules.latched and rules.driver == "b"
    rules.leave("b", 1.1)
    rules.leave("c", 1.2)
    assert rules.driver is None and rules.clients == ()
    rules.join("d", 2.0)  # a reload: the new page drives, the latch holds
    assert rules.driver == "d" and rules.latched


def test_handover_accept_deny_and_timeout():
    rules = make(handover_timeout=5.0)
    rules.join("b", 0.0)
    rules.join("c", 0.0)
    rules.events()
    assert rules.request_control("a", 0.0) == "already driving"
    assert rules.request_control("b", 1.0) is None
    assert rules.request_control("c", 1.0) == "another viewer's request is pending"
    assert rules.snapshot(2.0)["request"] == {"from": "b", "expires_in_ms": 4000.0}
    assert rules.answer_request("b", True, 2.0) == "only the driver can answer"
    assert rules.answer_request("a", False, 2.0) is None
    assert rules.driver == "a"
    # timeout: the driver's choice (keep driving) stands
    rules.request_control("b", 3.0)
    assert rules.next_wakeup() == pytest.approx(8.0)
    rules.poll(8.0)
    ended = [e for e in rules.events() if e["event"] == "request_ended"]
    assert ended[-1]["reason"].startswith("timed out")
    assert rules.driver == "a"
    # accept: the viewer drives, from standstill
    rules.command("a", {"turn": 0.5}, 9.0)
    rules.request_control("c", 9.0)
    assert rules.answer_request("a", True, 9.1) is None
    assert rules.driver == "c"
    assert rules.poll(9.1) == {"forward": 0.0, "turn": 0.0, "grip": 0.0}
    assert rules.command("a", {"turn": 0.5}, 9.2).kind == "not driver"


def test_admin_token_takes_over_and_a_wrong_one_is_refused():
    rules = make(admin_token="s3cret")
    rules.join("b", 0.0)
    assert rules.take_over("b", "nope", 1.0) == "wrong admin token"
    assert rules.take_over("b", None, 1.0) == "wrong admin token"
    assert rules.driver == "a"
    assert rules.take_over("b", "s3cret", 1.0) is None
    assert rules.driver == "b"
    assert make().take_over("a", "", 0.0) == "wrong admin token"  # no token configured


def test_latency_slows_down_then_stops_with_hysteresis():
    limits = LatencyLimits(slow_ms=200, stop_ms=500, hysteresis_ms=50, slow_scale=0.4)
    rules = make(latency=limits, hold_time=100)
    rules.command("a", {"turn": 0.5, "grip": 1}, 0.0)
    rules.events()

    def at(ms, t):
        rules.report_latency("glass-to-glass", ms, t)
        rules.poll(t)
        return rules.mode, dict(rules.output)

    assert at(150, 1.0)[0] == "normal"
    mode, out = at(210, 1.1)
    assert mode == "slow" and out["turn"] == pytest.approx(0.2) and out["grip"] == 1.0
    assert at(170, 1.2)[0] == "slow"  # within the hysteresis band
    assert at(149, 1.3)[0] == "normal"
    mode, out = at(600, 1.4)
    assert mode == "stopped" and out["turn"] == 0 and out["grip"] == 0
    assert not rules.latched
    assert at(460, 1.5)[0] == "stopped"  # needs < stop - hysteresis
    assert at(440, 1.6)[0] == "slow"
    events = [e for e in rules.events() if e["event"] == "slowdown"]
    assert [e["mode"] for e in events] == ["slow", "normal", "stopped", "slow"]
    assert events[2]["cause"] == "glass-to-glass" and events[2]["latency_ms"] == 600
    snap = rules.snapshot(1.6)
    assert snap["mode"] == "slow" and snap["latency_cause"] == "glass-to-glass"
    # the worst fresh source counts; a stale sample is forgotten
    rules.report_latency("rtt", 700, 1.7)
    assert rules.mode == "stopped" and rules.snapshot(1.7)["latency_cause"] == "rtt"
    rules.poll(1.7 + limits.sample_lifetime + 0.01)
    assert rules.mode == "normal"
    assert rules.report_latency("rtt", math.nan, 9.0) is False
    assert rules.report_latency("rtt", -1, 9.0) is False


def test_commands_older_than_the_age_limit_never_reach_the_motors():
    rules = make(max_age=0.5)
    assert rules.command("a", {"turn": 0.5}, 0.0, age=0.2).output["turn"] == 0.5
    decision = rules.command("a", {"turn": 0.4}, 0.1, age=0.51)
    assert decision.output is None and decision.kind == "too old"
    assert "510 ms old" in decision.refused
    assert rules.command("a", {"turn": 0.4}, 0.1, age=math.nan).kind == "malformed"
    # a fresh command's age counts as latency
    limits = LatencyLimits(slow_ms=100, stop_ms=1000)
    rules = make(latency=limits)
    rules.command("a", {"turn": 0.5}, 0.0, age=0.3)
    assert rules.mode == "slow" and rules.snapshot(0.0)["latency_cause"] == "command age"


def test_configuration_is_checked():
    with pytest.raises(ValueError, match="min <= 0 <= max"):
        Axis("x", 0.5, 1)
    with pytest.raises(ValueError, match="meta field"):
        Axis("type")
    with pytest.raises(ValueError, match="positive"):
        Axis("x", rate=0)
    with pytest.raises(ValueError, match="at least one axis"):
        SafetyRules([])
    with pytest.raises(ValueError, match="twice"):
        SafetyRules(["x", "x"])
    with pytest.raises(ValueError, match="stop_ms"):
        LatencyLimits(slow_ms=500, stop_ms=100)
    with pytest.raises(TypeError):
        SafetyRules(["x"], hold_time="1")


def test_a_new_driver_starts_with_its_own_latency():
    rules = make(latency=LatencyLimits(slow_ms=100, stop_ms=500))
    rules.join("b", 0.0)
    rules.report_latency("glass-to-glass", 900, 0.0)  # the driver's link is bad
    assert rules.mode == "stopped"
    rules.request_control("b", 0.1)
    rules.answer_request("a", True, 0.2)
    assert rules.mode == "normal" and rules.snapshot(0.2)["latency_ms"] is None
