"""Named tracks between two Python peers: the name given to addTrack reaches the peer as the
track's stream id (receiver.name), whichever side makes the offer."""

from __future__ import annotations

import asyncio

import pytest

from _media_util import connection_pair, feed_frames, frame_index
from rtcbot import RTCConnection


@pytest.mark.parametrize("robot_offers", [True, False])
async def test_names_reach_the_peer(robot_offers):
    names = ["front", "rear", "arm.left"]

    def setup(a, b):
        robot, viewer = (a, b) if robot_offers else (b, a)
        setup.senders = [robot.video.addTrack(name=name) for name in names]
        setup.tracks = viewer.video.onTrack()
        viewer.video.offerToReceive(3)

    async with connection_pair(setup):
        feeders = [
            asyncio.create_task(feed_frames(sender, 300, start=1000 * (i + 1)))
            for i, sender in enumerate(setup.senders)
        ]
        try:
            async with asyncio.timeout(10):
                receivers = [await setup.tracks.get() for _ in names]
            by_name = {r.name: r for r in receivers}
            assert sorted(by_name) == sorted(names)
            for i, name in enumerate(names):  # each name carries its own source's frames
                async with asyncio.timeout(10):
                    frame = await by_name[name].subscribe().get()
                assert frame_index(frame) // 1000 == i + 1
        finally:
            for feeder in feeders:
                feeder.cancel()


def test_bad_and_duplicate_names_are_refused():
    conn = RTCConnection(rtcConfiguration=[])
    try:
        conn.video.addTrack(name="front")
        with pytest.raises(ValueError, match="already has a track named 'front'"):
            conn.video.addTrack(name="front")
        with pytest.raises(ValueError, match="'front camera'"):
            conn.video.addTrack(name="front camera")
        with pytest.raises(ValueError, match="got 7"):
            conn.video.addTrack(name=7)
        conn.audio.addTrack(name="front")  # a camera's microphone may share its name
    finally:
        conn.close()
