"""Cameras. There is no camera here: CVCamera is tested on its error paths (no device, a device
that stops giving frames) and, through OpenCV's VideoCapture, on a video file standing in for a
camera. The Raspberry Pi cameras are tested on the error a missing library gives."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from rtcbot.base.errors import SubscriptionClosed
from rtcbot.devices.sources import DeviceError, PatternRenderer, frame_info
from rtcbot.testing import check_producer

cv2 = pytest.importorskip("cv2")

from rtcbot.devices.camera import CVCamera, PiCamera, PiCamera2  # noqa: E402


async def bounded(awaitable, seconds: float = 10):
    async with asyncio.timeout(seconds):
        return await awaitable


@pytest.fixture(scope="module")
def camera_file(tmp_path_factory) -> Path:
    """A video that OpenCV opens like a camera: 200 test-pattern frames of 160x120."""
    path = tmp_path_factory.mktemp("camera") / "camera.mp4"
    renderer = PatternRenderer(160, 120)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30, options={"crf": "10"})
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(200):
            frame = av.VideoFrame.from_ndarray(renderer.render(i, 0.0), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 30)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class QuickToFail(CVCamera):
    max_read_failures = 4  # pauses of 10, 20 and 40 ms before giving up


def at_100_fps(frame):
    """A preprocessframe that makes a video file read like a 100 fps camera (OpenCV reads a
    file as fast as it decodes; a camera gives a frame per frame interval)."""
    time.sleep(0.01)
    return frame


def missing_device() -> int:
    n = 0
    while Path(f"/dev/video{n}").exists():
        n += 1
    return n


async def test_no_camera_reaches_on_error_and_closes(caplog):
    caplog.set_level(logging.CRITICAL)
    number = missing_device()
    camera = CVCamera(cameranumber=number)
    errors = []
    camera.onError(errors.append)
    sub = camera.subscribe()
    with pytest.raises(SubscriptionClosed):
        await bounded(sub.get())
    await bounded(camera)
    assert camera.closed and not camera.ready
    assert len(errors) == 1 and isinstance(errors[0], DeviceError)
    assert f"camera {number}" in str(errors[0])
    assert camera.error is errors[0]
    assert not CVCamera.available(number)


async def test_no_camera_error_is_awaitable(caplog):
    caplog.set_level(logging.CRITICAL)
    camera = CVCamera(cameranumber=missing_device())
    error = await bounded(camera.onError())
    assert isinstance(error, DeviceError)
    with pytest.raises(SubscriptionClosed):
        await bounded(camera.get())


async def test_camera_gives_frames_of_the_requested_size(camera_file):
    camera = CVCamera(width=64, height=48, cameranumber=str(camera_file), fps=100,
                      preprocessframe=at_100_fps)
    try:
        sub = camera.subscribe()
        frames = [await bounded(sub.get()) for _ in range(5)]
        await bounded(camera.onReady())
    finally:
        camera.close()
        await bounded(camera)
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)
    indices = [frame_info(f).index for f in frames]
    assert indices == sorted(indices)


async def test_camera_runs_preprocessframe_in_its_thread(camera_file):
    import threading

    threads = set()

    def mirror(frame):
        threads.add(threading.current_thread().name)
        return frame[:, ::-1].copy()

    camera = CVCamera(cameranumber=str(camera_file), width=160, height=120, fps=100,
                      preprocessframe=mirror)
    try:
        frame = await bounded(camera.get())
    finally:
        camera.close()
        await bounded(camera)
    assert PatternRenderer.read_index(frame) is None  # mirrored: the code reads backwards
    assert PatternRenderer.read_index(frame[:, ::-1]) is not None
    assert threads and threading.current_thread().name not in threads


async def test_a_camera_that_stops_backs_off_then_fails(camera_file, caplog):
    caplog.set_level(logging.WARNING, logger="rtcbot")
    camera = QuickToFail(cameranumber=str(camera_file), width=160, height=120, fps=1000)
    frames = []
    camera.subscribe(frames.append)
    error = await bounded(camera.onError())
    await bounded(camera)
    assert isinstance(error, DeviceError) and "4 reads failed in a row" in str(error)
    assert len(frames) > 10  # the "camera" worked, then stopped
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 3  # a bounded number of retries, not a hot loop


async def test_cvcamera_is_a_producer(camera_file):
    await check_producer(
        lambda: CVCamera(cameranumber=str(camera_file), width=64, height=48, fps=1000,
                         preprocessframe=at_100_fps)
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"width": 0}, {"height": -1}, {"fps": 0}, {"fps": "30"}],
)
def test_cvcamera_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        CVCamera(**kwargs)


def test_cvcamera_rejects_a_bad_camera_number():
    with pytest.raises(TypeError, match=r"1\.5"):
        CVCamera(cameranumber=1.5)
    with pytest.raises(TypeError, match="preprocessframe"):
        CVCamera(preprocessframe="mirror")


def run_without(module: str, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where ``import <module>`` fails."""
    script = f"import sys\nsys.modules[{module!r}] = None\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)


def test_cvcamera_without_opencv_names_the_extra():
    result = run_without("cv2", """
        import rtcbot
        try:
            rtcbot.CVCamera()
        except ImportError as exc:
            print("ImportError:", exc)
    """)
    assert 'pip install "rtcbot[camera]"' in result.stdout, result.stderr


def test_picamera2_without_its_library_says_what_to_install():
    with pytest.raises(ImportError, match="picamera2"):
        PiCamera2()


def test_picamera_without_its_library_points_to_picamera2():
    with pytest.raises(ImportError, match="PiCamera2"):
        PiCamera()
    with pytest.raises(ValueError, match="45"):
        PiCamera(rotation=45)


def test_importing_the_camera_module_loads_no_camera_library():
    result = subprocess.run(
        [sys.executable, "-c",
         "import sys, rtcbot.camera, rtcbot.audio; "
         "print(sorted(m for m in ('cv2', 'sounddevice', 'picamera2', 'picamera') "
         "if m in sys.modules))"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.stdout.strip() == "[]", result.stderr
