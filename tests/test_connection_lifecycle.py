"""Signalling, events, closing, heartbeat and control timeout over real aiortc peers, in one
process and across two (reference 5.1 items 1, 3, 5, 11; 5.3 items 22, 23, 24, 26)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap

import pytest
from aiortc import RTCPeerConnection, VideoStreamTrack

from rtcbot import RTCConnection, SubscriptionClosed
from rtcbot.connection import (
    ConnectionLost,
    InvalidDescription,
    PeerVanished,
    SignalingError,
)
from rtcbot.testing import connected_pair
from rtcbot.testing.connection import connect


async def within(awaitable, seconds: float = 5.0):
    async with asyncio.timeout(seconds):
        return await awaitable


async def eventually(condition, seconds: float = 5.0) -> None:
    """Wait (bounded) until ``condition()`` holds, for states that have no event."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.02)


# ------------------------------------------------------------------------------ construction


def test_module_level_construction_then_asyncio_run():
    # defect 1: the loop was captured at construction; here nothing runs until asyncio.run
    code = textwrap.dedent(
        """
        import asyncio
        from rtcbot import RTCConnection
        from rtcbot.testing.connection import connect

        robot = RTCConnection(rtcConfiguration=[])
        desktop = RTCConnection(rtcConfiguration=[])
        got = []
        robot.subscribe(got.append)

        async def main():
            await connect(desktop, robot)
            desktop.put_nowait("hello")
            async with asyncio.timeout(5):
                while not got:
                    await asyncio.sleep(0.01)
            await desktop.close()
            await robot.close()

        asyncio.run(main())
        print(got)
        """
    )
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                            text=True, timeout=50)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['hello']"


def test_default_configuration_is_per_instance_and_contacts_nobody():
    # defect 26: a shared RTCConfiguration with Google's STUN server
    a, b = RTCConnection(), RTCConnection()
    assert a._configuration.iceServers == []
    assert a._configuration is not b._configuration
    assert a._pc is None  # no aiortc peer connection until signalling


async def test_ice_servers_as_browser_dicts_are_used():
    conn = RTCConnection(rtcConfiguration=[{"urls": "stun:127.0.0.1:9"}])
    assert conn._configuration.iceServers[0].urls == "stun:127.0.0.1:9"
    conn.close()


async def test_loop_argument_is_accepted():
    loop = asyncio.get_running_loop()
    async with connected_pair(RTCConnection(loop=loop, rtcConfiguration=[]),
                              RTCConnection(rtcConfiguration=[])) as (a, b):
        a.put_nowait(1)
        assert await within(b.get()) == 1


# ------------------------------------------------------------------------------ signalling


async def test_second_offer_to_an_answered_connection_is_a_clear_error():
    # defect 22: InvalidStateError -> HTTP 500 on page reload
    async with connected_pair() as (_a, b):
        other = RTCConnection(rtcConfiguration=[])
        offer = await within(other.getLocalDescription())
        with pytest.raises(SignalingError, match="new RTCConnection"):
            await within(b.getLocalDescription(offer))
        # the established session is unaffected
        assert b.ready
        await other.close()


async def test_a_new_connection_per_client_reconnects():
    # the reconnect rule: each client (or page reload) gets its own RTCConnection
    robot_side = []
    for _ in range(2):
        async with connected_pair() as (browser, robot):
            robot_side.append(robot)
            browser.put_nowait("hi")
            assert await within(robot.get()) == "hi"
    assert all(r.closed for r in robot_side)


async def test_answer_without_offer_is_refused():
    a = RTCConnection(rtcConfiguration=[])
    b = RTCConnection(rtcConfiguration=[])
    offer = await within(a.getLocalDescription())
    answer = await within(b.getLocalDescription(offer))
    with pytest.raises(SignalingError, match="made no offer"):
        await within(b.setRemoteDescription(answer))
    await a.close()
    await b.close()


async def test_asking_twice_returns_the_same_offer():
    a = RTCConnection(rtcConfiguration=[])
    first = await within(a.getLocalDescription())
    assert await within(a.getLocalDescription()) == first
    assert first["type"] == "offer" and "m=application" in first["sdp"]
    await a.close()


async def test_bad_sdp_is_rejected_and_the_connection_still_works():
    a = RTCConnection(rtcConfiguration=[])
    b = RTCConnection(rtcConfiguration=[])
    with pytest.raises(InvalidDescription, match="rejected"):
        await within(b.getLocalDescription(
            {"sdp": "v=0\r\nm=application 9 NOPE/NOPE x\r\n", "type": "offer"}))
    with pytest.raises(InvalidDescription, match="'type'"):
        await within(b.setRemoteDescription({"sdp": "v=0"}))
    async with connected_pair(a, b):
        a.put_nowait("ok")
        assert await within(b.get()) == "ok"


async def test_signalling_a_closed_connection_is_refused():
    conn = RTCConnection(rtcConfiguration=[])
    conn.close()
    with pytest.raises(SignalingError, match="closed"):
        await within(conn.getLocalDescription())


# ------------------------------------------------------------------------------ events and closing


async def test_events_fire_once_and_errors_are_exceptions():
    # defect 3: onReady re-fired on close; defect 5: onError got the string "failed"
    a = RTCConnection(rtcConfiguration=[])
    b = RTCConnection(rtcConfiguration=[])
    events: list = []
    a.onReady(lambda: events.append("ready"))
    a.onClose(lambda: events.append("close"))
    a.onError(lambda e: events.append(e))
    await within(connect(a, b))
    assert a.ready and b.ready
    await a.close()
    await within(b.onClose())
    assert events == ["ready", "close"]
    assert not a.ready and not b.ready


async def test_remote_close_is_noticed():
    # defect 23: noticed through aiortc's public events, not private transports
    async with connected_pair() as (a, b):
        reader = asyncio.ensure_future(b.get())
        a.close()
        await within(b.onClose())
        assert b.closed and b.error is None
        with pytest.raises(SubscriptionClosed):
            await within(reader)


async def test_close_without_await_closes_and_await_close_waits():
    # defect 11: close() returned a future or blocked on run_until_complete
    async with connected_pair() as (a, b):
        result = a.close()  # not awaited: still closes
        assert a.closed
        await within(result)  # awaiting it waits until the peer connection is shut down
        assert a._pc.connectionState == "closed"
        await within(b.onClose())
        await within(b.close())  # closing again is harmless
        await within(a.close())


async def test_close_before_connecting_and_before_any_loop_is_immediate():
    conn = RTCConnection(rtcConfiguration=[])
    await within(conn.close(), 1)
    assert conn.closed


async def test_control_timeout_fires_rearms_and_runs_on_close():
    async with connected_pair() as (desktop, robot):
        stops: list[str] = []
        fired = asyncio.Event()

        def stop() -> None:
            stops.append("stop")
            fired.set()

        robot.set_control_timeout(0.2, stop)
        await within(fired.wait())  # silence: the robot stops
        assert stops == ["stop"]
        fired.clear()
        desktop.put_nowait({"forward": 1})
        assert await within(robot.get()) == {"forward": 1}
        await within(fired.wait())  # re-armed by the message, fires after the next silence
        assert stops == ["stop", "stop"]
        desktop.put_nowait({"forward": 1})
        assert await within(robot.get()) == {"forward": 1}
        robot.set_control_timeout(60, stop)  # long: only the close can fire it now
        desktop.put_nowait({"forward": 1})
        assert await within(robot.get()) == {"forward": 1}
        fired.clear()
        desktop.close()  # the operator leaves
        await within(fired.wait())
        assert stops == ["stop", "stop", "stop"]


async def test_async_control_timeout_action_completes_after_close():
    done = []

    async def stop_motors() -> None:
        await asyncio.sleep(0)
        done.append(True)

    async with connected_pair() as (_desktop, robot):
        robot.set_control_timeout(30, stop_motors)
        robot.close()
        await within(robot)  # waits for the stop action
        assert done == [True]


async def test_control_timeout_arguments_are_checked():
    conn = RTCConnection(rtcConfiguration=[])
    with pytest.raises(ValueError, match="positive"):
        conn.set_control_timeout(0, lambda: None)
    with pytest.raises(TypeError, match="on_timeout"):
        conn.set_control_timeout(1.0)
    conn.close()


async def test_one_remote_track_ending_does_not_close_the_connection():
    # defect 24: the end of the first remote track closed the whole connection
    raw = RTCPeerConnection()
    raw_channel = raw.createDataChannel("default")
    sender = raw.addTrack(VideoStreamTrack())
    robot = RTCConnection(rtcConfiguration=[])
    try:
        await raw.setLocalDescription(await raw.createOffer())
        answer = await within(robot.getLocalDescription(
            {"sdp": raw.localDescription.sdp, "type": "offer"}))
        await raw.setRemoteDescription(_desc(answer))
        await within(robot.onReady())
        remote_track = robot._pc.getReceivers()[0].track
        ended = asyncio.Event()
        remote_track.on("ended", ended.set)
        # the end of a track shows to whoever reads it (rtcbot's receiver, or this reader)
        reader = asyncio.ensure_future(_drain_track(remote_track))
        await within(sender.stop())  # RTCP BYE: the remote track ends
        try:
            await within(ended.wait())
        finally:
            reader.cancel()
        opened = asyncio.Event()
        raw_channel.on("message", lambda m: opened.set())
        robot.put_nowait("still connected")
        await within(opened.wait())
        assert not robot.closed
    finally:
        await robot.close()
        await raw.close()


async def _drain_track(track) -> None:
    from aiortc.mediastreams import MediaStreamError

    try:
        while True:
            await track.recv()
    except MediaStreamError:
        return


def _desc(d: dict):
    from aiortc import RTCSessionDescription

    return RTCSessionDescription(sdp=d["sdp"], type=d["type"])


# ------------------------------------------------------------------------------ stats


async def test_stats_report_round_trip_and_message_counts():
    async with connected_pair() as (a, b):
        a.put_nowait(1)
        await within(b.get())
        # the first pong answers the first ping
        await eventually(lambda: a._heartbeat.statistics().rtt_avg_ms is not None)
        stats = await a.stats()
        assert stats["state"] == "connected" and stats["role"] == "offerer"
        assert stats["rtt_ms"] > 0
        assert stats["heartbeat"]["pongs_received"] >= 1
        assert stats["channels"]["default"]["sent"] == 1
        assert (await b.stats())["channels"]["default"]["received"] == 1
        json.dumps(stats)  # plain data


# ------------------------------------------------------------------------------ two processes


class _Peer:
    """``python -m rtcbot.testing.connection`` in a child process: an echo peer."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, *args: str) -> _Peer:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rtcbot.testing.connection", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def read(self) -> dict:
        line = await within(self.proc.stdout.readline(), 30)
        assert line, "the peer process ended"
        return json.loads(line)

    def write(self, obj: dict) -> None:
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await within(self.proc.wait(), 10)


@pytest.mark.process
async def test_messages_across_two_processes():
    peer = await _Peer.start()
    conn = RTCConnection(rtcConfiguration=[])
    try:
        peer.write(await within(conn.getLocalDescription()))
        await within(conn.setRemoteDescription(await peer.read()), 10)
        await within(conn.onReady(), 10)
        for i in range(3):
            conn.put_nowait({"i": i})
        assert [await within(conn.get()) for _ in range(3)] == [{"i": 0}, {"i": 1}, {"i": 2}]
        peer.proc.stdin.close()  # the peer closes cleanly: we notice
        await within(conn.onClose(), 10)
        assert conn.error is None
    finally:
        await within(conn.close(), 10)  # sockets released before the loop ends
        await peer.stop()


@pytest.mark.process
@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill", "freeze"])
async def test_a_vanished_peer_closes_the_connection(how):
    # process killed (no goodbye on the wire) or frozen (as a cut network): the heartbeat
    # notices; RTCBot 0.2.5 needed about 30 s.
    peer = await _Peer.start("--offer")
    conn = RTCConnection(rtcConfiguration=[])
    stops = []
    try:
        answer = await within(conn.getLocalDescription(await peer.read()), 10)
        peer.write(answer)
        await within(conn.onReady(), 10)
        conn.set_control_timeout(60, lambda: stops.append("stop"))
        conn.put_nowait("ping")
        assert await within(conn.get()) == "ping"
        # the peer speaks heartbeat before we cut it
        await eventually(lambda: conn._heartbeat.statistics().peer_speaks_heartbeat, 10)
        if how == "kill":
            peer.proc.kill()
        else:
            peer.proc.send_signal(signal.SIGSTOP)
        error = await within(conn.onError(), 10)
        assert isinstance(error, PeerVanished) and isinstance(error, ConnectionLost)
        assert "vanished" in str(error)
        assert conn.closed
        assert stops == ["stop"]  # the robot stopped
        await within(conn.close())  # shutting down towards a dead peer is prompt too
    finally:
        await within(conn.close(), 10)  # sockets released before the loop ends
        if how == "freeze" and peer.proc.returncode is None:
            peer.proc.send_signal(signal.SIGCONT)
        await peer.stop()


async def test_a_peer_that_leaves_before_connecting_is_a_connect_timeout():
    # aiortc alone stays in "checking"/"connecting" for minutes when the peer is gone
    client = RTCConnection(rtcConfiguration=[], connect_timeout=1.0)
    robot = RTCConnection(rtcConfiguration=[])
    offer = await client.getLocalDescription()
    answer = await robot.getLocalDescription(offer)
    await robot.close()  # the robot goes away before the handshake could complete
    await client.setRemoteDescription(answer)
    err = await within(client.onError(), 10)
    assert isinstance(err, ConnectionLost) and "could not connect within 1 s" in str(err)
    assert client.closed
    await within(client, 10)  # and its sockets are released


async def test_connect_timeout_is_checked():
    with pytest.raises(ValueError, match="connect_timeout"):
        RTCConnection(connect_timeout=0)


@pytest.mark.process
@pytest.mark.slow
async def test_video_across_two_processes():
    from rtcbot.devices.sources import TestPattern

    peer = await _Peer.start("--media")
    pattern = TestPattern(width=320, height=240, fps=30)
    conn = RTCConnection(rtcConfiguration=[])
    try:
        conn.video.putSubscription(pattern)
        frames = conn.video.subscribe()  # the peer's echo of our video
        peer.write(await within(conn.getLocalDescription()))
        await within(conn.setRemoteDescription(await peer.read()), 10)
        indices = []
        async with asyncio.timeout(20):
            while len(indices) < 30:
                frame = await frames.get()
                assert frame.shape == (240, 320, 3) and frame.flags.c_contiguous
                index = TestPattern.read_index(frame)
                if index is not None:
                    indices.append(index)
        assert indices == sorted(indices) and len(set(indices)) == len(indices)
        assert indices[-1] - indices[0] < 60  # fresh frames, not a backlog
    finally:
        pattern.close()
        await within(conn.close(), 10)  # its sockets are released before the loop ends
        await peer.stop()


async def test_a_media_only_peer_is_served_and_not_closed():
    # a viewer that offers video and no data channel (a plain WebRTC player)
    from aiortc import RTCConfiguration, RTCSessionDescription

    from rtcbot.devices.sources import TestPattern

    pattern = TestPattern(width=160, height=120, fps=30)
    robot = RTCConnection(rtcConfiguration=[])
    robot.video.putSubscription(pattern)
    viewer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    viewer.addTransceiver("video", direction="recvonly")
    tracks: asyncio.Queue = asyncio.Queue()
    viewer.on("track", tracks.put_nowait)
    try:
        await viewer.setLocalDescription(await viewer.createOffer())
        offer = {"sdp": viewer.localDescription.sdp, "type": viewer.localDescription.type}
        answer = await within(robot.getLocalDescription(offer), 10)
        await viewer.setRemoteDescription(RTCSessionDescription(**answer))
        track = await within(tracks.get(), 10)
        frame = await within(track.recv(), 10)
        assert (frame.width, frame.height) == (160, 120)
        await within(robot.onReady(), 10)
        assert not robot.closed
    finally:
        pattern.close()
        await robot.close()
        await viewer.close()
