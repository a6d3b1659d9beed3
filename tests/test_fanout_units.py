"""The parts of encoder sharing without the network: a viewer's buffer policy, urgent keyframes,
the shared encoder with a viewer that stops reading, and finding a subscription's producer."""

from __future__ import annotations

import asyncio

import pytest

from _media_util import indexed_frame
from rtcbot.base.base import SubscriptionProducer
from rtcbot.base.subscriptions import QueueSubscription
from rtcbot.media import KeyframePolicy, VideoEncoderSettings
from rtcbot.media.encoder import EncodedPacket
from rtcbot.media.fanout import (
    EncodedVideoSubscription,
    SharedVideoEncoder,
    producer_of,
    shared_encoders,
    shared_video_encoder,
)


def _packet(keyframe: bool, n: int = 0) -> EncodedPacket:
    return EncodedPacket(packet=n, keyframe=keyframe, size=100, time=n / 30)


def test_a_viewer_starts_on_a_keyframe_and_a_stalled_one_resyncs_alone():
    resyncs = []
    sub = EncodedVideoSubscription(maxsize=3, on_resync=lambda: resyncs.append(1))
    sub.put_nowait(_packet(False, 0))
    sub.put_nowait(_packet(False, 1))
    assert sub.held_back == 2 and sub.statistics().buffered == 0
    for n, key in ((2, True), (3, False), (4, False)):
        sub.put_nowait(_packet(key, n))
    assert [sub.get_nowait().packet for _ in range(2)] == [2, 3]
    sub.put_nowait(_packet(False, 5))
    sub.put_nowait(_packet(False, 6))
    sub.put_nowait(_packet(False, 7))  # full (3 waiting): the backlog goes, a keyframe is asked
    assert resyncs == [1] and sub.resyncs == 1
    assert sub.statistics().dropped == 4 and sub.statistics().buffered == 0
    sub.put_nowait(_packet(False, 8))  # still waiting for a keyframe
    sub.put_nowait(_packet(True, 9))
    assert sub.get_nowait().packet == 9 and sub.held_back == 3
    for n in range(10, 13):
        sub.put_nowait(_packet(False, n))
    sub.put_nowait(_packet(True, 13))  # a keyframe on a full buffer replaces the backlog
    assert sub.get_nowait().packet == 13 and resyncs == [1]
    sub.close()
    with pytest.raises(Exception, match="closed"):
        sub.put_nowait(_packet(True, 14))


def test_a_new_viewer_gets_a_keyframe_inside_the_rate_limit():
    policy = KeyframePolicy(interval=60.0, min_gap=1.0)
    assert policy.should_force(0.0)
    policy.sent(0.0, forced=True)
    policy.request()  # a picture loss: waits for the gap
    assert not policy.should_force(0.1)
    policy.request(urgent=True)  # a new viewer: the next frame
    assert policy.should_force(0.2)
    policy.sent(0.2, forced=True)
    assert not policy.should_force(0.3) and not policy.pending
    assert policy.forced == 1 and policy.requests == 2


async def test_a_viewer_that_stops_reading_loses_frames_alone_and_restarts_on_a_keyframe():
    source = SubscriptionProducer()
    encoder = SharedVideoEncoder(
        source.subscribe(),
        VideoEncoderSettings(keyframe_interval=600.0, min_keyframe_gap=0.0, max_framerate=1000),
        can_skip=False,
    )
    fast = [encoder.subscribe(EncodedVideoSubscription(5)) for _ in range(2)]
    stalled = encoder.subscribe(EncodedVideoSubscription(5))
    got: list[list[EncodedPacket]] = [[], []]
    progress = asyncio.Event()

    async def read(i: int) -> None:
        while len(got[i]) < 40:
            got[i].append(await fast[i].get())
            progress.set()

    try:
        readers = [asyncio.create_task(read(i)) for i in range(2)]
        for n in range(40):
            source.put_nowait(indexed_frame(n, 64, 96))
            # the next frame once both readers have this one (the source's pace)
            async with asyncio.timeout(10):
                while min(len(g) for g in got) <= n:
                    progress.clear()
                    await progress.wait()
        async with asyncio.timeout(10):
            await asyncio.gather(*readers)
        for packets in got:
            pts = [p.packet.pts for p in packets]
            assert pts == sorted(set(pts)) and len(pts) == 40
        assert all(s.statistics().dropped == 0 for s in fast)
        assert stalled.resyncs >= 1 and stalled.statistics().dropped > 0

        async def feed() -> None:  # a 30 fps camera from now on
            for n in range(40, 400):
                source.put_nowait(indexed_frame(n, 64, 96))
                await asyncio.sleep(1 / 30)

        feeder = asyncio.create_task(feed())
        try:
            # Its keyframe comes within the rate limit for shared encoders (1 s).
            async with asyncio.timeout(10):
                first = await stalled.get()
        finally:
            feeder.cancel()
        assert first.keyframe
    finally:
        encoder.close()
        source.close()
        await encoder


async def test_the_producer_of_a_subscription_is_found():
    producer = SubscriptionProducer()
    subscription = producer.subscribe()
    own = QueueSubscription()
    try:
        assert producer_of(producer) is producer
        assert producer_of(subscription) is producer
        assert producer_of(own) is None  # nobody feeds it: not shared
        assert producer_of(object()) is None
        settings = VideoEncoderSettings()
        first = shared_video_encoder(subscription, settings, codec="VP8")
        again = shared_video_encoder(producer.subscribe(), settings, codec="vp8")
        other = shared_video_encoder(producer, VideoEncoderSettings(max_bitrate=500_000),
                                     codec="VP8")
        assert first is again and other is not first
        assert shared_video_encoder(own, settings, codec="VP8") is None
        first.close()
        other.close()
        assert shared_video_encoder(producer, settings, codec="VP8") is not first
    finally:
        producer.close()
        for encoder in shared_encoders():
            encoder.close()
