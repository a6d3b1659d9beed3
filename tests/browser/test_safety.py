"""The safety gate in `rtcbot demo`, driven from real Chromium pages: E-stop from the button,
the Space key and a scripted gamepad; a second tab that watches, asks and takes over; a reload
that keeps the latch; the slow-down shown on the page."""

# ruff: noqa: E501 -- the JavaScript run in the page keeps its natural line lengths

from __future__ import annotations

import pytest

from browser.conftest import open_page
from browser.test_demo import Demo
from support.browser import wait_for_js

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# A scripted navigator.getGamepads() with one standard pad at index 0; press(j, on) sets button j.
GAMEPAD = """() => {
    const pad = {index: 0, id: "Scripted pad", connected: true, mapping: "standard",
                 timestamp: performance.now(),
                 buttons: [0, 1, 2, 3].map(() => ({pressed: false, value: 0})), axes: [0, 0, 0, 0]};
    navigator.getGamepads = () => [Object.assign({}, pad, {buttons: pad.buttons.map((b) => Object.assign({}, b)), axes: pad.axes.slice()})];
    window.press = (j, on) => { pad.buttons[j] = {pressed: on, value: on ? 1 : 0}; pad.timestamp = performance.now(); };
}"""


def text(page, element_id: str):
    return page.evaluate(f"document.getElementById('{element_id}').textContent")


async def wait_text(page, element_id: str, fragment: str, timeout: float = 10.0) -> str:
    return await wait_for_js(
        page,
        f"(() => {{ const t = document.getElementById('{element_id}').textContent; return t.includes({fragment!r}) && t; }})()",
        timeout=timeout,
    )


async def drive_forward(page, demo: Demo, expect: str = "forward=+1.00") -> None:
    await page.keyboard.down("KeyW")
    await demo.expect(f"control: {expect}")
    await page.keyboard.up("KeyW")
    await demo.expect("control: forward=+0.00")


async def latch_and_release(page, demo: Demo, how, reason: str) -> None:
    await how()
    await demo.expect(f"safety stop: {reason}")
    await wait_text(page, "estop-state", "LATCHED")
    assert reason in await text(page, "estop-state")
    # latched: holding W moves nothing (the page keeps sending; the gate refuses)
    await page.keyboard.down("KeyW")
    await wait_for_js(page, "window.demo.safety.state.refused.estop >= 3")
    await page.keyboard.up("KeyW")
    assert await page.evaluate("window.demo.safety.state.output.forward") == 0
    assert await page.is_visible("#release")
    await page.click("#release")
    await demo.expect("E-stop released by operator")
    await wait_text(page, "estop-state", "released")
    await drive_forward(page, demo)


async def test_estop_from_the_button_the_key_and_a_gamepad_latches_until_released(context):
    async with Demo() as demo:
        page = await open_page(context, demo.url)
        await demo.expect("operator connected")
        await wait_text(page, "role", "You drive")
        await drive_forward(page, demo)
        await latch_and_release(page, demo, lambda: page.click("#estop"), "button (operator 1)")
        await latch_and_release(page, demo, lambda: page.keyboard.press("Space"), "key Space")
        await page.evaluate(GAMEPAD)
        await page.evaluate("press(0, true)")  # the browser shows a pad after a button press
        await wait_for_js(page, "window.demo.safetyClient && navigator.getGamepads()[0].buttons[0].pressed")
        await latch_and_release(page, demo, lambda: page.evaluate("press(1, true)"), "gamepad button 1")
        # one stop callback per latch: three latches, three stops
        assert sum("safety stop:" in line for line in demo.seen) == 3, demo.seen
        assert not page.errors
        await page.close()
        await demo.expect("safety stop: link lost")  # the page went away
        assert await demo.stop() == 0


async def test_a_second_tab_watches_asks_and_is_handed_control_and_an_admin_takes_over(context):
    async with Demo("--admin-token", "boss") as demo:
        first = await open_page(context, demo.url)
        await demo.expect("operator connected (1)")
        await wait_text(first, "role", "You drive")
        second = await open_page(context, demo.url)
        await demo.expect("operator connected (2)")
        await wait_text(second, "role", "You watch (operator 2); operator 1 drives")
        assert await second.is_visible("#ask")
        assert not await second.is_visible("#takeover")  # no admin token in its URL
        # the viewer's keys move nothing
        await second.keyboard.down("KeyW")
        await wait_for_js(second, "window.demo.safety.state !== null")
        await second.keyboard.up("KeyW")
        assert await second.evaluate("window.demo.safetyClient.sent") == 0
        # it asks; the driver sees the request and hands over
        await second.click("#ask")
        await demo.expect("operator 2 asks for control")
        await wait_text(first, "request-text", "Operator 2 asks for control")
        await first.click("#accept")
        await demo.expect("operator 2 drives (handed over)")
        await wait_text(second, "role", "You drive (operator 2)")
        await wait_text(first, "role", "You watch (operator 1); operator 2 drives")
        events = await first.evaluate("window.demo.safety.events.map((e) => e.event)")
        assert "request" in events and "driver" in events
        await drive_forward(second, demo)
        # the watcher can still stop the robot; only the driver releases
        await first.click("#estop")
        await demo.expect("safety stop: button (operator 1)")
        await wait_text(second, "estop-state", "LATCHED")
        assert not await first.is_visible("#release")
        await second.click("#release")
        await demo.expect("E-stop released by operator 2")
        # an admin takes over at once
        admin = await open_page(context, demo.url + "?admin=boss")
        await demo.expect("operator connected (3)")
        await wait_text(admin, "role", "You watch (operator 3)")
        await admin.click("#takeover")
        await demo.expect("operator 3 drives (admin take-over)")
        await wait_text(second, "role", "operator 3 drives")
        try:
            await drive_forward(admin, demo)
        finally:
            print("\n".join(demo.seen[-15:]))
            print(await admin.evaluate("JSON.stringify([window.demo.safety, window.demo.safetyClient.sent, document.hidden])"))
        for page in (first, second, admin):
            assert not page.errors
            await page.close()
        assert await demo.stop() == 0


async def test_a_reload_keeps_the_latch(context):
    async with Demo() as demo:
        page = await open_page(context, demo.url)
        await demo.expect("operator connected (1)")
        await wait_text(page, "role", "You drive")
        await page.click("#estop")
        await demo.expect("safety stop: button")
        await page.reload()
        await demo.expect("operator connected (2)")
        await wait_text(page, "role", "You drive (operator 2)", timeout=15)
        await wait_text(page, "estop-state", "LATCHED: button (operator 1)")
        await page.keyboard.down("KeyW")
        await wait_for_js(page, "window.demo.safety.state.refused.estop >= 2")
        await page.keyboard.up("KeyW")
        await page.click("#release")
        await demo.expect("E-stop released by operator 2")
        await drive_forward(page, demo)
        assert not page.errors
        await page.close()
        assert await demo.stop() == 0


async def test_a_slow_link_scales_the_speed_down_and_the_page_says_why(context):
    # any latency above 1 ms counts as slow: the page's measured latency always is
    async with Demo("--slow-ms", "1", "--stop-ms", "100000") as demo:
        page = await open_page(context, demo.url)
        await demo.expect("operator connected")
        await demo.expect("safety: slow (scale 0.5")
        line = await wait_text(page, "slowdown", "Slowed to 50 %")
        assert "glass-to-glass" in line or "rtt" in line or "command age" in line
        await drive_forward(page, demo, expect="forward=+0.50")
        assert not [line for line in demo.seen if "forward=+1.00" in line]
        assert not page.errors
        await page.close()
        assert await demo.stop() == 0
