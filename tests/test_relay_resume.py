"""Resumable sessions through the relay: the viewer's resume offer reaches the same session
on the robot, and a robot whose own link was lost reconnects its relay socket at once."""

from __future__ import annotations

import asyncio

from rtcbot.connection import RTCConnection, SessionGone
from test_relay import SECRET, TOKEN, Relay, echo_robot, post, relay, robot_at  # noqa: F401


def kill_transport(conn) -> None:
    ice = conn._pc.sctp.transport.transport
    asyncio.get_running_loop().create_task(ice.stop())


async def viewer(relay_) -> RTCConnection:
    from rtcbot.relay import connect_to_robot

    conn = RTCConnection(rtcConfiguration=[])
    await connect_to_robot(relay_.url, "rover", conn, token=TOKEN)
    await conn.onReady()
    return conn


async def _until(condition, step: float = 0.02) -> None:
    while not condition():  # noqa: ASYNC110 - states without an event of their own
        await asyncio.sleep(step)


async def test_the_viewer_resumes_through_the_relay(relay):  # noqa: F811
    async with asyncio.timeout(30), robot_at(relay) as robot:
        await robot.onReady()
        conn = await viewer(relay)
        try:
            (served,) = robot.connections
            await _until(lambda: served._heartbeat.peer_resumes)
            conn.put_nowait("one")
            assert await conn.get() == {"echo": "one"}
            kill_transport(conn)
            await conn.on_link_lost()
            conn.put_nowait("two")
            await conn.on_link_restored()
            assert await conn.get() == {"echo": "two"}
            assert robot.connections == {served} and served.link_statistics().restores == 1
            assert relay.server.stats["offers"] >= 2
        finally:
            await conn.close()


async def test_a_robot_that_lost_its_link_reregisters_and_resumes(relay):  # noqa: F811
    async with asyncio.timeout(30), robot_at(relay) as robot:
        await robot.onReady()
        conn = await viewer(relay)
        try:
            (served,) = robot.connections
            await _until(lambda: served._heartbeat.peer_resumes)
            assert robot.registrations == 1
            kill_transport(served)  # the robot's network: its side notices first
            await served.on_link_lost()
            await conn.on_link_restored()
            assert robot.registrations == 2  # it reconnected to the relay at once
            conn.put_nowait("back")
            assert await conn.get() == {"echo": "back"}
            assert robot.connections == {served}
        finally:
            await conn.close()


async def test_a_bad_session_is_refused_through_the_relay(relay):  # noqa: F811
    async with asyncio.timeout(30), robot_at(relay) as robot:
        await robot.onReady()
        conn = await viewer(relay)
        try:
            (served,) = robot.connections
            session_id, (secret, _) = next(iter(robot._sessions.items()))
            offer = {"sdp": served._pc.remoteDescription.sdp, "type": "offer"}
            url = f"{relay.url}/robots/rover/connect"
            status, _ = await post(url, {**offer, "session": {"id": session_id,
                                                               "secret": "wrong"}})
            assert status == 403
            status, _ = await post(url, {**offer, "session": {"id": "nope", "secret": secret}})
            assert status == 404
            status, _ = await post(url, {**offer, "session": {"id": 5}})
            assert status == 400
            assert conn.link_up and not served.closed
            # the robot closes the session during a gap: the viewer stops at once
            kill_transport(conn)
            await conn.on_link_lost()
            served.close()
            await conn.onClose()
            assert isinstance(conn.error, SessionGone)
        finally:
            await conn.close()
