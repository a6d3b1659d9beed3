"""Fixtures for the browser tests: one headless Chromium per session (Debian's
``/usr/bin/chromium`` driven by Python Playwright, with a fake camera and microphone), one
static site serving rtcbot.js / rtcbot.mjs and the test pages, and a fresh page (its own
browser context) per test that fails the test on any uncaught page error.

Tests here share the session's event loop with the browser: mark modules with
``pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio

from support.browser import CHROMIUM_PATH, launch_chromium, serve


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser():
    """A headless Chromium for the whole session."""
    if not Path(CHROMIUM_PATH).exists():  # noqa: ASYNC240 - once per session
        pytest.skip(f"no Chromium at {CHROMIUM_PATH} (apt-get install chromium)")
    async_api = pytest.importorskip("playwright.async_api")
    async with async_api.async_playwright() as playwright:
        chromium = await launch_chromium(playwright, fake_media=True)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def site():
    """The static site (see ``support.browser.rtcbot_routes``)."""
    async with serve() as running:
        yield running


class PageErrors(list):
    """Uncaught errors of a page (``pageerror`` events)."""


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser):
    """A fresh browser context (its own cookies, storage and permissions)."""
    ctx = await browser.new_context()
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        await ctx.close()


async def open_page(context, url: str):
    """A new page of ``context`` at ``url``; its uncaught errors collect in ``page.errors``."""
    page = await context.new_page()
    errors = PageErrors()
    page.on("pageerror", lambda error: errors.append(error))
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(url)
    return page


@pytest_asyncio.fixture(loop_scope="session")
async def page(context, site):
    """A page with rtcbot.js loaded as a classic script (``/classic.html``). The test fails if
    the page had an uncaught error."""
    p = await open_page(context, site.url("/classic.html"))
    yield p
    assert not p.errors, f"uncaught errors in the page: {p.errors}"


@pytest.fixture
def new_page(context, site):
    """Open more pages in the same context: ``await new_page("/classic.html")``."""

    async def make(path: str = "/classic.html"):
        return await open_page(context, site.url(path))

    return make
