"""Helpers for the browser tutorial tests (``test_tutorial_*.py``): run a tutorial program from
``examples/`` as a user would (a subprocess on a free port), read what it prints, open its page
in headless Chromium and read what the page logs and shows.

This module holds no tests; the tutorial test modules import it (``tests/browser`` is on
``sys.path`` when pytest collects them).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: How long a tutorial program may take to start serving (imports aiortc, maybe a camera).
START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port that was free a moment ago (on all interfaces, as the programs listen)."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


class Lines:
    """Lines of text arriving over time, with a wait for the next one that matches."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.cursor = 0  # expect() searches from here and moves past its match
        self._new = asyncio.Event()

    def add(self, line: str) -> None:
        self.lines.append(line)
        self._new.set()

    def _find(self, regex: re.Pattern[str]) -> re.Match[str] | None:
        for i in range(self.cursor, len(self.lines)):
            match = regex.search(self.lines[i])
            if match:
                self.cursor = i + 1
                return match
        return None

    async def expect(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """The next line (after the previous match) that matches ``pattern``; waits at most
        ``timeout`` s, then fails the test showing what arrived."""
        regex = re.compile(pattern)
        try:
            async with asyncio.timeout(timeout):
                while (match := self._find(regex)) is None:
                    self._new.clear()
                    await self._new.wait()
        except TimeoutError:
            recent = "\n".join(self.lines[-20:])
            raise AssertionError(
                f"no line matching {pattern!r} within {timeout} s; last lines:\n{recent}"
            ) from None
        return match

    def skip_to_end(self) -> None:
        """Forget what arrived so far: the next expect() looks only at new lines."""
        self.cursor = len(self.lines)


class Program:
    """A tutorial program (``examples/<relpath>``) running in its own Python process, serving
    on a free port (``PORT``). ``stdout`` and ``stderr`` are :class:`Lines`. Use as ``async
    with Program("webrtc/dataconnection.py") as program:``; leaving the block presses Ctrl+C
    (SIGINT) and checks that the program shut down cleanly (exit status 0, no traceback)."""

    def __init__(
        self, relpath: str, env: dict[str, str] | None = None, drop_env: tuple[str, ...] = ()
    ) -> None:
        self.path = EXAMPLES / relpath
        self.port = free_port()
        self.env = dict(os.environ, PORT=str(self.port), PYTHONUNBUFFERED="1")
        for name in drop_env:
            self.env.pop(name, None)
        self.env.update(env or {})
        self.stdout = Lines()
        self.stderr = Lines()
        self.process: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _read(self, stream: asyncio.StreamReader, lines: Lines) -> None:
        while line := await stream.readline():
            lines.add(line.decode(errors="replace").rstrip("\n"))

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, str(self.path), cwd=self.path.parent, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self.process.stdout, self.stdout)),
            asyncio.create_task(self._read(self.process.stderr, self.stderr)),
        ]
        try:
            await self.stdout.expect(r"Running on http://", timeout=START_TIMEOUT)
        except AssertionError:
            await self.stop(check=False)
            raise AssertionError(
                f"{self.path.name} did not start:\n" + "\n".join(self.stderr.lines[-30:])
            ) from None

    async def stop(self, check: bool = True) -> int:
        """Ctrl+C, then wait (15 s at most) for the program to end; return its exit status.
        With ``check``, fail unless it exited with 0 and printed no traceback."""
        process = self.process
        assert process is not None
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
                if check:
                    raise AssertionError(
                        f"{self.path.name} did not stop within 15 s of Ctrl+C"
                    ) from None
        async with asyncio.timeout(5):
            await asyncio.gather(*self._readers)
        errors = "\n".join(self.stderr.lines)
        if check:
            assert process.returncode == 0, f"exit status {process.returncode}:\n{errors}"
            assert "Traceback" not in errors, errors
            assert "Task exception was never retrieved" not in errors, errors
        return process.returncode or 0

    async def __aenter__(self) -> Program:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(check=exc[0] is None)


class Console:
    """The console messages of a page: ``texts`` (their text) and ``expect(pattern)``."""

    def __init__(self, page: Any) -> None:
        self.messages: list[Any] = []
        self.lines = Lines()
        page.on("console", self._on_message)

    def _on_message(self, message: Any) -> None:
        self.messages.append(message)
        self.lines.add(message.text)

    async def expect(self, pattern: str, timeout: float = 10.0) -> Any:
        """The next console message whose text matches ``pattern``."""
        await self.lines.expect(pattern, timeout)
        return self.messages[self.lines.cursor - 1]


async def open_tutorial_page(context: Any, program: Program, path: str = "/") -> Any:
    """A new page at the program's ``path``, with ``page.console`` (a :class:`Console`) and
    ``page.errors`` (uncaught page errors)."""
    page = await context.new_page()
    page.console = Console(page)  # type: ignore[attr-defined]
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(program.url(path))
    return page


# A function run in the page: reads the frame index that rtcbot's TestPattern codes in the
# bottom stripe of each frame (mirrors rtcbot.devices.sources: 26 cells -- white guard, 24 bits
# most significant first, black guard -- in a band near the bottom). Returns null when the
# stripe is not readable.
READ_INDEX_JS = """
function readIndex(video, canvas) {
    const w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) return null;
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    const ctx = canvas.getContext("2d", {willReadFrequently: true});
    ctx.drawImage(video, 0, 0, w, h);
    const CELLS = 26;
    const scale = Math.max(1, Math.min(Math.floor(h / 120), Math.floor(w / 80)));
    const codeH = Math.max(4, Math.floor(h / 40));
    const cellW = Math.floor(w / CELLS);
    const codeY = h - codeH - Math.max(1, scale);
    const codeX = Math.floor((w - CELLS * cellW) / 2);
    const y0 = codeY + Math.floor(codeH / 4);
    const y1 = codeY + Math.max(Math.floor(codeH * 3 / 4), Math.floor(codeH / 4) + 1);
    const data = ctx.getImageData(0, y0, w, y1 - y0).data;
    const levels = [];
    for (let cell = 0; cell < CELLS; cell++) {
        const x = codeX + cell * cellW;
        const x0 = x + Math.floor(cellW / 4);
        const x1 = x + Math.max(Math.floor(cellW * 3 / 4), Math.floor(cellW / 4) + 1);
        let sum = 0, n = 0;
        for (let row = 0; row < y1 - y0; row++) {
            for (let col = x0; col < x1; col++) {
                const p = (row * w + col) * 4;
                sum += (data[p] + data[p + 1] + data[p + 2]) / 3; n++;
            }
        }
        levels.push(sum / n);
    }
    const white = levels[0], black = levels[CELLS - 1];
    if (white - black < 64) return null;
    const threshold = (white + black) / 2;
    let value = 0;
    for (let i = 1; i < CELLS - 1; i++) value = value * 2 + (levels[i] > threshold ? 1 : 0);
    return value;
}
"""

# Watch the page's first <video> for ``seconds`` (after its first frame) with
# requestVideoFrameCallback: one sample per displayed frame, {now (ms, page clock), index (the
# test pattern's frame index or null), mediaTime (s), width, height, currentTime (s)}.
WATCH_VIDEO_JS = (
    "async ([selector, seconds]) => {"
    + READ_INDEX_JS
    + """
    const video = document.querySelector(selector);
    const canvas = document.createElement("canvas");
    const samples = [];
    await new Promise((resolve) => {
        let start = null;
        const onFrame = (now, meta) => {
            if (start === null) start = now;
            samples.push({now, index: readIndex(video, canvas), mediaTime: meta.mediaTime,
                          width: video.videoWidth, height: video.videoHeight,
                          currentTime: video.currentTime});
            if (now - start < seconds * 1000) video.requestVideoFrameCallback(onFrame);
            else resolve();
        };
        video.requestVideoFrameCallback(onFrame);
    });
    return samples;
}"""
)


async def watch_video(page: Any, seconds: float, selector: str = "video") -> list[dict[str, Any]]:
    """Samples of the displayed frames of ``selector`` for ``seconds`` (see WATCH_VIDEO_JS)."""
    async with asyncio.timeout(seconds + 20):
        return await page.evaluate(WATCH_VIDEO_JS, [selector, seconds])


def check_live_pattern(samples: list[dict[str, Any]], width: int, height: int) -> list[int]:
    """Assert that ``samples`` show the Python test pattern, live: the right size, readable
    frame indices that only go up and advance as time passes, and a playing clock. Returns the
    indices."""
    assert samples, "no frame was displayed"
    assert {(s["width"], s["height"]) for s in samples} == {(width, height)}
    # (Chromium may paint the very first frame of a new stream before it has its pixels.)
    indices = [s["index"] for s in samples[1:] if s["index"] is not None]
    assert len(indices) >= 0.9 * (len(samples) - 1), f"unreadable frames: {samples}"
    assert indices == sorted(indices), f"frames out of order: {indices}"
    seconds = (samples[-1]["now"] - samples[0]["now"]) / 1000
    # fresh frames: the index advances with time (the source makes 30 a second)
    assert indices[-1] - indices[0] >= 10 * seconds, (indices, seconds)
    assert samples[-1]["currentTime"] > samples[0]["currentTime"]
    return indices
