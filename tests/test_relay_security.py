"""The relay under attack, on loopback: hostile first frames, floods of silent websockets,
secret guessing. Each attack is bounded in count and time."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest

from rtcbot.relay._guard import FailureLockout, PendingSockets
from rtcbot.relay._protocol import ProtocolError, decode_message
from test_relay import SECRET, Relay, client, robot_at

# ------------------------------------------------------------------------- the rules


def test_lockout_after_repeated_failures_then_it_expires():
    guard = FailureLockout(max_failures=3, window=10, lockout=30)
    assert not guard.failed("1.2.3.4", 0) and not guard.failed("1.2.3.4", 1)
    assert guard.locked_for("1.2.3.4", 1) == 0
    assert guard.failed("1.2.3.4", 2)  # the third within the window
    assert guard.locked_for("1.2.3.4", 3) == pytest.approx(29)
    assert guard.locked_for("5.6.7.8", 3) == 0  # others are not affected
    assert guard.locked_for("1.2.3.4", 32) == 0
    # failures spread wider than the window never lock out
    for t in range(100, 200, 6):
        assert not guard.failed("9.9.9.9", t)
    guard.failed("1.1.1.1", 0)
    guard.succeeded("1.1.1.1")  # a success forgets the failures
    assert not guard.failed("1.1.1.1", 1) and not guard.failed("1.1.1.1", 2)


def test_lockout_memory_is_bounded():
    guard = FailureLockout(max_failures=1, window=10, lockout=30, max_addresses=100)
    for i in range(10_000):
        guard.failed(f"10.0.{i // 256}.{i % 256}", i * 0.001)
    assert len(guard._failures) <= 100 and len(guard._locked) <= 100


def test_pending_sockets_evict_the_oldest():
    pending: PendingSockets[int] = PendingSockets(limit=3)
    assert pending.add(1) == [] and pending.add(2) == [] and pending.add(3) == []
    assert pending.add(4) == [1]
    pending.discard(2)
    assert pending.add(5) == [] and pending.add(6) == [3]
    assert len(pending) == 3 and pending.evicted == 2


@pytest.mark.parametrize("data", ["[" * 100_000, "{not json", b"\x00binary", '"\\ud800"x'],
                         ids=["deep", "not-json", "binary", "surrogate-junk"])
def test_hostile_frames_are_protocol_errors(data):
    with pytest.raises(ProtocolError):
        decode_message(data)


# ------------------------------------------------------------------------- on loopback


async def first_frame_reply(relay: Relay, frame: str) -> tuple[dict, int | None]:
    """Open a robot socket, send ``frame`` raw, return the relay's reply and close code."""
    async with aiohttp.ClientSession() as session, session.ws_connect(
        relay.url + "/ws"
    ) as ws:
        await ws.send_str(frame)
        reply = json.loads((await ws.receive(timeout=5)).data)
        closing = await ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        return reply, ws.close_code


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("[" * 20_000 + "]" * 20_000, "nested too deep"),
        ('{"type": "register", "name": "rover", "secret": "\\ud800"}', "wrong secret"),
        ('{"type": "register", "name": "rover", "secret": "\\udfff\\ud800"}', "wrong secret"),
        ("not json at all", "not JSON"),
    ],
    ids=["deep-json", "lone-surrogate", "reversed-surrogates", "not-json"],
)
async def test_a_hostile_first_frame_is_refused_with_a_reason(frame, reason, caplog):
    relay = await Relay().start()
    try:
        async with asyncio.timeout(20):
            reply, _code = await first_frame_reply(relay, frame)
            assert reply["type"] == "refused" and reason in reply["reason"], reply
            async with robot_at(relay) as robot:  # the relay keeps serving
                await robot.onReady()
    finally:
        await relay.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_silent_socket_is_closed_at_the_register_deadline_with_a_reason():
    relay = await Relay(register_timeout=0.5).start()
    try:
        async with asyncio.timeout(10), aiohttp.ClientSession() as session, \
                session.ws_connect(relay.url + "/ws") as ws:
            reply = json.loads((await ws.receive()).data)
            assert reply["type"] == "refused" and "no register message" in reply["reason"]
    finally:
        await relay.stop()


async def test_a_robot_registers_at_once_under_a_flood_of_silent_sockets():
    relay = await Relay(max_unregistered=16, register_timeout=30).start()
    flood = []
    try:
        async with asyncio.timeout(30), aiohttp.ClientSession() as session:
            for _ in range(60):  # silent sockets, far more than the relay keeps waiting
                flood.append(await session.ws_connect(relay.url + "/ws"))
            # the first ones were closed to make room ...
            reply = json.loads((await flood[0].receive(timeout=5)).data)
            assert "too many sockets" in reply["reason"]
            assert relay.server.stats["unregistered_evicted"] >= 60 - 16
            assert len(relay.server._unregistered) <= 16
            # ... and a robot registers (long before the 30 s register deadline)
            async with asyncio.timeout(5), robot_at(relay) as robot:
                await robot.onReady()
                conn = await client(relay)
                await conn.close()
    finally:
        for ws in flood:
            await ws.close()
        await relay.stop()


async def test_guessing_secrets_locks_the_address_out():
    relay = await Relay(lockout_failures=5, lockout_time=60).start()
    try:
        async with asyncio.timeout(20):
            for guess in range(5):
                frame = json.dumps({"type": "register", "name": "rover", "secret": f"g{guess}"})
                reply, _ = await first_frame_reply(relay, frame)
                assert "wrong secret" in reply["reason"]
            # locked out: refused before any websocket, even with the right secret
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                    await session.ws_connect(relay.url + "/ws")
                assert info.value.status == 429
            assert relay.server.stats["locked_out"] == 1
            async with robot_at(relay, secret=SECRET) as robot:
                assert not robot.ready
            # clients are not affected by a robot lockout
            status = await plain_get(relay.url + "/robots")
            assert status == 401
    finally:
        await relay.stop()


async def plain_get(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status
