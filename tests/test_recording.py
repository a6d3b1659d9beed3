"""Recording a session: a TestPattern camera sent over a real connection, scripted control
messages from the operator, recorded by the robot and read back."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from _fanout_util import robot_with_viewers
from rtcbot.devices.sources import TestPattern
from rtcbot.media import VideoEncoderSettings
from rtcbot.media.fanout import shared_encoders
from rtcbot.media.recording import RecordedFrame, RecordedMessage, Recorder, Recording


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_a_session_is_recorded_and_replays_in_step(tmp_path, codec):
    camera = TestPattern(320, 240, fps=30)
    settings = VideoEncoderSettings(codec=codec)
    recorder = Recorder(tmp_path / "session.mkv", settings=settings)

    def setup(robot, i):
        robot.video.settings = settings
        robot.video.putSubscription(camera)

    sent_at_index = {}
    try:
        async with robot_with_viewers(1, setup) as (viewer,):
            recorder.addVideo(camera, "front")
            recorder.addMessages(viewer.robot)  # what the operator sends to the robot
            await viewer.seen.wait_for(5)
            # The connection and the recording share one encode of the camera.
            assert len(shared_encoders()) == 1 and shared_encoders()[0].viewers == 2
            for step in range(20):  # the operator steers while watching
                n = len(viewer.seen.indices)
                index = (await viewer.seen.wait_for(n + 3))[-1]
                viewer.conn.put_nowait({"step": step, "seen": index, "speed": step / 10})
                sent_at_index[step] = index
            viewer.conn.put_nowait(b"\x00\x01binary")
            async with asyncio.timeout(10):
                while recorder.messages < 21:
                    await viewer.seen.wait_for(len(viewer.seen.indices) + 1)
            recorded = recorder.statistics()["frames"]["front"]
            recorder.close()
            async with asyncio.timeout(10):
                await recorder
    finally:
        recorder.close()
        camera.close()
        await camera

    recording = Recording(tmp_path / "session.mkv")
    assert recording.tracks == ["front"]
    assert recording.frame_count("front") == recorded > 60
    control = [m for m in recording.messages if isinstance(m.message, dict)]
    assert [m.message["step"] for m in control] == list(range(20))
    assert all(m.channel == "default" for m in recording.messages)
    assert recording.messages[-1].message == b"\x00\x01binary"
    times = [m.time for m in recording.messages]
    assert times == sorted(times) and times[0] > 0
    # About 30 frames per second of recording.
    frames = [f for f in recording.items() if isinstance(f, RecordedFrame)]
    span = frames[-1].time - frames[0].time
    assert recorded / span == pytest.approx(30, rel=0.25)
    assert recording.duration >= frames[-1].time
    # In step: each command is recorded shortly after the frame the operator had just seen.
    when = {}
    for frame in frames:
        assert frame.image.shape == (240, 320, 3) and frame.image.dtype == np.uint8
        when.setdefault(TestPattern.read_index(frame.image), frame.time)
    for message in control:
        seen = message.message["seen"]
        assert seen in when
        assert 0 <= message.time - when[seen] < 1.0, (message, when[seen])
    # The JSON-lines file is readable without rtcbot.
    lines = (tmp_path / "session.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["rtcbot_recording"] == 1


async def test_replay_gives_frames_and_messages_in_time_order(tmp_path):
    camera = TestPattern(160, 120, fps=30, count=45)
    recorder = Recorder(tmp_path / "r.webm")
    try:
        recorder.addVideo(camera, "cam")
        recorder.put_nowait({"go": 1})
        async with asyncio.timeout(10):
            await camera.onClose()
        late = TestPattern(160, 120, fps=30, count=5)
        with pytest.raises(RuntimeError, match="before recording starts"):
            recorder.addVideo(late, "late")  # the file's tracks are fixed: refused loudly
        late.close()
        recorder.put_nowait({"stop": 1})
        recorder.close()
        async with asyncio.timeout(10):
            await recorder
    finally:
        recorder.close()
        camera.close()
    recording = Recording(tmp_path / "r.webm")
    assert recording.frame_count("cam") >= 40
    items = []
    async with asyncio.timeout(20):
        async for item in recording.replay(speed=0):
            items.append(item)
    times = [i.time for i in items]
    assert times == sorted(times)
    messages = [i for i in items if isinstance(i, RecordedMessage)]
    assert [m.message for m in messages] == [{"go": 1}, {"stop": 1}]
    assert messages[0].channel == "messages"
    indices = [TestPattern.read_index(i.image) for i in items if isinstance(i, RecordedFrame)]
    assert indices == sorted(indices) and len(indices) == recording.frame_count("cam")


def test_bad_input_is_refused_at_the_call_site(tmp_path):
    with pytest.raises(ValueError, match=r"'x\.avi'"):
        Recorder("x.avi")
    with pytest.raises(ValueError, match="webm"):
        Recorder(tmp_path / "x.webm", settings=VideoEncoderSettings(codec="H264"))
    recorder = Recorder(tmp_path / "m.mkv")
    try:
        with pytest.raises(TypeError, match="JSON"):
            recorder.put_nowait(object())
        recorder.put_nowait({"ok": True})  # the recorder goes on
    finally:
        recorder.close()
