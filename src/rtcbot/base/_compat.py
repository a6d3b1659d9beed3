"""What rtcbot needs from Python 3.11's asyncio, on Python 3.10 too."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

__all__ = ["TIMEOUT_ERRORS", "timeout"]

#: Catch these for a timeout: on Python 3.10 ``asyncio.TimeoutError`` (raised by
#: ``asyncio.wait_for`` and aiohttp) is not the builtin ``TimeoutError``; on 3.11+ it is.
TIMEOUT_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, asyncio.TimeoutError)

if sys.version_info >= (3, 11):
    from asyncio import timeout
else:  # pragma: no cover - exercised on Python 3.10

    class timeout:
        """``async with timeout(seconds):`` -- cancel the block after ``seconds`` (None: never)
        and raise the builtin ``TimeoutError`` instead, like Python 3.11's asyncio.timeout."""

        def __init__(self, delay: float | None) -> None:
            self._delay = delay
            self._handle: asyncio.TimerHandle | None = None
            self._expired = False

        async def __aenter__(self) -> timeout:
            if self._delay is not None:
                task = asyncio.current_task()
                self._handle = asyncio.get_running_loop().call_later(
                    max(0.0, self._delay), self._expire, task
                )
            return self

        def _expire(self, task: Any) -> None:
            self._expired = True
            task.cancel()

        async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
            if self._handle is not None:
                self._handle.cancel()
            if self._expired and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc
            return False
