"""One encode, many viewers: several connections showing one source share one encoder (real aiortc
peers over loopback, a real TestPattern camera)."""

from __future__ import annotations

import asyncio

import pytest

from _fanout_util import add_viewer, check_sequence, close_viewers, robot_with_viewers
from rtcbot.connection._media_hooks import negotiated_codec
from rtcbot.devices.sources import TestPattern
from rtcbot.media import VideoEncoderSettings
from rtcbot.media.fanout import (
    SHARED_MIN_KEYFRAME_GAP,
    encoder_sharing_enabled,
    set_encoder_sharing,
    shared_encoders,
)


@pytest.fixture
async def camera():
    source = TestPattern(320, 240, fps=30)
    try:
        yield source
    finally:
        source.close()
        async with asyncio.timeout(5):
            await source


@pytest.fixture
def sharing_off():
    set_encoder_sharing(False)
    try:
        yield
    finally:
        set_encoder_sharing(True)


def _sender_stats(viewer):
    return viewer.robot.video._senders[0]._statistics()


async def _common_window(viewers, frames=45):
    """Wait until every viewer saw ``frames`` frames; return each viewer's indices inside the
    window that all of them saw."""
    seen = [await v.seen.wait_for(frames) for v in viewers]
    for indices in seen:
        check_sequence(indices)
    first = max(s[0] for s in seen)
    last = min(s[-1] for s in seen)
    assert last - first >= frames // 2, seen
    return [[i for i in s if first <= i <= last] for s in seen]


@pytest.mark.parametrize("codec", ["VP8", "H264"])
@pytest.mark.parametrize("count", [1, 2, 4])
async def test_viewers_of_one_camera_share_one_encode_and_see_every_frame(camera, codec, count):
    settings = VideoEncoderSettings(codec=codec)

    def setup(robot, i):
        robot.video.settings = settings
        robot.video.putSubscription(camera)  # the same camera object for every connection

    async with robot_with_viewers(count, setup) as viewers:
        windows = await _common_window(viewers)
        # Every viewer decoded the same frames: nothing lost for anyone.
        assert all(w == windows[0] for w in windows), windows
        # Frames the shared encoder skipped are skipped for all; on loopback that is rare.
        span = windows[0][-1] - windows[0][0] + 1
        assert len(windows[0]) >= 0.9 * span, windows[0]
        encoders = shared_encoders()
        assert len(encoders) == 1 and encoders[0].viewers == count
        assert encoders[0].codec == codec
        for viewer in viewers:
            stats = _sender_stats(viewer)
            assert stats["shared"] and stats["viewers"] == count and stats["codec"] == codec
            assert stats["frames_dropped"] == 0
            transceiver = viewer.robot._pc.getTransceivers()[0]
            assert negotiated_codec(transceiver) == codec  # the answer carries our codec
            received = (await viewer.conn.stats())["video"]["receivers"][0]
            assert received["packets_lost"] == 0
        # One encode for all: the encoder encoded each frame once, not once per viewer.
        frames_sent = max(_sender_stats(v)["frames_sent"] for v in viewers)
        assert encoders[0].statistics()["frames_encoded"] <= frames_sent + 3
    assert shared_encoders() == []  # the encoder closes with its last viewer


async def test_subscriptions_of_one_camera_share_one_encode(camera):
    """The RTCBot tutorial's pattern: each connection gets its own camera.subscribe()."""
    subscriptions = []

    def setup(robot, i):
        subscription = camera.subscribe()
        subscriptions.append(subscription)
        robot.video.putSubscription(subscription)

    async with robot_with_viewers(3, setup) as viewers:
        windows = await _common_window(viewers, 30)
        assert all(w == windows[0] for w in windows)
        assert len(shared_encoders()) == 1 and shared_encoders()[0].viewers == 3
        assert all(_sender_stats(v)["shared"] for v in viewers)
        # The users' own subscriptions are read (and their frames discarded): none fills up.
        for subscription in subscriptions:
            assert subscription.statistics().buffered <= 1


async def test_a_late_viewer_gets_a_picture_from_a_forced_keyframe(camera):
    # No periodic keyframe during the test: only the keyframe forced for the newcomer can
    # give it a picture.
    settings = VideoEncoderSettings(keyframe_interval=600.0)

    def setup(robot, i):
        robot.video.settings = settings
        robot.video.putSubscription(camera)

    async with robot_with_viewers(1, setup) as viewers:
        await viewers[0].seen.wait_for(30)
        encoder = shared_encoders()[0]
        before = encoder.statistics()["forced_keyframes"]
        late = await add_viewer(setup)
        try:
            seen_late = await late.seen.wait_for(10, timeout=10)
            check_sequence(seen_late)
            assert encoder.statistics()["forced_keyframes"] == before + 1
            assert encoder.viewers == 2
            # The first viewer went on undisturbed.
            check_sequence(await viewers[0].seen.wait_for(len(viewers[0].seen.indices) + 10))
            assert _sender_stats(viewers[0])["frames_dropped"] == 0
        finally:
            await close_viewers([late])


async def test_picture_loss_from_one_viewer_forces_one_keyframe_for_all(camera):
    settings = VideoEncoderSettings(keyframe_interval=600.0, min_keyframe_gap=0.0)

    def setup(robot, i):
        robot.video.settings = settings
        robot.video.putSubscription(camera)

    async with robot_with_viewers(2, setup) as viewers:
        for viewer in viewers:
            await viewer.seen.wait_for(15)
        encoder = shared_encoders()[0]
        before = encoder.statistics()
        # A viewer on a bad link: a burst of picture-loss indications.
        rtp_receiver = viewers[1].conn._pc.getReceivers()[0]
        ssrc = rtp_receiver.getSynchronizationSources()[0].source
        for _ in range(5):
            await rtp_receiver._send_rtcp_pli(ssrc)
        track = viewers[1].robot.video._senders[0].videoStreamTrack
        async with asyncio.timeout(10):
            while track.keyframe_requests < 5 or encoder.statistics()["forced_keyframes"] == (
                before["forced_keyframes"]
            ):
                await viewers[0].seen.wait_for(len(viewers[0].seen.indices) + 1)
        # Then about SHARED_MIN_KEYFRAME_GAP seconds of video (frames at 30 fps as the clock).
        start = len(viewers[0].seen.indices)
        await viewers[0].seen.wait_for(start + int(30 * SHARED_MIN_KEYFRAME_GAP) + 15)
        after = encoder.statistics()
        # Five requests inside the rate limit cost at most two keyframes (one now, one when
        # the gap ends), shared by both viewers; without the limit they cost five.
        assert 1 <= after["forced_keyframes"] - before["forced_keyframes"] <= 2
        assert after["keyframe_requests"] - before["keyframe_requests"] == 5
        assert _sender_stats(viewers[0])["keyframe_requests"] == 0
        for viewer in viewers:
            check_sequence(viewer.seen.indices)


async def test_a_viewer_that_stops_reading_does_not_slow_the_others(camera):
    def setup(robot, i):
        robot.video.putSubscription(camera)

    async with robot_with_viewers(3, setup) as viewers:
        for viewer in viewers:
            await viewer.seen.wait_for(10)
        viewers[2].seen.paused = True  # its program stops reading
        start = [len(v.seen.indices) for v in viewers[:2]]
        for viewer, n in zip(viewers[:2], start, strict=True):
            seen = check_sequence(await viewer.seen.wait_for(n + 45))
            assert seen[-1] - seen[n] <= 50  # kept the camera's pace
        for viewer in viewers[:2]:
            assert _sender_stats(viewer)["frames_dropped"] == 0


async def test_turning_sharing_off_gives_one_encoder_per_viewer(camera, sharing_off):
    assert not encoder_sharing_enabled()

    def setup(robot, i):
        robot.video.putSubscription(camera)

    async with robot_with_viewers(3, setup) as viewers:
        await _common_window(viewers, 20)
        assert shared_encoders() == []
        encoders = {id(v.robot.video._senders[0].videoStreamTrack._encoder) for v in viewers}
        assert len(encoders) == 3
        for viewer in viewers:
            stats = _sender_stats(viewer)
            assert not stats["shared"] and stats["viewers"] == 1


async def test_one_connection_can_opt_out(camera):
    def setup(robot, i):
        if i == 2:
            robot.video.share_encoder = False
        robot.video.putSubscription(camera)

    async with robot_with_viewers(3, setup) as viewers:
        await _common_window(viewers, 20)
        assert len(shared_encoders()) == 1 and shared_encoders()[0].viewers == 2
        assert [_sender_stats(v)["shared"] for v in viewers] == [True, True, False]


async def test_viewers_with_different_codecs_get_one_encoder_per_codec(camera):
    def setup(robot, i):
        robot.video.settings = VideoEncoderSettings(codec="VP8" if i % 2 else "H264")
        robot.video.putSubscription(camera)

    async with robot_with_viewers(4, setup) as viewers:
        await _common_window(viewers, 20)
        encoders = shared_encoders()
        assert sorted(e.codec for e in encoders) == ["H264", "VP8"]
        assert all(e.viewers == 2 for e in encoders)


async def test_when_the_shared_source_ends_the_track_goes_on_with_put_nowait_frames():
    from rtcbot.devices.sources import PatternRenderer

    camera = TestPattern(320, 240, fps=30, count=20)

    def setup(robot, i):
        robot.video.putSubscription(camera)

    async with robot_with_viewers(2, setup) as viewers:
        async with asyncio.timeout(10):
            await camera.onClose()
        renderer = PatternRenderer(320, 240)
        loop = asyncio.get_running_loop()

        async def feed():
            start = loop.time()
            for i in range(1000, 1300):
                for viewer in viewers:
                    viewer.robot.video.put_nowait(renderer.render(i, 0.0))
                await asyncio.sleep(max(0.0, start + (i - 999) / 30 - loop.time()))

        feeder = asyncio.create_task(feed())
        try:
            for viewer in viewers:
                async with asyncio.timeout(15):
                    while not viewer.seen.indices or (viewer.seen.indices[-1] or 0) < 1000:
                        await viewer.seen.wait_for(len(viewer.seen.indices) + 1)
                assert not _sender_stats(viewer)["shared"]
        finally:
            feeder.cancel()
        assert shared_encoders() == []
