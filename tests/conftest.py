"""Shared test configuration.

Every async test runs on a fresh loop in asyncio debug mode (un-awaited coroutines, callbacks
that hold the loop and non-thread-safe loop calls are reported), with warnings as errors
(pyproject.toml).
"""

from __future__ import annotations

import asyncio

import pytest


@pytest.fixture(autouse=True)
async def _asyncio_debug():
    asyncio.get_running_loop().set_debug(True)
    yield
