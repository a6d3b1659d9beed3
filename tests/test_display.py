"""Displays: CVDisplay's error when windows cannot be shown (here: headless OpenCV, no screen),
and FrameRecorder, the display stand-in that the headless examples use."""

from __future__ import annotations

import asyncio
import logging

import av
import numpy as np
import pytest

from rtcbot.base.errors import SubscriptionClosed
from rtcbot.devices.display import FrameRecorder, display_problem
from rtcbot.devices.sources import DeviceError, PatternRenderer, TestPattern, frame_info
from rtcbot.testing import check_consumer

cv2 = pytest.importorskip("cv2")

from rtcbot.devices.display import CVDisplay  # noqa: E402

needs_no_gui = pytest.mark.skipif(
    display_problem() is None, reason="this machine can show OpenCV windows"
)


async def bounded(awaitable, seconds: float = 10):
    async with asyncio.timeout(seconds):
        return await awaitable


def image(i: int = 0) -> np.ndarray:
    return PatternRenderer(64, 48).render(i, 0.0)


# ----------------------------------------------------------------------- CVDisplay


@needs_no_gui
async def test_display_without_a_screen_reaches_on_error(caplog):
    caplog.set_level(logging.CRITICAL)
    display = CVDisplay()
    errors = []
    display.onError(errors.append)
    display.put_nowait(image())
    await bounded(display.onClose())
    await bounded(display)
    assert len(errors) == 1 and isinstance(errors[0], DeviceError)
    assert str(errors[0]) == display_problem()
    with pytest.raises(SubscriptionClosed):
        display.put_nowait(image())


@needs_no_gui
async def test_every_display_gets_the_error_and_a_later_one_too(caplog):
    caplog.set_level(logging.CRITICAL)
    camera = TestPattern(64, 48, fps=100)
    try:
        first, second = CVDisplay(), CVDisplay("second")
        first.putSubscription(camera)
        second.putSubscription(camera.subscribe())
        for display in (first, second):
            assert isinstance(await bounded(display.onError()), DeviceError)
        third = CVDisplay()  # the GUI thread starts again and fails again, no hang
        assert isinstance(await bounded(third.onError()), DeviceError)
        await bounded(asyncio.gather(first, second, third))
    finally:
        camera.close()
        await bounded(camera)


def test_display_problem_explains_a_headless_opencv():
    if "NONE" not in cv2.getBuildInformation().split("GUI:")[1].splitlines()[0].upper():
        pytest.skip("this OpenCV has GUI support")
    problem = display_problem()
    assert problem is not None and "pip install opencv-python" in problem
    assert not CVDisplay.available()


@pytest.mark.parametrize(
    "bad", [None, "frame", np.zeros((2, 2, 2), np.uint8), np.zeros((0, 4, 3), np.uint8),
            np.zeros(5, np.uint8)],
    ids=["None", "str", "2-channel", "empty", "1-d"],
)
async def test_display_refuses_what_is_not_an_image(bad, caplog):
    caplog.set_level(logging.CRITICAL)
    display = CVDisplay()
    try:
        with pytest.raises(ValueError, match="expected an image"):
            display.put_nowait(bad)
    finally:
        display.close()
        await bounded(display)


# ----------------------------------------------------------------------- FrameRecorder


async def recorded(recorder: FrameRecorder) -> list[int]:
    return list(range(recorder.frames))


async def test_frame_recorder_is_a_consumer():
    await check_consumer(lambda: FrameRecorder(), sample=image, received=recorded)


async def test_frame_recorder_records_a_source():
    camera = TestPattern(64, 48, fps=100, count=30)
    recorder = FrameRecorder(keep=10)
    recorder.putSubscription(camera)
    await bounded(recorder.onReady())
    await bounded(camera)
    recorder.close()
    await bounded(recorder)
    assert recorder.frames >= 10
    assert recorder.shape == (48, 64, 3)
    indices = [info.index for info in recorder.infos]
    assert len(indices) == min(10, recorder.frames)
    assert indices == sorted(indices) and indices[-1] <= 29
    assert TestPattern.read_index(recorder.last_frame) == indices[-1]
    assert frame_info(recorder.last_frame).index == indices[-1]


async def test_frame_recorder_writes_a_video_file(tmp_path):
    path = tmp_path / "recording.mp4"
    camera = TestPattern(160, 120, fps=50, count=25)
    recorder = FrameRecorder(path, fps=50)
    recorder.putSubscription(camera)
    await bounded(camera)
    recorder.close()
    await bounded(recorder)
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == recorder.frames > 0
    assert frames[0].shape == (120, 160, 3)
    indices = [TestPattern.read_index(f) for f in frames]
    assert indices == [info.index for info in recorder.infos]


async def test_frame_recorder_accepts_grey_frames():
    recorder = FrameRecorder()
    try:
        recorder.put_nowait(np.zeros((48, 64), np.uint8))
        await bounded(recorder.onReady())
        assert recorder.shape == (48, 64)
    finally:
        recorder.close()
        await bounded(recorder)
