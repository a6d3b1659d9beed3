"""Helpers of the media tests: synthetic frames that carry their index, a synthetic tone, and two
RTCConnections connected over loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np

BITS = 12


def indexed_frame(index: int, height: int = 240, width: int = 320) -> np.ndarray:
    """A BGR frame whose top half shows ``index`` as 12 black/white columns (robust to lossy
    compression), over a moving gradient in the bottom half."""
    frame = np.empty((height, width, 3), np.uint8)
    column = width // BITS
    top = frame[: height // 2]
    top[:] = 0
    for bit in range(BITS):
        if (index >> bit) & 1:
            top[:, bit * column : (bit + 1) * column] = 255
    ramp = ((np.arange(width) * 2 + index * 7) % 256).astype(np.uint8)
    frame[height // 2 :] = ramp[None, :, None]
    frame[height // 2 :, :, 1] = 255 - ramp[None, :]
    return frame


def frame_index(frame: np.ndarray) -> int:
    """The index drawn by :func:`indexed_frame` (read from the centre of each column)."""
    height, width = frame.shape[:2]
    column = width // BITS
    index = 0
    for bit in range(BITS):
        block = frame[
            height // 8 : 3 * height // 8,
            bit * column + column // 4 : (bit + 1) * column - column // 4,
        ]
        if block.mean() > 128:
            index |= 1 << bit
    return index


def tone(frequency: float, seconds: float, rate: int = 48000, amplitude: float = 0.5) -> np.ndarray:
    """A mono float64 sine, shape ``(samples,)``."""
    t = np.arange(int(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * frequency * t)


def dominant_frequency(samples: np.ndarray, rate: int = 48000) -> float:
    """The strongest frequency (Hz) in a mono signal."""
    windowed = samples * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(windowed))
    spectrum[:5] = 0  # ignore DC
    return float(np.argmax(spectrum) * rate / len(samples))


async def negotiate(offerer: Any, answerer: Any) -> None:
    """Offer/answer between two RTCConnections (bounded)."""
    async with asyncio.timeout(10):
        offer = await offerer.getLocalDescription()
        answer = await answerer.getLocalDescription(offer)
        await offerer.setRemoteDescription(answer)


@contextlib.asynccontextmanager
async def connection_pair(
    setup: Callable[[Any, Any], None] | None = None,
) -> AsyncIterator[tuple[Any, Any]]:
    """Two connected RTCConnections (offerer, answerer) over loopback, closed afterwards.
    ``setup(offerer, answerer)`` runs before negotiation (add tracks, subscribe...)."""
    from rtcbot import RTCConnection

    a = RTCConnection(rtcConfiguration=[])
    b = RTCConnection(rtcConfiguration=[])
    try:
        if setup is not None:
            setup(a, b)
        await negotiate(a, b)
        yield a, b
    finally:
        async with asyncio.timeout(10):
            await a.close()
            await b.close()


async def feed_frames(
    consumer: Any, count: int, fps: float = 30.0, start: int = 0, **size: int
) -> None:
    """Put ``count`` indexed frames into ``consumer`` at ``fps`` (a producer's pace, not a
    synchronisation)."""
    loop = asyncio.get_running_loop()
    begin = loop.time()
    for i in range(count):
        consumer.put_nowait(indexed_frame(start + i, **size))
        delay = begin + (i + 1) / fps - loop.time()
        await asyncio.sleep(max(0.0, delay))
