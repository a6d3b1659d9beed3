"""Video sources that need no hardware: the test pattern and the video file reader, and what all
video sources share (frame info, one array per subscriber, pacing)."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from rtcbot.base.errors import SubscriptionClosed
from rtcbot.devices.sources import (
    DeviceError,
    FrameInfo,
    FramePacer,
    PatternRenderer,
    TestPattern,
    VideoFile,
    frame_info,
)
from rtcbot.testing import check_producer


async def bounded(awaitable, seconds: float = 10):
    async with asyncio.timeout(seconds):
        return await awaitable


async def read_frames(sub, n: int) -> list[np.ndarray]:
    return [await bounded(sub.get()) for _ in range(n)]


def write_pattern_video(path: Path, frames: int, width: int = 160, height: int = 120,
                        fps: int = 30) -> None:
    """An H.264 file of test-pattern frames 0..frames-1 (near-lossless, so the coded index
    survives)."""
    renderer = PatternRenderer(width, height)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "10"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(renderer.render(i, 0.0), format="bgr24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# ----------------------------------------------------------------------- plain classes


def test_pacer_paces_made_frames():
    pacer = FramePacer(10, start=100.0)
    assert pacer.delay(100.0) == 0
    pacer.advance(100.0)
    assert pacer.delay(100.0) == pytest.approx(0.1)
    assert pacer.delay(100.05) == pytest.approx(0.05)
    pacer.advance(100.1)
    assert pacer.next == pytest.approx(100.2)


def test_pacer_restarts_instead_of_bursting_when_far_behind():
    pacer = FramePacer(10, start=0.0)
    pacer.advance(5.0)  # the source stalled for 5 s
    assert pacer.delay(5.0) == pytest.approx(0.1)


def test_pacer_skips_captured_frames_beyond_the_rate():
    pacer = FramePacer(30, start=0.0)
    kept = []
    for i in range(120):  # a 60 fps camera for 2 s
        now = i / 60
        if pacer.due(now):
            kept.append(i)
            pacer.advance(now)
    assert kept == list(range(0, 120, 2))


@pytest.mark.parametrize("fps", [0, -1, "30", None, True, float("nan")])
def test_pacer_rejects_bad_rates(fps):
    with pytest.raises(ValueError, match="fps"):
        FramePacer(fps, 0.0)


@pytest.mark.parametrize("size", [(64, 48), (160, 120), (640, 480), (1280, 720), (333, 250)])
def test_pattern_frames_are_bgr_and_carry_their_index(size):
    width, height = size
    renderer = PatternRenderer(width, height)
    for index in (0, 1, 2, 1000, 123_456, 2**24 - 1):
        frame = renderer.render(index, 0.0)
        assert frame.shape == (height, width, 3)
        assert frame.dtype == np.uint8
        assert PatternRenderer.read_index(frame) == index
    assert PatternRenderer.read_index(renderer.render(2**24 + 7)) == 7


def test_pattern_moves_and_shows_the_clock():
    renderer = PatternRenderer(320, 240)
    a = renderer.render(10, 1000.0)
    b = renderer.render(11, 1000.0)
    assert renderer.box_x(11) != renderer.box_x(10)
    top = slice(0, renderer._layout.clock_y)
    assert not np.array_equal(a[top], b[top]), "the moving square must move"
    # Same index, another second: only the clock's pixels differ.
    c = renderer.render(10, 1001.0)
    rows = np.nonzero((a != c).any(axis=(1, 2)))[0]
    lay = renderer._layout
    assert rows.size and rows.min() >= lay.clock_y and rows.max() < lay.counter_y


def test_pattern_does_not_share_arrays_between_frames():
    renderer = PatternRenderer(64, 48)
    a = renderer.render(1)
    a[:] = 0
    assert renderer.render(1).any()


def test_read_index_survives_grey_and_lossy_coding():
    frame = PatternRenderer(640, 480).render(4242)
    grey = frame.astype(np.float32).mean(axis=2).astype(np.uint8)
    assert PatternRenderer.read_index(grey) == 4242
    noisy = np.clip(frame.astype(np.int16) + np.random.default_rng(1).integers(-40, 40,
                    frame.shape), 0, 255).astype(np.uint8)
    assert PatternRenderer.read_index(noisy) == 4242


def test_read_index_of_other_images_is_none():
    assert PatternRenderer.read_index(np.zeros((480, 640, 3), np.uint8)) is None
    assert PatternRenderer.read_index(np.zeros((10, 10, 3), np.uint8)) is None


@pytest.mark.parametrize("size", [(63, 48), (64, 47), (0, 0), (640.0, 480), ("640", 480)])
def test_pattern_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match=r"width|height"):
        PatternRenderer(*size)


def test_frame_info_follows_the_array_and_goes_with_it():
    from rtcbot.devices import sources

    frame = np.zeros((4, 4, 3), np.uint8)
    assert frame_info(frame) is None
    info = FrameInfo(3, 1.5, 2.5)
    sources._tag(frame, info)
    assert frame_info(frame) is info
    assert frame_info(frame.copy()) is None
    key = id(frame)
    del frame
    gc.collect()
    assert key not in sources._infos


# ----------------------------------------------------------------------- the test pattern


async def test_test_pattern_is_a_producer():
    await check_producer(lambda: TestPattern(64, 48, fps=200))


async def test_test_pattern_gives_consecutive_frames_at_its_rate():
    camera = TestPattern(160, 120, fps=50, count=40)
    sub = camera.subscribe()
    frames = []
    while True:
        try:
            frames.append(await bounded(sub.get()))
        except SubscriptionClosed:
            break
    await bounded(camera)
    assert camera.closed and camera.error is None
    infos = [frame_info(f) for f in frames]
    indices = [i.index for i in infos]
    assert indices == sorted(indices) and indices[-1] == 39
    assert [TestPattern.read_index(f) for f in frames] == indices
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in frames)
    # Paced: never faster than 50 frames per second (not made all at once).
    span = infos[-1].monotonic - infos[0].monotonic
    assert span >= 0.9 * (indices[-1] - indices[0]) / 50
    assert all(a.monotonic < b.monotonic for a, b in itertools.pairwise(infos))
    assert abs(infos[-1].capture_time - time.time()) < 60


async def test_each_subscriber_gets_its_own_frame():
    camera = TestPattern(64, 48, fps=100)
    try:
        seen: list[np.ndarray] = []

        @camera.subscribe
        def vandal(frame):  # modifies its frame in place, as RTCBot users do
            frame[:] = 0
            seen.append(frame)

        sub = camera.subscribe()
        frames = await read_frames(sub, 5)
        for frame in frames:
            assert frame.any(), "another subscriber's change reached this frame"
            assert TestPattern.read_index(frame) == frame_info(frame).index
        assert seen and not any(f.any() for f in seen)
        assert all(frame_info(f) is not None for f in seen)
    finally:
        camera.close()
        await bounded(camera)


async def test_one_subscriber_gets_the_frame_without_a_copy():
    camera = TestPattern(64, 48, fps=100, count=3)
    sub = camera.subscribe()
    frames = await read_frames(sub, 3)
    await bounded(camera)
    assert all(f.base is None for f in frames)  # owned arrays, not views of a shared one
    assert len({id(f) for f in frames}) == 3


async def test_a_slow_reader_skips_frames_and_never_lags():
    camera = TestPattern(64, 48, fps=200)
    try:
        sub = camera.subscribe()
        first = frame_info(await bounded(sub.get())).index
        await asyncio.sleep(0.2)  # a slow reader (this sleep is the behaviour under test)
        later = frame_info(await bounded(sub.get())).index
        assert later > first + 1
        assert sub.statistics().dropped > 0
        assert sub.statistics().buffered == 0
    finally:
        camera.close()
        await bounded(camera)


async def test_test_pattern_created_before_the_loop(tmp_path):
    # Tutorials create devices at module level; asyncio.run starts a new loop later.
    camera = TestPattern(64, 48, fps=100)
    got = []
    three = asyncio.Event()

    @camera.subscribe
    def onFrame(frame):
        got.append(frame)
        if len(got) == 3:
            three.set()

    await bounded(three.wait())
    camera.close()
    await bounded(camera)


async def test_close_is_prompt_and_ends_readers():
    camera = TestPattern(64, 48, fps=0.01)  # 100 s between frames
    sub = camera.subscribe()
    await bounded(sub.get())
    reader = asyncio.ensure_future(sub.get())
    await asyncio.sleep(0)
    camera.close()
    with pytest.raises(SubscriptionClosed):
        await bounded(reader)
    await bounded(camera, 5)  # the thread ends without sleeping out its 100 s wait


@pytest.mark.parametrize(
    "kwargs", [{"fps": 0}, {"fps": "30"}, {"count": -1}, {"width": 10}, {"height": 5.5}]
)
def test_test_pattern_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        TestPattern(**kwargs)


def test_test_pattern_is_not_collected_by_pytest():
    assert TestPattern.__test__ is False


# ----------------------------------------------------------------------- video files


@pytest.fixture(scope="module")
def pattern_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "pattern.mp4"
    write_pattern_video(path, 45)
    return path


async def test_video_file_gives_every_frame_in_order(pattern_video):
    source = VideoFile(pattern_video, realtime=False)
    received = []

    @source.subscribe
    def keep(frame):  # a plain callback sees every frame, even at decoding speed
        received.append(frame)

    await bounded(source)
    assert source.error is None
    assert len(received) == 45
    assert [TestPattern.read_index(f) for f in received] == list(range(45))
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in received)
    times = [frame_info(f).stream_time for f in received]
    assert times[0] == pytest.approx(0) and times[-1] == pytest.approx(44 / 30)


async def test_video_file_plays_at_its_own_rate(pattern_video):
    source = VideoFile(pattern_video)  # a file: realtime by default
    sub = source.subscribe()
    frames = []
    while True:
        try:
            frames.append(await bounded(sub.get()))
        except SubscriptionClosed:
            break
    infos = [frame_info(f) for f in frames]
    span = infos[-1].monotonic - infos[0].monotonic
    media = infos[-1].stream_time - infos[0].stream_time
    assert media > 1.0
    assert span > 0.8 * media  # played at the file's pace, not as fast as it decodes


async def test_video_file_scales_caps_the_rate_and_repeats(pattern_video):
    source = VideoFile(pattern_video, width=64, height=48, fps=10, realtime=False, repeat=True)
    got = []
    enough = asyncio.Event()

    @source.subscribe
    def keep(frame):
        got.append(frame)
        if len(got) == 40:
            enough.set()

    try:
        await bounded(enough.wait())
    finally:
        source.close()
        await bounded(source)
    assert all(f.shape == (48, 64, 3) for f in got)
    times = [frame_info(f).stream_time for f in got]
    assert times == sorted(times)  # stream time keeps growing across repeats
    frame_numbers = [round(t * 30) for t in times]
    # 30 fps capped to 10: every third frame, the second pass going on after the first.
    assert frame_numbers[0] == 0
    assert set(np.diff(frame_numbers[1:25])) == {3}
    assert frame_numbers[24] > 45


async def test_video_file_is_a_producer(pattern_video):
    await check_producer(lambda: VideoFile(pattern_video, repeat=True, fps=200, realtime=False))


async def test_a_missing_video_file_reaches_on_error(tmp_path, caplog):
    caplog.set_level(logging.CRITICAL)
    source = VideoFile(tmp_path / "missing.mp4")
    errors = []
    source.onError(errors.append)
    sub = source.subscribe()
    with pytest.raises(SubscriptionClosed):
        await bounded(sub.get())
    await bounded(source)
    assert len(errors) == 1 and isinstance(errors[0], DeviceError)
    assert "missing.mp4" in str(errors[0])
    assert source.closed


async def test_a_file_that_is_not_a_video_reaches_on_error(tmp_path, caplog):
    caplog.set_level(logging.CRITICAL)
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, np.uint8).tobytes())
    source = VideoFile(path)
    error = await bounded(source.onError())
    assert isinstance(error, DeviceError) and "noise.mp4" in str(error)


@pytest.mark.parametrize(
    "kwargs",
    [{"width": 64}, {"width": 0, "height": 48}, {"fps": -3}, {"timeout": 0}],
)
def test_video_file_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        VideoFile("x.mp4", **kwargs)


def test_video_file_rejects_a_bad_source():
    with pytest.raises(TypeError, match="42"):
        VideoFile(42)
