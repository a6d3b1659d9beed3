"""The multiple-connections tutorial (examples/multiconnect), run as a user would: several tabs
watch at once, a reload reconnects, a closed tab leaves; with rtcbot's helper, the same plus a
token."""

from __future__ import annotations

import re

import pytest

from support.tutorial import Program, check_live_pattern, open_tutorial_page, watch_video

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

VIEWERS = r"^A viewer (joined|left); viewers: (\d+)$"

# Frames the page's connection has decoded so far (Chromium decodes the video of every tab, but
# paints only the tab in front: background tabs run requestVideoFrameCallback about once a
# second, so their decoding is what shows that they receive the video).
FRAMES_DECODED = """async () => {
    for (const s of (await conn.peerConnection.getStats()).values())
        if (s.type === "inbound-rtp" && s.kind === "video") return s.framesDecoded || 0;
    return 0;
}"""


async def watch_in_front(page, seconds: float) -> None:
    """Bring ``page`` to the front and check that it plays the live test pattern."""
    await page.bring_to_front()
    check_live_pattern(await watch_video(page, seconds), 320, 240)


async def viewer_events(program: Program, count: int) -> list[tuple[str, int]]:
    """The next ``count`` joined/left lines, as (what, number of viewers)."""
    events = []
    for _ in range(count):
        match = await program.stdout.expect(VIEWERS, timeout=15)
        events.append((match.group(1), int(match.group(2))))
    return events


def page_path(program: Program) -> str:
    """The page's path: with the token that served.py prints, if it printed one."""
    for line in program.stdout.lines:
        match = re.search(r"Open http://localhost:\d+(/\?token=\S+)$", line)
        if match:
            return match.group(1)
    return "/"


@pytest.mark.parametrize("example", ["multiconnect.py", "served.py"])
async def test_several_tabs_watch_and_a_reload_reconnects(context, example):
    async with Program(f"multiconnect/{example}") as program:
        path = page_path(program)
        pages = []
        for n in range(3):
            page = await open_tutorial_page(context, program, path)
            await page.console.expect(r"^Ready!$", timeout=15)
            assert await viewer_events(program, 1) == [("joined", n + 1)]
            await program.stdout.expect(r"^Message from a viewer: Hello from a new tab!$")
            pages.append(page)
        # all three receive the live video at the same time, and each plays it in front
        before = [await page.evaluate(FRAMES_DECODED) for page in pages]
        for page in pages:
            await watch_in_front(page, 0.7)
        after = [await page.evaluate(FRAMES_DECODED) for page in pages]
        assert all(b - a >= 40 for a, b in zip(before, after, strict=True)), (before, after)

        # a reload: the old connection leaves, the new one joins, and the video plays again
        await pages[0].reload()
        await pages[0].console.expect(r"^Ready!$", timeout=15)
        events = await viewer_events(program, 2)
        assert sorted(what for what, _ in events) == ["joined", "left"]
        assert events[-1][1] == 3
        await watch_in_front(pages[0], 0.7)

        # a closed tab leaves at once (the page closes its connection as it goes)
        await pages[1].close(run_before_unload=True)
        assert await viewer_events(program, 1) == [("left", 2)]
        await watch_in_front(pages[2], 0.5)
        for page in (pages[0], pages[2]):
            assert not page.errors


async def test_served_refuses_a_page_without_the_token(context):
    async with Program("multiconnect/served.py") as program:
        page = await open_tutorial_page(context, program, "/")
        await page.console.expect(r"^Refused: 401 ", timeout=15)
        assert not any(re.match(VIEWERS, line) for line in program.stdout.lines)
