"""Video and audio between two real RTCConnections over loopback (aiortc, no mocks)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from _media_util import (
    connection_pair,
    dominant_frequency,
    feed_frames,
    frame_index,
    indexed_frame,
    tone,
)
from rtcbot import SubscriptionClosed
from rtcbot.media import VideoEncoderSettings


async def _read_frames(sub, count, timeout=15.0):
    frames = []
    async with asyncio.timeout(timeout):
        while len(frames) < count:
            frames.append(await sub.get())
    return frames


async def test_video_frames_arrive_in_order_with_their_content():
    def setup(a, b):
        a.video.put_nowait(indexed_frame(0))
        setup.sub = b.video.subscribe()

    async with connection_pair(setup) as (a, _b):
        sender = asyncio.create_task(feed_frames(a.video, 150, start=1))
        try:
            frames = await _read_frames(setup.sub, 60)
        finally:
            sender.cancel()
        indices = [frame_index(f) for f in frames]
        assert indices == sorted(set(indices)), indices  # in order, no repeats
        assert indices[-1] - indices[0] < 2 * len(indices)  # few skipped on loopback
        for frame, index in zip(frames, indices, strict=False):
            assert frame.dtype == np.uint8 and frame.shape == (240, 320, 3)
            assert frame.flags.c_contiguous  # RTCBot 0.2.5 delivered reversed-stride views
            error = np.abs(frame.astype(int) - indexed_frame(index).astype(int)).mean()
            assert error < 12, (index, error)


async def test_bad_frames_raise_at_the_call_site_and_the_stream_goes_on():
    def setup(a, b):
        a.video.put_nowait(indexed_frame(0))
        setup.sub = b.video.subscribe()

    async with connection_pair(setup) as (a, _b):
        await _read_frames(setup.sub, 1)
        with pytest.raises(TypeError, match="float32"):
            a.video.put_nowait(np.zeros((240, 320, 3), np.float32))
        with pytest.raises(ValueError, match=r"shape=\(240, 320\)"):
            a.video.put_nowait(np.zeros((240, 320), np.uint8))
        with pytest.raises(TypeError, match="complex128"):
            a.audio.put_nowait(np.zeros(10, np.complex128))
        with pytest.raises(ValueError, match="3\\)"):
            a.audio.put_nowait(np.zeros((960, 3)))
        sender = asyncio.create_task(feed_frames(a.video, 100, start=500))
        try:
            frames = await _read_frames(setup.sub, 5)
        finally:
            sender.cancel()
        assert frame_index(frames[-1]) >= 500


@pytest.mark.parametrize(
    "shape",
    ["mono float", "stereo float32", "stereo int16"],
)
async def test_a_tone_arrives_as_float32_48k_stereo(shape):
    signal = tone(440.0, 3.0)
    if shape == "stereo float32":
        signal = np.stack([signal, signal], axis=1).astype(np.float32)
    elif shape == "stereo int16":
        signal = (np.stack([signal, signal], axis=1) * 32767).astype(np.int16)

    def setup(a, b):
        a.audio.put_nowait(signal[:960])
        setup.sub = b.audio.subscribe()

    async def play(conn):
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, offset in enumerate(range(960, len(signal), 960)):
            conn.audio.put_nowait(signal[offset : offset + 960])
            await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - loop.time()))

    async with connection_pair(setup) as (a, _b):
        player = asyncio.create_task(play(a))
        blocks = []
        try:
            async with asyncio.timeout(15):
                while len(blocks) < 60:
                    blocks.append(await setup.sub.get())
        finally:
            player.cancel()
        for block in blocks:
            assert block.dtype == np.float32 and block.ndim == 2 and block.shape[1] == 2
        received = np.concatenate(blocks[20:])[:, 0]  # skip the codec's start-up
        assert abs(dominant_frequency(received) - 440.0) < 10
        assert 0.3 < np.abs(received).max() <= 1.0


async def test_one_remote_track_ending_does_not_close_the_connection():
    def setup(a, b):
        setup.first = a.video.addTrack()
        setup.second = a.video.addTrack()
        setup.tracks = b.video.onTrack()
        b.video.offerToReceive(2)
        setup.sub = b.video.subscribe()

    async with connection_pair(setup) as (a, b):
        first, second = setup.first, setup.second
        feeder = asyncio.create_task(_feed_two(first, second))
        try:
            async with asyncio.timeout(10):
                receivers = [await setup.tracks.get(), await setup.tracks.get()]
            frames = await _read_frames(setup.sub, 3)
            assert all(frame_index(f) < 1000 for f in frames)  # the default: the first track
            first.close()  # the remote's default track ends (RTCP BYE)
            async with asyncio.timeout(10):
                await receivers[0].onClose()
            # The connection stays open and the default stream moves on to the other track.
            frames = await _read_frames(setup.sub, 5)
            assert frame_index(frames[-1]) >= 1000
            assert not a.closed and not b.closed and not b.video.closed
            assert not receivers[1].closed
        finally:
            feeder.cancel()


async def _feed_two(first, second):
    await asyncio.gather(feed_frames(first, 600), feed_frames(second, 600, start=1000))


async def test_several_tracks_each_way():
    def setup(a, b):
        setup.a_tracks = a.video.onTrack()
        setup.b_tracks = b.video.onTrack()
        a.video.offerToReceive(2)
        setup.a_senders = [a.video.addTrack(), a.video.addTrack()]
        setup.b_senders = [b.video.addTrack(), b.video.addTrack()]

    async with connection_pair(setup) as (_a, _b):
        feeders = [
            asyncio.create_task(feed_frames(s, 300, start=1000 * (i + 1)))
            for i, s in enumerate(setup.a_senders + setup.b_senders)
        ]
        try:
            seen = {}
            for name, tracks in (("at b", setup.b_tracks), ("at a", setup.a_tracks)):
                async with asyncio.timeout(10):
                    receivers = [await tracks.get(), await tracks.get()]
                firsts = []
                for receiver in receivers:
                    frames = await _read_frames(receiver.subscribe(), 2)
                    firsts.append(frame_index(frames[-1]) // 1000)
                seen[name] = sorted(firsts)
            assert seen == {"at b": [1, 2], "at a": [3, 4]}
        finally:
            for f in feeders:
                f.cancel()


async def test_picture_loss_request_gets_a_keyframe_promptly():
    settings = VideoEncoderSettings(keyframe_interval=60.0)  # no periodic keyframe in the test

    def setup(a, b):
        a.video.settings = settings
        a.video.put_nowait(indexed_frame(0))
        setup.sub = b.video.subscribe()

    async with connection_pair(setup) as (a, b):
        feeder = asyncio.create_task(feed_frames(a.video, 900, start=1))
        try:
            await _read_frames(setup.sub, 20)
            before = (await a.stats())["video"]["senders"][0]
            assert before["keyframes"] >= 1
            rtp_receiver = b._pc.getReceivers()[0]
            ssrc = rtp_receiver.getSynchronizationSources()[0].source
            await rtp_receiver._send_rtcp_pli(ssrc)  # what a viewer that lost a picture sends
            async with asyncio.timeout(5):
                while True:
                    await setup.sub.get()
                    after = (await a.stats())["video"]["senders"][0]
                    if after["keyframes"] > before["keyframes"]:
                        break
            assert after["keyframe_requests"] == before["keyframe_requests"] + 1
        finally:
            feeder.cancel()


async def test_h264_when_asked():
    def setup(a, b):
        a.video.settings = VideoEncoderSettings(codec="H264")
        a.video.put_nowait(indexed_frame(0))
        setup.sub = b.video.subscribe()

    async with connection_pair(setup) as (a, _b):
        feeder = asyncio.create_task(feed_frames(a.video, 300, start=1))
        try:
            frames = await _read_frames(setup.sub, 10)
        finally:
            feeder.cancel()
        indices = [frame_index(f) for f in frames]
        assert indices == sorted(set(indices))
        stats = (await a.stats())["video"]["senders"][0]
        assert stats["codec"] == "H264"


async def test_stats_per_track_and_close_ends_readers():
    def setup(a, b):
        a.video.put_nowait(indexed_frame(0))
        a.audio.put_nowait(tone(300, 0.02))
        setup.video = b.video.subscribe()
        setup.audio = b.audio.subscribe()

    async with connection_pair(setup) as (a, b):
        feeder = asyncio.create_task(feed_frames(a.video, 300, start=1))
        try:
            await _read_frames(setup.video, 10)
        finally:
            feeder.cancel()
        sent = (await a.stats())["video"]["senders"]
        received = (await b.stats())["video"]["receivers"]
        assert len(sent) == 1 and len(received) == 1
        assert sent[0]["frames_sent"] >= 10 and sent[0]["bytes_sent"] > 0
        assert sent[0]["keyframes"] >= 1 and sent[0]["bitrate"] > 0
        assert received[0]["frames_received"] >= 10 and received[0]["size"] == (320, 240)
        assert received[0]["packets_received"] > 0
        assert (await b.stats())["audio"]["receivers"][0]["blocks_received"] >= 0
        await b.close()
        async with asyncio.timeout(5):
            with pytest.raises(SubscriptionClosed):
                while True:
                    await setup.video.get()
            with pytest.raises(SubscriptionClosed):
                while True:
                    await setup.audio.get()


async def test_tracks_cannot_be_added_after_negotiation():
    async with connection_pair(lambda a, b: a.video.put_nowait(indexed_frame(0))) as (a, _b):
        with pytest.raises(RuntimeError, match="renegotiation"):
            a.video.addTrack()
