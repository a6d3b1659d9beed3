"""Resumable sessions: the rules (a plain class fed ``now``) and real aiortc peers over
loopback whose transport is killed under them."""

from __future__ import annotations

import asyncio

import pytest

from rtcbot import RTCConnection
from rtcbot.connection import ConnectionLost, PeerVanished, SessionGone, SignalingError
from rtcbot.connection._heartbeat import Heartbeat
from rtcbot.connection._resume import ResumePolicy, check_window
from rtcbot.testing.connection import connect


async def within(awaitable, seconds: float = 10.0):
    async with asyncio.timeout(seconds):
        return await awaitable


# ------------------------------------------------------------------------------ the rules


def test_policy_backoff_window_and_statistics():
    policy = ResumePolicy(10.0, backoff_initial=0.25, backoff_max=1.0, attempt_timeout=2.0)
    assert not policy.lost(0.0)  # never up: nothing to resume
    assert not policy.connected(1.0)  # the first connect is no restore
    assert policy.up and policy.deadline is None
    assert policy.lost(5.0) and not policy.lost(5.1)
    assert policy.deadline == 15.0
    assert policy.attempt_due(5.0)  # the first attempt at once
    assert policy.attempt_started(5.0) == 7.0
    assert not policy.attempt_due(5.5)  # one at a time
    starts = []
    now = 7.0
    for _ in range(4):
        policy.attempt_failed(now)
        start = policy.next_attempt()
        starts.append(start - now)
        now = start
        assert policy.attempt_due(now)
        policy.attempt_started(now)
        now += 0.1
    assert starts == [0.25, 0.5, 1.0, 1.0]  # doubling, capped
    assert not policy.expired(14.9) and policy.expired(15.0)
    assert policy.connected(9.0)  # back: the gap is recorded
    stats = policy.statistics(9.0)
    assert (stats.state, stats.losses, stats.restores, stats.attempts) == ("up", 1, 1, 5)
    assert stats.failed_attempts == 4 and stats.last_gap_s == pytest.approx(4.0)
    assert stats.gap_s is None
    # a second gap starts with the initial back-off again
    assert policy.lost(20.0)
    policy.attempt_started(20.0)
    policy.attempt_failed(20.5)
    assert policy.next_attempt() == pytest.approx(20.75)
    assert policy.statistics(21.0).gap_s == pytest.approx(1.0)
    policy.close()
    assert not policy.connected(22.0) and not policy.lost(22.0)


def test_policy_window_settings():
    assert ResumePolicy(None).deadline is None
    forever = ResumePolicy(None)
    forever.connected(0.0)
    forever.lost(1.0)
    assert forever.deadline is None and not forever.expired(1e9)
    assert not ResumePolicy(0).enabled and ResumePolicy(0.5).enabled
    assert check_window(float("inf")) is None
    with pytest.raises(ValueError, match="resume_window"):
        check_window(-1)
    with pytest.raises(TypeError, match="resume_window"):
        check_window("30")
    with pytest.raises(ValueError, match="backoff_max"):
        ResumePolicy(backoff_initial=2.0, backoff_max=1.0)
    with pytest.raises(ValueError, match="resume_window"):
        RTCConnection(resume_window=-2)
    with pytest.raises(ValueError, match="timeout"):
        RTCConnection(heartbeat_timeout=0)


def test_heartbeat_resume_flag_bye_and_reset():
    ours, theirs = Heartbeat(), Heartbeat()
    ours.start(0.0)
    ours.advertise_resume = True
    ping = ours.make_ping(0.0)
    assert '"resume":true' in ping
    assert theirs.receive(ping, 0.01) is not None and theirs.peer_resumes
    assert not theirs.peer_said_bye
    assert theirs.receive(Heartbeat.make_bye(), 0.02) is None and theirs.peer_said_bye
    assert theirs.deadline is not None
    theirs.reset()  # a new transport: not held to the timeout until it speaks again
    assert theirs.deadline is None and not theirs.started
    assert theirs.statistics().peer_speaks_heartbeat is False
    # a ping without the flag does not clear it; a hostile value does not set it
    fresh = Heartbeat()
    fresh.receive('{"ping": 1, "resume": "yes"}', 0.0)
    assert not fresh.peer_resumes


# ------------------------------------------------------------------------------ real peers


def kill_transport(conn: RTCConnection) -> None:
    """Cut the link under ``conn``: stop its ICE transport (as when its network goes away).
    The peer hears nothing more; its heartbeat notices."""
    ice = conn._pc.sctp.transport.transport
    asyncio.get_running_loop().create_task(ice.stop())


def resumable_pair(gate: asyncio.Event | None = None, **options):
    robot = RTCConnection(rtcConfiguration=[], **options)
    viewer = RTCConnection(rtcConfiguration=[], **options)
    offers = []

    async def send_offer(offer):
        offers.append(offer)
        if gate is not None:  # the signalling path is down until the gate opens
            await gate.wait()
        return await robot.accept_resume(offer)

    viewer.set_resume_signaling(send_offer)
    return viewer, robot, offers


async def close_both(*conns):
    for conn in conns:
        conn.close()
    for conn in conns:
        await within(conn, 10)


async def test_a_killed_transport_resumes_with_the_same_objects():
    gate = asyncio.Event()
    viewer, robot, offers = resumable_pair(gate)
    robot_channel = robot.addDataChannel("telemetry")
    stops = []
    robot.set_control_timeout(0.3, lambda: stops.append(asyncio.get_running_loop().time()))
    viewer_lost, robot_lost, restored, closed = [], [], [], []
    viewer.on_link_lost(viewer_lost.append)
    robot.on_link_lost(robot_lost.append)
    viewer.on_link_restored(lambda: restored.append("viewer"))
    robot.on_link_restored(lambda: restored.append("robot"))
    viewer.onClose(lambda: closed.append("viewer"))
    robot.onClose(lambda: closed.append("robot"))
    commands = robot.subscribe()
    try:
        await within(connect(viewer, robot))
        viewer_channel = await within(viewer.onDataChannel().get())
        assert viewer_channel.name == "telemetry"
        telemetry = viewer_channel.subscribe()
        viewer.put_nowait({"cmd": 1})
        assert await within(commands.get()) == {"cmd": 1}
        # the heartbeat told the robot that the viewer resumes
        await within(_until(lambda: robot._heartbeat.peer_resumes))
        first_pc = viewer._pc

        lost_wait = robot.on_link_lost()
        kill_transport(viewer)
        reason = await within(lost_wait)
        assert isinstance(reason, ConnectionLost)
        assert viewer_lost and robot_lost
        assert not robot.link_up
        # messages sent during the gap wait and go out after the resume, in order
        viewer.put_nowait({"cmd": 2})
        viewer.put_nowait({"cmd": 3})
        await within(_until(lambda: stops))  # the robot stops during the gap
        assert not closed and commands.qsize() == 0
        gate.set()
        assert await within(commands.get()) == {"cmd": 2}
        assert await within(commands.get()) == {"cmd": 3}
        await within(_until(lambda: viewer.link_up and robot.link_up))
        assert viewer._pc is not first_pc and offers  # a new transport, through signalling
        assert sorted(restored) == ["robot", "viewer"]
        # the same channel objects carry on both ways
        assert viewer.getDataChannel("telemetry") is viewer_channel
        assert robot.getDataChannel("telemetry") is robot_channel
        robot_channel.put_nowait("after")
        assert await within(telemetry.get()) == "after"
        viewer.put_nowait({"cmd": 4})
        assert await within(commands.get()) == {"cmd": 4}
        assert not closed and not viewer.closed and not robot.closed
        fired = len(stops)
        await within(_until(lambda: len(stops) > fired))  # re-armed by the command after
        stats = await robot.stats()
        assert stats["link"]["losses"] == 1 and stats["link"]["restores"] == 1
        assert viewer.link_statistics().attempts >= 1
    finally:
        await close_both(viewer, robot)
    assert sorted(closed) == ["robot", "viewer"]


async def test_video_resumes_on_the_same_subscription():
    from rtcbot.devices.sources import TestPattern

    viewer, robot, _ = resumable_pair()
    pattern = TestPattern(width=160, height=120, fps=30)
    robot.video.putSubscription(pattern)
    frames = viewer.video.subscribe()
    receivers = []
    viewer.video.onTrack(receivers.append)
    try:
        await within(connect(viewer, robot))
        await within(frames.get())
        kill_transport(robot)  # the answerer's side this time: the offerer notices quietly
        await within(viewer.on_link_lost(), 10)
        await within(viewer.on_link_restored(), 10)
        index = None
        for _ in range(60):
            index = TestPattern.read_index(await within(frames.get()))
            if index is not None:
                break
        assert index is not None  # frames of the new transport on the same subscription
        assert len(receivers) == 1  # the same receiver object, not a second track
        assert not receivers[0].closed
    finally:
        pattern.close()
        await close_both(viewer, robot)


async def test_the_window_expires_and_both_sides_close():
    robot = RTCConnection(rtcConfiguration=[], resume_window=1.0)
    viewer = RTCConnection(rtcConfiguration=[], resume_window=1.0)
    tries = []

    async def unreachable(offer):
        tries.append(offer)
        raise ConnectionError("no route to the robot")

    viewer.set_resume_signaling(unreachable)
    try:
        await within(connect(viewer, robot))
        await within(_until(lambda: robot._heartbeat.peer_resumes))
        kill_transport(viewer)
        await within(viewer.on_link_lost())
        assert not viewer.closed
        await within(viewer.onClose())
        await within(robot.onClose())  # its own window (1 s after its heartbeat noticed)
        assert isinstance(viewer.error, PeerVanished) and "resume window" in str(viewer.error)
        assert isinstance(robot.error, PeerVanished)
        assert len(tries) >= 2  # retried with back-off
    finally:
        await close_both(viewer, robot)


async def test_session_gone_stops_at_once():
    robot = RTCConnection(rtcConfiguration=[])
    viewer = RTCConnection(rtcConfiguration=[], resume_window=None)

    async def refused(offer):
        raise SessionGone("the robot does not know this session (HTTP 404)")

    viewer.set_resume_signaling(refused)
    try:
        await within(connect(viewer, robot))
        kill_transport(viewer)
        await within(viewer.onClose())
        assert isinstance(viewer.error, SessionGone)
    finally:
        await close_both(viewer, robot)


async def test_an_explicit_close_is_not_a_lost_link():
    viewer, robot, _ = resumable_pair(resume_window=None)
    lost = []
    robot.on_link_lost(lost.append)
    try:
        await within(connect(viewer, robot))
        await within(_until(lambda: robot._heartbeat.peer_resumes))
        viewer.close()
        await within(robot.onClose())  # the goodbye: no waiting for a resume that never comes
        assert not lost and robot.error is None
    finally:
        await close_both(viewer, robot)


async def test_without_resume_signaling_a_lost_link_closes_as_before():
    robot = RTCConnection(rtcConfiguration=[])
    viewer = RTCConnection(rtcConfiguration=[])
    lost = []
    viewer.on_link_lost(lost.append)
    try:
        await within(connect(viewer, robot))
        kill_transport(viewer)
        await within(viewer.onClose())
        await within(robot.onClose())  # its heartbeat: the viewer never said it resumes
        assert not lost
        assert isinstance(robot.error, PeerVanished)
    finally:
        await close_both(viewer, robot)


async def test_accept_resume_refuses_what_cannot_resume():
    offerer = RTCConnection(rtcConfiguration=[])
    answerer = RTCConnection(rtcConfiguration=[], resume_window=0)
    try:
        with pytest.raises(SignalingError, match=r"only the answering side|never connected"):
            await answerer.accept_resume({"type": "offer", "sdp": "v=0\r\nm=application 9\r\n"})
        await within(connect(offerer, answerer))
        offer = await offerer.getLocalDescription()
        with pytest.raises(SignalingError, match="resume_window=0"):
            await answerer.accept_resume(offer)
        with pytest.raises(SignalingError, match="answering side"):
            await offerer.accept_resume(offer)
    finally:
        await close_both(offerer, answerer)
    with pytest.raises(SignalingError, match="closed"):
        await answerer.accept_resume(offer)


async def _until(condition, step: float = 0.02) -> None:
    while not condition():  # noqa: ASYNC110 - states without an event of their own
        await asyncio.sleep(step)
