"""The media senders and receivers honour the producer/consumer contract (rtcbot.testing), and
the senders' own rules (no skipping when told, audio of any accepted shape becomes 20 ms s16
stereo frames)."""

from __future__ import annotations

import asyncio

import numpy as np
from aiortc import AudioStreamTrack, VideoStreamTrack

from _media_util import frame_index, indexed_frame
from rtcbot.connection._media import AudioReceiver, AudioSender, VideoReceiver, VideoSender
from rtcbot.testing import check_consumer, check_producer


async def test_video_sender_is_a_consumer():
    await check_consumer(VideoSender, sample=lambda i: indexed_frame(i, 32, 48))


async def test_audio_sender_is_a_consumer():
    await check_consumer(AudioSender, sample=lambda i: np.zeros(480))


async def test_video_receiver_is_a_producer_of_contiguous_bgr():
    frames = []

    def make():
        receiver = VideoReceiver(VideoStreamTrack())  # aiortc's green test pattern
        receiver.subscribe(frames.append)
        return receiver

    await check_producer(make)
    assert frames[0].shape == (480, 640, 3) and frames[0].flags.c_contiguous
    assert frames[0][..., 1].mean() > frames[0][..., 0].mean()  # green, in BGR order


async def test_audio_receiver_is_a_producer_of_float32_48k():
    blocks = []

    def make():
        receiver = AudioReceiver(AudioStreamTrack())  # aiortc's silence, 8 kHz mono
        receiver.subscribe(blocks.append)
        return receiver

    await check_producer(make)
    assert blocks[0].dtype == np.float32 and blocks[0].shape[1] == 1
    assert 0 < len(blocks[0]) <= 960 and not blocks[0].any()


async def test_video_sender_without_skipping_sends_every_frame_in_order():
    sender = VideoSender(canSkip=False)
    try:
        for i in range(8):  # a burst, faster than any frame rate
            sender.put_nowait(indexed_frame(i, 64, 96))
        track = sender.videoStreamTrack
        async with asyncio.timeout(10):
            packets = [await track.recv() for _ in range(8)]
        assert [p.pts for p in packets] == sorted(p.pts for p in packets)
        assert sender._statistics()["frames_skipped"] == 0
        assert sender._statistics()["frames_encoded"] == 8
    finally:
        sender.close()
        await sender


async def test_audio_sender_makes_20ms_stereo_frames_from_any_accepted_shape():
    sender = AudioSender()
    try:
        sender.put_nowait(np.full(500, 0.5))  # mono float, odd sizes
        sender.put_nowait(np.full((700, 2), 1000, np.int16))  # stereo int16
        sender.put_nowait(np.full((800, 1), -1.0, np.float32))
        track = sender.audioStreamTrack
        async with asyncio.timeout(5):
            frames = [await track.recv(), await track.recv()]
        assert [f.samples for f in frames] == [960, 960]
        assert [f.pts for f in frames] == [0, 960]
        data = np.concatenate([f.to_ndarray().reshape(-1, 2) for f in frames])
        assert data.dtype == np.int16
        assert (data[:500] == 16384).all()  # 0.5 * 32767, both channels
        assert (data[500:1200] == 1000).all()
        assert (data[1200:1920] == -32767).all()  # -1.0 does not overflow
    finally:
        sender.close()
        await sender


def test_frame_index_helper_round_trips():
    assert [frame_index(indexed_frame(i)) for i in (0, 1, 77, 4095)] == [0, 1, 77, 4095]
