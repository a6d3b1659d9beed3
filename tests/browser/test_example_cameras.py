"""The several-cameras example (examples/cameras/cameras.py), run as a user would: the page lists
the robot's three cameras by name, and choosing one in the list shows that camera, live."""

from __future__ import annotations

import asyncio
import re

import pytest

from support.tutorial import Program, check_live_pattern, open_tutorial_page, watch_video

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# The example's cameras, by name: each has its own size, so the video shows which one plays.
SIZES = {"front": (320, 240), "rear": (160, 120), "arm": (240, 180)}


def page_path(program: Program) -> str:
    """The page's path, with the token that the example prints."""
    for line in program.stdout.lines:
        match = re.search(r"Open http://localhost:\d+(/\?token=\S+)$", line)
        if match:
            return match.group(1)
    raise AssertionError(f"no URL printed: {program.stdout.lines}")


async def options(page) -> list[str]:
    return await page.evaluate(
        "() => Array.from(document.querySelectorAll('#camera option'), (o) => o.value)"
    )


async def test_the_page_lists_three_cameras_and_shows_the_chosen_one(context):
    async with Program("cameras/cameras.py") as program:
        page = await open_tutorial_page(context, program, page_path(program))
        await page.console.expect(r"^Ready!$", timeout=15)
        await program.stdout.expect(r"^A viewer joined$")
        async with asyncio.timeout(10):
            while len(await options(page)) < 3:
                await page.wait_for_function(
                    "(n) => document.querySelectorAll('#camera option').length > n",
                    arg=len(await options(page)),
                )
        assert sorted(await options(page)) == sorted(SIZES)
        listed = [line for line in page.console.lines.lines if line.startswith("Cameras: ")]
        assert sorted(listed[-1].removeprefix("Cameras: ").split(", ")) == sorted(SIZES)

        # the first camera to arrive is shown; then each one chosen in the list
        first = await page.evaluate("() => document.querySelector('#camera').value")
        check_live_pattern(await watch_video(page, 0.7), *SIZES[first])
        for name in sorted(SIZES, key=lambda n: n == first):
            await page.select_option("#camera", name)
            await page.console.expect(rf"^Showing {name}$")
            samples = await watch_video(page, 0.7)
            # (the first painted frames may still be the previous camera's)
            settled = [s for s in samples if (s["width"], s["height"]) == SIZES[name]]
            assert len(settled) >= len(samples) - 3, samples
            check_live_pattern(settled, *SIZES[name])
        assert not page.errors
        await page.close()
