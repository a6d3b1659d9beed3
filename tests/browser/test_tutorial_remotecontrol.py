"""The remote-control tutorial (examples/remotecontrol), run as a user would: keys typed in the
page and a (scripted) gamepad reach Python, and the RC program follows W/A/S/D, shows the
video, and stops the robot when the page stops talking."""

# ruff: noqa: E501 -- the JavaScript run in the page keeps its natural line lengths

from __future__ import annotations

import ast
import time

import pytest

from support.tutorial import Program, check_live_pattern, open_tutorial_page, watch_video

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def printed(program: Program, prefix: str, timeout: float = 10.0):
    """The next value Python printed after ``prefix`` (a dict, read back with literal_eval)."""
    match = await program.stdout.expect(rf"^{prefix}(\{{.*\}})$", timeout)
    return ast.literal_eval(match.group(1))


async def test_keys_typed_in_the_page_are_printed_by_python(context):
    async with Program("remotecontrol/keyboard.py") as program:
        page = await open_tutorial_page(context, program)
        await page.console.expect(r"^Ready!$", timeout=15)
        before = time.time() * 1000
        await page.keyboard.type("Hi!")
        events = [await printed(program, "key press ") for _ in range(6)]
        assert [(e["type"], e["key"]) for e in events] == [
            ("keydown", "H"), ("keyup", "H"),
            ("keydown", "i"), ("keyup", "i"),
            ("keydown", "!"), ("keyup", "!"),
        ]
        assert events[0]["code"] == "KeyH" and events[0]["keyCode"] == 72
        for e in events:
            assert {"altKey", "shiftKey", "ctrlKey", "metaKey"} <= e.keys()
            # a real time stamp (ms since 1970), taken when the key was pressed
            assert before - 1000 <= e["timestamp"] <= time.time() * 1000 + 1000
        assert not page.errors


# A gamepad for the page: navigator.getGamepads() returns a fresh copy of window.pad (as
# Chromium does), and window.press / window.move change it.
SCRIPTED_GAMEPAD = """
window.pad = {index: 0, id: "Scripted pad", connected: true, mapping: "standard",
              timestamp: 0, buttons: [0, 1, 2, 3].map(() => ({pressed: false, touched: false, value: 0})),
              axes: [0, 0, 0, 0]};
navigator.getGamepads = () => [Object.assign({}, pad, {buttons: pad.buttons.map((b) => Object.assign({}, b)),
                                                        axes: pad.axes.slice()})];
window.press = (j, on) => { pad.buttons[j] = {pressed: on, touched: on, value: on ? 1 : 0};
                            pad.timestamp = performance.now(); };
window.move = (j, v) => { pad.axes[j] = v; pad.timestamp = performance.now(); };
"""


async def test_gamepad_changes_are_printed_by_python(context):
    await context.add_init_script(SCRIPTED_GAMEPAD)
    async with Program("remotecontrol/gamepad.py") as program:
        page = await open_tutorial_page(context, program)
        await page.console.expect(r"^Ready!$", timeout=15)
        await page.evaluate("press(0, true)")
        assert await printed(program, "gamepad ") == {"type": "btn0", "value": True}
        await page.evaluate("move(1, -0.28)")
        assert await printed(program, "gamepad ") == {"type": "axis1", "value": -0.28}
        await page.evaluate("press(0, false); move(1, 0.5)")
        changes = [await printed(program, "gamepad ") for _ in range(2)]
        assert sorted(changes, key=lambda c: c["type"]) == [
            {"type": "axis1", "value": 0.5}, {"type": "btn0", "value": False},
        ]
        assert not page.errors


async def test_rc_follows_the_keys_shows_video_and_stops_when_the_page_goes_silent(context):
    async with Program("remotecontrol/rc.py") as program:
        page = await open_tutorial_page(context, program)
        await page.console.expect(r"^Ready!$", timeout=15)
        steps = [
            ("down", "w", {"forward": 1, "leftright": 0}),
            ("down", "a", {"forward": 1, "leftright": -1}),
            ("up", "w", {"forward": 0, "leftright": -1}),
            ("down", "s", {"forward": -1, "leftright": -1}),
            ("up", "a", {"forward": -1, "leftright": 0}),
            ("up", "s", {"forward": 0, "leftright": 0}),
            ("down", "d", {"forward": 0, "leftright": 1}),
        ]
        for action, key, expected in steps:
            await getattr(page.keyboard, action)(key)
            assert await printed(program, "") == expected
        # Holding D while watching the video for a second: the page keeps the robot going
        # (it says it is alive 5 times a second), and the video is the live test pattern.
        check_live_pattern(await watch_video(page, 1.0), 320, 240)
        assert not any("stopping" in line for line in program.stdout.lines)
        # Now the page's JavaScript freezes (paused in the debugger) with D still held: the
        # messages stop, and within half a second the robot stops by itself.
        cdp = await context.new_cdp_session(page)
        await cdp.send("Debugger.enable")
        await cdp.send("Debugger.pause")
        await program.stdout.expect(r"^No control messages for 0.5 s: stopping$", timeout=5)
        assert await printed(program, "") == {"forward": 0, "leftright": 0}
        await cdp.send("Debugger.resume")
        await cdp.detach()
        await page.keyboard.up("d")
        assert not page.errors
