"""rtcbot.Safety on its own: what it sends (the intent repeated at a steady rate only while it
drives; the operator's actions) and what it accepts from the robot (every field checked)."""

# ruff: noqa: E501 -- the JavaScript run in the page keeps its natural line lengths

from __future__ import annotations

import pytest

from support.browser import wait_for_js

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# A stand-in for the connection: records what is sent, and deliver(m) plays the robot.
FAKE_CONN = """() => {
    window.out = [];
    const subs = [];
    window.fake = {put_nowait: (m) => out.push(m), subscribe: (f) => subs.push(f),
                   unsubscribe: (f) => subs.splice(subs.indexOf(f), 1)};
    window.deliver = (m) => subs.forEach((f) => f(m));
    window.updates = [];
    window.safety = new rtcbot.Safety(fake, {intent: () => window.intent, rateHz: 50});
    safety.subscribe((u) => updates.push(u));
    window.intent = {forward: 0.5};
}"""

STATE = {"estop": False, "estop_reason": None, "driver": 1, "request": None, "mode": "normal",
         "scale": 1, "latency_ms": None, "latency_cause": None, "limits_hit": {},
         "refused": {}, "last_refusal": None, "output": {"forward": 0}}


async def robot_says(page, role: str) -> None:
    await page.evaluate("(m) => deliver(m)",
                        {"type": "safety", "you": 2, "role": role, "state": STATE, "events": []})


async def test_the_intent_repeats_only_while_driving(page):
    await page.evaluate(FAKE_CONN)
    # no state from the robot yet, then a viewer: nothing is sent
    await robot_says(page, "viewer")
    await page.evaluate("safety.update()")
    assert await page.evaluate("out.filter((m) => m.type === 'control').length") == 0
    assert await page.evaluate("[safety.role, safety.you, safety.driving]") == ["viewer", 2, False]
    # driving: the same intent goes out again and again (a lost key-up cannot stick)
    await robot_says(page, "driver")
    await wait_for_js(page, "out.filter((m) => m.type === 'control').length >= 5")
    controls = await page.evaluate("out.filter((m) => m.type === 'control')")
    assert all(m == {"type": "control", "forward": 0.5} for m in controls)
    # back to viewer: it goes quiet
    await robot_says(page, "viewer")
    n = await page.evaluate("out.length")
    await page.evaluate("new Promise((r) => setTimeout(r, 100))")  # 5 ticks at 50 Hz
    assert await page.evaluate("out.length") == n
    # the actions
    await page.evaluate("safety.estop('test'); safety.release(); safety.requestControl(); safety.accept(); safety.deny(); safety.takeOver('t'); safety.reportLatency({glass_ms: 120, rtt_ms: NaN})")
    actions = (await page.evaluate("out"))[n:]
    assert actions == [
        {"type": "safety", "action": "estop", "reason": "test"},
        {"type": "safety", "action": "release"},
        {"type": "safety", "action": "request"},
        {"type": "safety", "action": "accept"},
        {"type": "safety", "action": "deny"},
        {"type": "safety", "action": "takeover", "token": "t"},
        {"type": "safety", "action": "latency", "glass_ms": 120},
    ]
    await page.evaluate("safety.close()")
    assert await page.evaluate("safety.closed") is True


async def test_what_the_robot_sends_is_checked(page):
    await page.evaluate(FAKE_CONN)
    await page.evaluate("""() => {
        deliver("not an object"); deliver({type: "safety"}); deliver({type: "safety", state: [1]});
        deliver({type: "safety", refused: 42});
        deliver({type: "safety", you: {x: 1}, role: "king", events: "many", state: {
            estop: "yes", estop_reason: "x".repeat(1000), driver: {evil: true}, mode: "warp",
            scale: NaN, latency_ms: Infinity, latency_cause: 7,
            limits_hit: Object.fromEntries(Array.from({length: 100}, (_, i) => ["a" + i, i])),
            refused: {bad: "1", ok: 2}, output: {forward: "fast"}}});
    }""")
    assert await page.evaluate("updates.length") == 1
    state = await page.evaluate("safety.state")
    assert state["estop"] is False and len(state["estop_reason"]) == 200
    assert state["driver"] is None and state["mode"] == "normal"
    assert state["scale"] is None and state["latency_ms"] is None and state["latency_cause"] is None
    assert len(state["limits_hit"]) == 32 and state["refused"] == {"ok": 2} and state["output"] == {}
    assert await page.evaluate("[safety.role, safety.you]") == ["viewer", None]
    # nothing was sent as a driver
    assert await page.evaluate("out.filter((m) => m.type === 'control').length") == 0
    with pytest.raises(Exception, match="Safety needs a connection"):
        await page.evaluate("new rtcbot.Safety({})")
