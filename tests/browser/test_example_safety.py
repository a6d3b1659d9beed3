"""The safety example (examples/safety/robot.py), run as a user would: a page drives through
the gate, the E-stop latches for everyone until the driver releases it, a second tab watches
and is handed control, and the motors stop when the driver's page goes away."""

from __future__ import annotations

import pytest

from support.browser import wait_for_js
from support.tutorial import Program, open_tutorial_page

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def state_says(page, text: str, timeout: float = 10.0) -> None:
    await wait_for_js(page, f"document.getElementById('state').textContent.includes({text!r})",
                      timeout=timeout)


async def test_the_safety_example_drives_latches_and_hands_over(context):
    async with Program("safety/robot.py") as program:
        page = await open_tutorial_page(context, program)
        await page.console.expect(r"^Ready!$", timeout=15)
        await state_says(page, "driver (operator 1); running")
        await page.keyboard.down("KeyW")
        await page.keyboard.down("KeyD")
        # ramped (rate 2/s), then full forward; the turn is clamped to its 0.5 limit
        await program.stdout.expect(r"^motors \{'forward': 1\.0, 'turn': 0\.5\}$")
        await page.keyboard.up("KeyD")
        await page.keyboard.up("KeyW")
        await program.stdout.expect(r"^motors \{'forward': 0\.0, 'turn': 0\.0\}$")
        # Space latches the E-stop: the stop callback runs, holding W moves nothing
        await page.keyboard.press("Space")
        await program.stdout.expect(r"^STOP: key Space \(operator 1\)$")
        await state_says(page, "E-STOP: key Space")
        # a second tab watches and sees the latch
        viewer = await open_tutorial_page(context, program)
        await viewer.console.expect(r"^Ready!$", timeout=15)
        await state_says(viewer, "viewer (operator 2); E-STOP")
        await page.click("#release")
        await state_says(viewer, "running")
        # it asks, the driver hands over; the new driver's keys drive
        await viewer.click("#ask")
        await state_says(page, "operator 2 asks for control")
        await page.click("#accept")
        await state_says(viewer, "driver (operator 2)")
        await viewer.keyboard.down("KeyS")
        await program.stdout.expect(r"^motors \{'forward': -1\.0, 'turn': 0\.0\}$")
        # the driver's page closes while driving: the E-stop latches, the motors stop
        await viewer.close()
        await program.stdout.expect(r"^STOP: link lost", timeout=10)
        await state_says(page, "driver (operator 1); E-STOP")
        assert not page.errors
        await page.close()
