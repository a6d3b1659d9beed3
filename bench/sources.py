"""Benchmark of rtcbot's hardware-free video sources, each figure beside a baseline measured in
the same run.

Usage::

    python bench/sources.py            # about 40 s on 2 cores; JSON on stdout
    python bench/sources.py --quick    # about 12 s
    python bench/sources.py --out bench/results/sources.json

Figures, at 640x480 and 1280x720:

* ``render``: frames per second that ``PatternRenderer.render`` draws (clock, counter, moving
  square, index code), against numpy filling a frame of the same size with one value (the
  least any generator must do). ``ratio`` = pattern time / fill time per frame.
* ``pattern_30fps``: ``TestPattern`` at 30 fps delivered to a subscriber: achieved fps and CPU
  seconds per second of the whole process, against a hand-written thread that fills frames
  with numpy at 30 fps and hands them to the event loop with ``call_soon_threadsafe``.
* ``copy``: the cost of giving a second subscriber its own frame (one ``ndarray.copy``),
  as a fraction of the 33 ms frame interval at 30 fps and against the render time.
* ``file``: ``VideoFile`` decoding an H.264 file as fast as it can to a subscriber: frames per
  second and CPU seconds per frame, against a raw PyAV loop (decode + ``to_ndarray("bgr24")``)
  of the same file. ``ratio`` = rtcbot CPU per frame / raw CPU per frame.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

import av  # noqa: E402

from rtcbot.devices.sources import PatternRenderer, TestPattern, VideoFile  # noqa: E402

SIZES = [(640, 480), (1280, 720)]


def cpu() -> float:
    return time.process_time()


def per_frame(fn, seconds: float) -> float:
    """Seconds per call of ``fn(i)``, over about ``seconds``."""
    n = 0
    start = time.perf_counter()
    while True:
        fn(n)
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= 20:
            return elapsed / n


def bench_render(width: int, height: int, seconds: float) -> dict:
    renderer = PatternRenderer(width, height)

    def fill(i: int) -> np.ndarray:
        frame = np.empty((height, width, 3), np.uint8)
        frame.fill(i & 255)
        return frame

    pattern = per_frame(lambda i: renderer.render(i, 1000.0 + i / 30), seconds)
    baseline = per_frame(fill, seconds)
    frame = renderer.render(0)
    copy = per_frame(lambda i: frame.copy(), seconds)
    return {
        "render": {
            "fps": round(1 / pattern),
            "baseline_numpy_fill_fps": round(1 / baseline),
            "ratio": round(pattern / baseline, 2),
            "ms_per_frame": round(pattern * 1e3, 3),
        },
        "copy": {
            "ms_per_copy": round(copy * 1e3, 3),
            "share_of_frame_interval_30fps": round(copy * 30, 4),
            "ratio_to_render": round(copy / pattern, 2),
        },
    }


async def run_for(seconds: float) -> None:
    await asyncio.sleep(seconds)  # the measurement window


async def pattern_at_30fps(width: int, height: int, seconds: float) -> dict:
    camera = TestPattern(width, height, fps=30)
    count = 0

    def onFrame(frame: np.ndarray) -> None:
        nonlocal count
        count += 1

    camera.subscribe(onFrame)
    await run_for(0.5)  # warm up
    start_count, start_cpu, start = count, cpu(), time.perf_counter()
    await run_for(seconds)
    frames, used, wall = count - start_count, cpu() - start_cpu, time.perf_counter() - start
    camera.close()
    await camera
    return {"fps": round(frames / wall, 1), "cpu_s_per_s": round(used / wall, 4)}


async def baseline_at_30fps(width: int, height: int, seconds: float) -> dict:
    """What a user would write by hand: a thread, numpy frames, call_soon_threadsafe."""
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    count = 0

    def onFrame(frame: np.ndarray) -> None:
        nonlocal count
        count += 1

    def worker() -> None:
        next_time = time.monotonic()
        i = 0
        while not stop.wait(max(0.0, next_time - time.monotonic())):
            frame = np.empty((height, width, 3), np.uint8)
            frame.fill(i & 255)
            i += 1
            loop.call_soon_threadsafe(onFrame, frame)
            next_time += 1 / 30

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    await run_for(0.5)
    start_count, start_cpu, start = count, cpu(), time.perf_counter()
    await run_for(seconds)
    frames, used, wall = count - start_count, cpu() - start_cpu, time.perf_counter() - start
    stop.set()
    await asyncio.to_thread(thread.join)
    return {"fps": round(frames / wall, 1), "cpu_s_per_s": round(used / wall, 4)}


def write_video(path: Path, width: int, height: int, frames: int) -> None:
    renderer = PatternRenderer(width, height)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(renderer.render(i, 1000 + i / 30), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 30)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


async def file_source(path: Path) -> dict:
    source = VideoFile(path, realtime=False)
    count = 0

    def onFrame(frame: np.ndarray) -> None:
        nonlocal count
        count += 1

    source.subscribe(onFrame)
    start_cpu, start = cpu(), time.perf_counter()
    await source
    used, wall = cpu() - start_cpu, time.perf_counter() - start
    return {"frames": count, "decoded": source.frames, "fps": round(count / wall, 1),
            "cpu_ms_per_frame": round(used / source.frames * 1e3, 3)}


def raw_pyav(path: Path) -> dict:
    start_cpu, start = cpu(), time.perf_counter()
    n = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_ndarray(format="bgr24")
            n += 1
    used, wall = cpu() - start_cpu, time.perf_counter() - start
    return {"frames": n, "fps": round(n / wall, 1), "cpu_ms_per_frame": round(used / n * 1e3, 3)}


async def main(quick: bool) -> dict:
    seconds = 1.0 if quick else 4.0
    render_seconds = 0.5 if quick else 2.0
    file_frames = 90 if quick else 300
    results: dict = {
        "benchmark": "sources",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "av": av.__version__},
        "sizes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in SIZES:
            key = f"{width}x{height}"
            entry = bench_render(width, height, render_seconds)
            ours = await pattern_at_30fps(width, height, seconds)
            base = await baseline_at_30fps(width, height, seconds)
            entry["pattern_30fps"] = {
                **ours,
                "baseline_thread_numpy": base,
                "cpu_ratio": round(ours["cpu_s_per_s"] / max(base["cpu_s_per_s"], 1e-6), 2),
            }
            path = Path(tmp) / f"{key}.mp4"
            write_video(path, width, height, file_frames)
            raw = raw_pyav(path)
            ours = await file_source(path)
            entry["file"] = {
                **ours,
                "baseline_raw_pyav": raw,
                "cpu_ratio": round(ours["cpu_ms_per_frame"] / raw["cpu_ms_per_frame"], 2),
            }
            results["sizes"][key] = entry
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args()
    output = json.dumps(asyncio.run(main(args.quick)), indent=2)
    print(output)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(output + "\n")
