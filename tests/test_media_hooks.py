"""rtcbot's uses of aiortc internals (rtcbot/connection/_media_hooks.py), and the send-path seam
between the encoder and the per-connection track.

If an aiortc upgrade breaks one of these tests, the matching hook in ``_media_hooks.py`` needs
updating: rtcbot then falls back to aiortc's stock behaviour (keyframe requests ignored,
one frame of extra receive latency), with a warning.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, rtp
from aiortc.jitterbuffer import JitterBuffer

from _media_util import connection_pair, feed_frames, indexed_frame
from rtcbot.connection._media import EncodedVideoTrack, VideoSender
from rtcbot.connection._media_hooks import (
    hook_sender_feedback,
    install_jitter_buffer,
    installed_jitter_buffer,
    negotiated_codec,
)
from rtcbot.media import MarkerJitterBuffer, VideoEncoderSettings


async def test_aiortc_internals_are_where_the_hooks_expect_them():
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        transceiver = pc.addTransceiver("video")
        receiver = transceiver.receiver
        stock = receiver._RTCRtpReceiver__jitter_buffer
        assert isinstance(stock, JitterBuffer) and stock._is_video
        assert asyncio.iscoroutinefunction(transceiver.sender._handle_rtcp_packet)
        assert hasattr(transceiver, "_codecs")
        assert install_jitter_buffer(receiver, MarkerJitterBuffer())
        assert isinstance(installed_jitter_buffer(receiver), MarkerJitterBuffer)
    finally:
        await pc.close()


async def test_sender_feedback_reaches_rtcbot():
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        sender = pc.addTransceiver("video").sender
        requests, estimates = [], []
        assert hook_sender_feedback(sender, lambda: requests.append(1), estimates.append)
        assert hook_sender_feedback(sender, lambda: requests.append(1), estimates.append)
        pli = rtp.RtcpPsfbPacket(fmt=rtp.RTCP_PSFB_PLI, ssrc=1, media_ssrc=sender._ssrc)
        fir = rtp.RtcpPsfbPacket(fmt=rtp.RTCP_PSFB_FIR, ssrc=1, media_ssrc=sender._ssrc)
        remb = rtp.RtcpPsfbPacket(
            fmt=rtp.RTCP_PSFB_APP,
            ssrc=1,
            media_ssrc=0,
            fci=rtp.pack_remb_fci(700_000, [sender._ssrc]),
        )
        other = rtp.RtcpPsfbPacket(
            fmt=rtp.RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=rtp.pack_remb_fci(1, [12345])
        )
        for packet in (pli, fir, remb, other):
            await sender._handle_rtcp_packet(packet)
        assert len(requests) == 2  # hooked once, though asked twice
        assert len(estimates) == 1 and abs(estimates[0] - 700_000) < 700_000 * 0.01
    finally:
        await pc.close()


async def test_received_video_is_released_at_the_marker_bit():
    def setup(a, b):
        a.video.put_nowait(indexed_frame(0))
        setup.sub = b.video.subscribe()

    async with connection_pair(setup) as (a, b):
        feeder = asyncio.create_task(feed_frames(a.video, 300, start=1))
        try:
            async with asyncio.timeout(10):
                for _ in range(10):
                    await setup.sub.get()
        finally:
            feeder.cancel()
        receiver = b._pc.getReceivers()[0]
        buffer = installed_jitter_buffer(receiver)
        assert buffer is not None
        assert buffer.frames >= 10 and buffer.frames_by_marker == buffer.frames
        transceiver = a._pc.getTransceivers()[0]
        assert negotiated_codec(transceiver) == "VP8"


async def test_a_new_viewer_starts_on_a_keyframe():
    """The seam for one encode feeding several connections: a second per-connection track on
    the same encoder asks for a keyframe and holds back delta frames until it comes."""
    sender = VideoSender(
        settings=VideoEncoderSettings(keyframe_interval=60.0, min_keyframe_gap=0.0)
    )
    try:
        first = sender.videoStreamTrack
        feeder = asyncio.create_task(feed_frames(sender, 600, fps=60))
        async with asyncio.timeout(10):
            packets = [await first.recv() for _ in range(5)]
        assert [bool(p.is_keyframe) for p in packets] == [True, False, False, False, False]
        first.stop()  # the first viewer leaves (aiortc stops its track)
        second = EncodedVideoTrack(sender)  # a new viewer of the same encoder
        async with asyncio.timeout(10):
            packet = await second.recv()
        assert packet.is_keyframe
        assert sender._statistics()["forced_keyframes"] >= 1
        assert packet.pts > packets[-1].pts and packet.time_base.denominator == 90000
    finally:
        feeder.cancel()
        sender.close()
        await sender


async def test_a_closed_sender_ends_its_track():
    from aiortc.mediastreams import MediaStreamError

    sender = VideoSender()
    sender.put_nowait(np.zeros((16, 16, 3), np.uint8))
    async with asyncio.timeout(5):
        assert (await sender.videoStreamTrack.recv()).is_keyframe
        pending = asyncio.ensure_future(sender.videoStreamTrack.recv())
        sender.close()
        with pytest.raises(MediaStreamError):
            await pending
    assert sender.videoStreamTrack.readyState == "ended"


async def test_stream_ids_and_answer_codecs_are_where_the_hooks_expect_them():
    from rtcbot.connection._media_hooks import prefer_codec_in_answer, set_stream_id

    offerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    answerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        offerer.addTransceiver("video", direction="recvonly")  # VP8 first, as browsers offer
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        transceiver = answerer.getTransceivers()[0]
        sender = answerer.addTrack(EncodedVideoTrack(VideoSender()))
        assert isinstance(sender._stream_id, str)
        assert set_stream_id(sender, "front")
        assert prefer_codec_in_answer(transceiver, "H264")
        assert not prefer_codec_in_answer(transceiver, "AV1")  # not offered: unchanged
        await answerer.setLocalDescription(await answerer.createAnswer())
        answer = answerer.localDescription.sdp
        assert "a=msid:front " in answer
        await offerer.setRemoteDescription(answerer.localDescription)
        assert negotiated_codec(offerer.getTransceivers()[0]) == "H264"
    finally:
        await offerer.close()
        await answerer.close()


async def test_remote_track_names_are_read_once_from_aiortc_parsed_description():
    from aiortc import sdp

    from rtcbot.connection import _media_hooks

    offerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    answerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        senders = [offerer.addTrack(EncodedVideoTrack(VideoSender())) for _ in range(3)]
        for name, sender in zip(("front", "back", "arm"), senders, strict=True):
            assert _media_hooks.set_stream_id(sender, name)
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        # the private parsed description the hook reads is where it expects it
        parsed = getattr(answerer, _media_hooks._REMOTE_ATTR)()
        assert isinstance(parsed, sdp.SessionDescription)
        tracks = [t.receiver.track for t in answerer.getTransceivers()]
        names = [_media_hooks.remote_stream_id(answerer, track) for track in tracks]
        assert names == ["front", "back", "arm"]
        # one reading for the three tracks: the cache holds that very description
        assert _media_hooks._stream_ids[answerer][0] is parsed
    finally:
        await offerer.close()
        await answerer.close()
