"""rtcbot.js Keyboard (real key presses through Playwright) and Gamepad (a scripted
navigator.getGamepads returning fresh snapshots or live objects)."""

# ruff: noqa: E501 -- the JavaScript run in the page keeps its natural line lengths

from __future__ import annotations

import pytest

from support.browser import wait_for_js

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

KEYBOARD = """(capture) => {
    window.kb = new rtcbot.Keyboard(capture === null ? undefined : {capture});
    window.keys = [];
    kb.subscribe((e) => keys.push(e));
    // what the page sees after rtcbot's listener ran
    window.prevented = {};
    window.addEventListener("keydown", (e) => { prevented[e.key] = e.defaultPrevented; });
    window.t0 = Date.now();
}"""


async def test_keyboard_events_have_fields_and_real_timestamps(page):
    await page.evaluate(KEYBOARD, None)
    await page.keyboard.press("h")
    await page.keyboard.press("Shift+H")
    keys = await wait_for_js(page, "keys.length >= 6 && keys")
    t1 = await page.evaluate("Date.now()")
    t0 = await page.evaluate("t0")
    down = [k for k in keys if k["type"] == "keydown"]
    up = [k for k in keys if k["type"] == "keyup"]
    assert [k["key"] for k in down] == ["h", "Shift", "H"]
    assert [k["key"] for k in up] == ["h", "H", "Shift"]
    first = keys[0]
    assert set(first) == {
        "type",
        "altKey",
        "shiftKey",
        "ctrlKey",
        "metaKey",
        "key",
        "code",
        "keyCode",
        "timestamp",
    }
    assert first["code"] == "KeyH" and first["keyCode"] == 72 and first["shiftKey"] is False
    assert down[2]["shiftKey"] is True
    stamps = [k["timestamp"] for k in keys]
    assert all(isinstance(t, float | int) for t in stamps)
    assert all(t0 - 1 <= t <= t1 + 1 for t in stamps), (t0, stamps, t1)
    assert stamps == sorted(stamps)


async def test_keyboard_suppresses_auto_repeat(page):
    await page.evaluate(KEYBOARD, None)
    await page.keyboard.down("w")
    await page.keyboard.down("w")  # auto-repeat: event.repeat is true
    await page.keyboard.down("w")
    await page.keyboard.up("w")
    keys = await wait_for_js(page, "keys.some((k) => k.type === 'keyup') && keys")
    assert [(k["type"], k["key"]) for k in keys] == [("keydown", "w"), ("keyup", "w")]


async def test_keyboard_prevents_default_only_for_captured_keys(page):
    await page.evaluate(KEYBOARD, ["ArrowDown", "KeyS"])
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("s")  # captured by code
    await page.keyboard.press("ArrowUp")
    await wait_for_js(page, "keys.length === 6")
    assert await page.evaluate("prevented") == {"ArrowDown": True, "s": True, "ArrowUp": False}
    # observable effect: a captured ArrowDown does not scroll, an uncaptured PageDown does
    await page.keyboard.press("ArrowDown")
    assert await page.evaluate("window.scrollY") == 0
    await page.keyboard.press("PageDown")
    await wait_for_js(page, "window.scrollY > 0")


async def test_typing_in_fields_is_unaffected_and_not_sent(page):
    await page.evaluate(KEYBOARD, ["a", "b", "Backspace", " "])
    await page.click("#field")
    await page.keyboard.type("a b")
    await page.keyboard.press("Backspace")
    await page.keyboard.type("ab")
    assert await page.evaluate("document.getElementById('field').value") == "a ab"
    await page.click("#area")
    await page.keyboard.type("ba")
    assert await page.evaluate("document.getElementById('area').value") == "ba"
    await page.click("#editable")
    await page.keyboard.press("End")
    await page.keyboard.type(" ab")
    assert await page.evaluate("document.getElementById('editable').textContent") == "edit me ab"
    assert await page.evaluate("keys") == []
    # back on the page body, keys are sent and captured again
    await page.evaluate("document.activeElement.blur()")
    await page.keyboard.press("a")
    keys = await wait_for_js(page, "keys.length === 2 && keys")
    assert [k["type"] for k in keys] == ["keydown", "keyup"]


async def test_keyboard_several_subscribers_blur_release_and_close(page):
    await page.evaluate(KEYBOARD, None)
    await page.evaluate(
        "window.other = []; kb.subscribe((e) => other.push(e.type + ':' + e.key)); 0"
    )
    await page.keyboard.down("d")
    await wait_for_js(page, "keys.length === 1")
    # the window loses focus while "d" is held: a keyup is emitted (the robot must not keep going)
    await page.evaluate("window.dispatchEvent(new FocusEvent('blur'))")
    assert await page.evaluate("other") == ["keydown:d", "keyup:d"]
    assert await page.evaluate("kb.pressed") == []
    await page.keyboard.up("d")  # the real keyup of a released key is still reported
    await page.evaluate("kb.close()")
    await page.keyboard.press("x")
    await page.evaluate("new Promise((r) => requestAnimationFrame(() => r()))")
    keys = await page.evaluate("keys.map((k) => k.type + ':' + k.key)")
    assert keys == ["keydown:d", "keyup:d", "keyup:d"]
    assert await page.evaluate("kb.closed") is True


# A scripted navigator.getGamepads(): window.pads[i] describes the pad in slot i; mode "fresh"
# returns new objects on every call (Chromium), "live" returns the same mutated objects
# (Firefox). window.polls counts the calls.
GAMEPADS = """(mode) => {
    window.mode = mode;
    window.polls = 0;
    const make = (index) => ({index, id: "Scripted pad " + index, connected: true,
                              mapping: "standard", timestamp: performance.now(),
                              buttons: [0, 1, 2, 3].map(() => ({pressed: false, value: 0})),
                              axes: [0, 0, 0, 0]});
    window.live = [make(3), null];   // slot 0 holds the pad whose index is 3
    const copy = (p) => p && Object.assign({}, p, {buttons: p.buttons.map((b) => Object.assign({}, b)),
                                                  axes: p.axes.slice()});
    navigator.getGamepads = () => { polls++; return mode === "live" ? live : live.map(copy); };
    window.press = (j, on) => { live[0].buttons[j].pressed = on; live[0].buttons[j].value = on ? 1 : 0;
                                live[0].timestamp = performance.now(); };
    window.move = (j, v) => { live[0].axes[j] = v; live[0].timestamp = performance.now(); };
    rtcbot.setGamepadRate(100);
}"""


@pytest.mark.parametrize("mode", ["fresh", "live"])
async def test_gamepad_events_by_index_for_fresh_and_live_objects(page, mode):
    await page.evaluate(GAMEPADS, mode)
    await page.evaluate(
        """() => {
            window.g3 = new rtcbot.Gamepad(3, {state: true});
            window.g0 = new rtcbot.Gamepad(0);
            window.ev3 = []; window.ev0 = [];
            g3.subscribe((e) => ev3.push(e));
            g0.subscribe((e) => ev0.push(e));
        }"""
    )
    await page.evaluate("g3.onReady()")  # the pad was seen
    await wait_for_js(page, "ev3.length >= 1")  # the first state snapshot
    await page.evaluate("press(1, true); move(2, -0.5)")
    await wait_for_js(page, "ev3.filter((e) => e.type !== 'state').length >= 2")
    await page.evaluate("press(1, false)")
    await wait_for_js(page, "ev3.filter((e) => e.type !== 'state').length >= 3")
    events = await page.evaluate("ev3")
    changes = [e for e in events if e["type"] != "state"]
    assert changes == [
        {"type": "btn1", "value": True},
        {"type": "axis2", "value": -0.5},
        {"type": "btn1", "value": False},
    ]
    states = [e for e in events if e["type"] == "state"]
    assert states[0]["buttons"] == [False] * 4 and states[0]["index"] == 3
    assert states[1]["buttons"] == [False, True, False, False]
    assert states[1]["axes"] == [0, 0, -0.5, 0]
    assert states[-1]["buttons"] == [False] * 4
    # the pad with browser index 0 does not exist: g0 saw nothing, though it was made second
    assert await page.evaluate("[ev0, g0.connected, g3.connected]") == [[], False, True]
    # the state property is a copy, not the browser's object
    assert await page.evaluate("g3.state !== live[0] && g3.state.axes[2]") == -0.5


async def test_gamepad_disconnect_releases_and_close_stops_polling(page):
    await page.evaluate(GAMEPADS, "fresh")
    await page.evaluate(
        "window.g = new rtcbot.Gamepad(3); window.ev = []; g.subscribe((e) => ev.push(e)); 0"
    )
    await page.evaluate("g.onReady()")
    await page.evaluate("press(0, true); move(1, 0.75)")
    await wait_for_js(page, "ev.length >= 2")
    assert await page.evaluate("ev") == [
        {"type": "btn0", "value": True},
        {"type": "axis1", "value": 0.75},
    ]
    await page.evaluate("live[0] = null")  # unplugged
    await wait_for_js(page, "ev.length === 4")
    assert await page.evaluate("ev.slice(2)") == [
        {"type": "btn0", "value": False},
        {"type": "axis1", "value": 0},
    ]
    assert await page.evaluate("g.connected") is False
    polls = await page.evaluate(
        """async () => {
            g.close();
            const before = polls;
            // at 100 polls/s, a running poller would call getGamepads ~20 times meanwhile
            await new Promise((r) => setTimeout(r, 200));
            return [before, polls];
        }"""
    )
    assert polls[0] == polls[1]
    with pytest.raises(Exception, match="rateHz"):
        await page.evaluate("rtcbot.setGamepadRate(0)")
