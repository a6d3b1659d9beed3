"""The WebRTC basics tutorial (examples/webrtc), run as a user would: the program in its own
process, its page in headless Chromium, checked by what each side prints."""

from __future__ import annotations

import pytest

from support.tutorial import Program, open_tutorial_page

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_basic_server_page_logs_the_click(context):
    async with Program("webrtc/basicserver.py") as program:
        page = await open_tutorial_page(context, program)
        await page.click("#mybutton")
        await page.console.expect(r"^I was just clicked!$")
        assert not page.errors


async def test_button_click_reaches_python(context):
    async with Program("webrtc/dataconnection.py") as program:
        page = await open_tutorial_page(context, program)
        await page.console.expect(r"^Ready!$", timeout=15)
        for _ in range(3):
            await page.click("#mybutton")
        for _ in range(3):
            await program.stdout.expect(r"^Got message: Button Clicked!$")
        assert not page.errors


async def test_json_ping_pong_arrive_as_values(context):
    async with Program("webrtc/jsonbackandforth.py") as program:
        page = await open_tutorial_page(context, program)
        await page.console.expect(r"^Ready!$", timeout=15)
        await page.click("#mybutton")
        # Python indexed msg["data"]: the page's object arrived as a dict
        await program.stdout.expect(r"^Got message: ping$")
        message = await page.console.expect(r"^Received from python:")
        assert len(message.args) == 2
        # ... and Python's dict arrived in the page as an object, not as JSON text
        assert await message.args[1].evaluate("(m) => typeof m") == "object"
        assert await message.args[1].json_value() == {"data": "pong"}
        assert not page.errors
