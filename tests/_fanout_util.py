"""Helpers of the fan-out tests: one robot process side with N connections, N viewers (real
aiortc peers over loopback), and frame-index recorders."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

from _media_util import negotiate
from rtcbot import RTCConnection
from rtcbot.devices.sources import TestPattern


class IndexRecorder:
    """A plain-callable subscriber: keeps the index coded in every frame it is given (None for a
    frame whose code cannot be read), and wakes waiters."""

    def __init__(self) -> None:
        self.indices: list[int | None] = []
        self._changed = asyncio.Event()
        self.paused = False

    def __call__(self, frame: Any) -> None:
        if self.paused:
            return
        self.indices.append(TestPattern.read_index(frame))
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[int | None]:
        """Wait until ``count`` frames were recorded (bounded) and return the indices."""
        async with asyncio.timeout(timeout):
            while len(self.indices) < count:
                self._changed.clear()
                await self._changed.wait()
        return list(self.indices)


class Viewer:
    """One viewer: its connection and what it saw."""

    def __init__(self, robot: RTCConnection, conn: RTCConnection) -> None:
        self.robot = robot
        self.conn = conn
        self.seen = IndexRecorder()


@contextlib.asynccontextmanager
async def robot_with_viewers(
    count: int, setup_robot: Callable[[RTCConnection, int], None]
) -> AsyncIterator[list[Viewer]]:
    """``count`` viewers of one robot: for each, a robot-side connection (set up by
    ``setup_robot(conn, i)`` before negotiation: e.g. ``conn.video.putSubscription(camera)``)
    answering a viewer's offer, as a browser would connect. Closed afterwards."""
    viewers: list[Viewer] = []
    try:
        for i in range(count):
            viewers.append(await add_viewer(setup_robot, i))
        yield viewers
    finally:
        await close_viewers(viewers)


async def add_viewer(setup_robot: Callable[[RTCConnection, int], None], i: int = 0) -> Viewer:
    """One more viewer (see :func:`robot_with_viewers`); close it with :func:`close_viewers`."""
    robot = RTCConnection(rtcConfiguration=[])
    conn = RTCConnection(rtcConfiguration=[])
    viewer = Viewer(robot, conn)
    setup_robot(robot, i)
    conn.video.subscribe(viewer.seen)
    await negotiate(conn, robot)
    return viewer


async def close_viewers(viewers: list[Viewer]) -> None:
    async with asyncio.timeout(15):
        for viewer in viewers:
            viewer.robot.close()
            viewer.conn.close()
        for viewer in viewers:
            await viewer.robot
            await viewer.conn


def check_sequence(indices: list[int | None]) -> list[int]:
    """Every frame readable, strictly increasing; returns the indices."""
    assert None not in indices, indices
    assert all(b > a for a, b in itertools.pairwise(indices)), indices
    return [i for i in indices if i is not None]
