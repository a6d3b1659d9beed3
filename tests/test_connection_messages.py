"""Messages over real aiortc peers on loopback: the data channel defects of RTCBot 0.2.5
(reference 5.3, items 19, 20, 21, 25, 27) and the message rule."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from rtcbot import RTCConnection, SubscriptionClosed, SubscriptionFull
from rtcbot.base import SubscriptionProducer
from rtcbot.connection import DataChannel
from rtcbot.connection import _datachannel as dc_module
from rtcbot.testing import check_consumer, check_producer, connected_pair


async def within(awaitable, seconds: float = 5.0):
    async with asyncio.timeout(seconds):
        return await awaitable


async def eventually(condition, seconds: float = 5.0) -> None:
    """Wait (bounded) until ``condition()`` holds, for states that have no event."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.01)


async def test_messages_both_ways():
    async with connected_pair() as (a, b):
        a.put_nowait({"cmd": "forward", "speed": 0.5})
        b.send([1, 2, 3])
        assert await within(b.get()) == {"cmd": "forward", "speed": 0.5}
        assert await within(a.get()) == [1, 2, 3]


async def test_unencodable_message_raises_naming_it_and_the_next_is_delivered():
    # defect 19: one bad value used to kill the sender silently
    async with connected_pair() as (a, b):
        with pytest.raises(TypeError, match="object"):
            a.put_nowait({"bad": object()})
        a.put_nowait(np.float32(1.5))  # numpy scalars are fine
        a.put_nowait("next")
        assert await within(b.get()) == 1.5
        assert await within(b.get()) == "next"


async def test_bad_element_from_put_subscription_is_logged_and_skipped(caplog):
    source = SubscriptionProducer()
    async with connected_pair() as (a, b):
        a.putSubscription(source)
        source.put_nowait(1)
        source.put_nowait({1, 2})  # a set: not JSON
        source.put_nowait(3)
        assert await within(b.get()) == 1
        assert await within(b.get()) == 3
        assert a._default.statistics().failed == 1
    assert any("set" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    source.close()


async def test_message_rule_text_binary_and_strings():
    # defect 20: "123" arrived as the int 123; one documented rule now
    async with connected_pair() as (a, b):
        a.put_nowait("123")
        a.put_nowait("true")
        a.put_nowait(b"\x00raw")
        a.put_nowait(np.arange(4))
        assert await within(b.get()) == "123"
        assert await within(b.get()) == "true"
        assert await within(b.get()) == b"\x00raw"
        assert await within(b.get()) == [0, 1, 2, 3]


async def test_text_that_is_not_json_arrives_as_str_and_is_counted():
    async with connected_pair() as (a, b):
        a._default._rtc.send("plain text from a raw peer")  # what a non-rtcbot peer may send
        assert await within(b.get()) == "plain text from a raw peer"
        assert b._default.statistics().not_json == 1


async def test_messages_before_the_first_subscriber_are_kept():
    # defect 21: they used to be dropped
    async with connected_pair() as (a, b):
        for i in range(5):
            a.put_nowait(i)
        a.put_nowait("marker")
        # wait until the messages have arrived, without subscribing
        await eventually(lambda: b._default.statistics().received == 6)
        got = [await within(b.get()) for _ in range(6)]
        assert got == [0, 1, 2, 3, 4, "marker"]


async def test_messages_put_before_connecting_are_sent_in_order_on_open():
    a = RTCConnection(rtcConfiguration=[])
    for i in range(3):
        a.put_nowait(i)
    assert a._default.statistics().pending == 3
    async with connected_pair(offerer=a) as (a, b):
        assert [await within(b.get()) for _ in range(3)] == [0, 1, 2]
        assert a._default.statistics().pending == 0


async def test_messages_waiting_for_the_channel_are_bounded(monkeypatch):
    monkeypatch.setattr(dc_module, "MAX_PENDING_MESSAGES", 3)
    conn = RTCConnection(rtcConfiguration=[])
    for i in range(3):
        conn.put_nowait(i)
    with pytest.raises(SubscriptionFull, match="not open yet"):
        conn.put_nowait(3)
    assert conn._default.statistics().refused == 1
    conn.close()


async def test_put_waits_for_room_and_delivers_bulk_in_order():
    # defect 27: no backpressure; await put() waits on the send buffer
    async with connected_pair() as (a, b):
        block = b"x" * 16384
        n = 200  # 3.2 MB, more than the high-water mark

        async def send():
            for i in range(n):
                await a.put(i.to_bytes(4, "big") + block)

        sender = asyncio.ensure_future(send())
        for i in range(n):
            msg = await within(b.get(), 20)
            assert int.from_bytes(msg[:4], "big") == i
        await within(sender)
        assert a._default.bufferedAmount <= dc_module.HIGH_WATER_BYTES


async def test_put_nowait_refuses_when_the_send_buffer_is_full(monkeypatch):
    monkeypatch.setattr(dc_module, "MAX_BUFFERED_BYTES", 100_000)
    async with connected_pair() as (a, _b):
        with pytest.raises(SubscriptionFull, match="bytes are waiting"):
            for _ in range(100):
                a.put_nowait(b"y" * 16384)
        assert a._default.statistics().refused == 1


async def test_put_subscription_then_put_nowait_switches_back():
    source = SubscriptionProducer()
    async with connected_pair() as (a, b):
        a.putSubscription(source)
        assert a.subscription is source
        source.put_nowait("from source")
        assert await within(b.get()) == "from source"
        a.put_nowait("direct")
        assert a.subscription is None
        assert await within(b.get()) == "direct"
    source.close()


async def test_named_data_channels_and_on_data_channel():
    async with connected_pair() as (a, b):
        arrived = b.onDataChannel()
        ch = a.addDataChannel("telemetry", ordered=False)
        assert isinstance(ch, DataChannel) and not ch.ordered
        remote = await within(arrived.get())
        assert remote.name == "telemetry"
        assert b.getDataChannel("telemetry") is remote
        await within(ch.onReady())
        ch.put_nowait({"battery": 12.1})
        remote.put_nowait("ack")
        assert await within(remote.get()) == {"battery": 12.1}
        assert await within(ch.get()) == "ack"
        # closing a named channel closes it on both sides, not the connection
        ch.close()
        await within(remote.onClose())
        assert not a.closed and not b.closed
        a.put_nowait("still here")
        assert await within(b.get()) == "still here"


async def test_channels_added_before_connecting_are_in_the_offer():
    a = RTCConnection(rtcConfiguration=[])
    b = RTCConnection(rtcConfiguration=[])
    ch = a.addDataChannel("early")
    ch.put_nowait("queued")
    seen: asyncio.Queue = asyncio.Queue()
    b.onDataChannel(seen)
    async with connected_pair(offerer=a, answerer=b):
        remote = await within(seen.get())
        assert await within(remote.get()) == "queued"


async def test_data_channel_errors_are_formatted():
    # defect 25: the KeyError message was never formatted
    conn = RTCConnection(rtcConfiguration=[])
    conn.addDataChannel("arm")
    with pytest.raises(KeyError, match="'arm' already exists"):
        conn.addDataChannel("arm")
    with pytest.raises(KeyError, match="reserved"):
        conn.addDataChannel("default")
    with pytest.raises(KeyError, match=r"no data channel named 'leg' .*'arm'"):
        conn.getDataChannel("leg")
    with pytest.raises(TypeError, match="must be a str"):
        conn.addDataChannel(3)
    conn.close()


async def test_send_after_close_raises_subscription_closed():
    async with connected_pair() as (a, _b):
        pass
    with pytest.raises(SubscriptionClosed):
        a.put_nowait(1)
    with pytest.raises(SubscriptionClosed):
        await within(a.get())


async def test_connection_is_a_conforming_producer():
    pairs = []

    async def emit(conn, i):
        pairs[-1][0].put_nowait(i)

    def make():
        return pairs[-1][1]

    ctx = connected_pair()
    pairs.append(await ctx.__aenter__())
    try:
        await check_producer(make, emit=emit)
    finally:
        await ctx.__aexit__(None, None, None)


async def test_connection_is_a_conforming_consumer():
    ctx = connected_pair()
    a, b = await ctx.__aenter__()
    seen: list = []
    b.subscribe(seen.append)

    async def received(_conn):
        return seen

    try:
        await check_consumer(lambda: a, received=received)
    finally:
        await ctx.__aexit__(None, None, None)


async def test_named_data_channel_is_a_conforming_producer():
    async with connected_pair() as (a, b):
        arrived: asyncio.Queue = asyncio.Queue()
        b.onDataChannel(arrived)
        sender = a.addDataChannel("sensor")
        receiver = await within(arrived.get())

        def emit(_channel, i):
            sender.put_nowait(i)

        await check_producer(lambda: receiver, emit=emit)
        assert not a.closed and not b.closed  # closing a channel leaves the connection up


async def test_messages_never_sent_because_the_channel_closed_are_counted():
    conn = RTCConnection(rtcConfiguration=[])
    conn.put_nowait("a")
    conn.put_nowait("b")  # kept until the channel opens...
    conn.close()  # ...which now never happens
    stats = await conn.stats()
    assert stats["channels"]["default"]["failed"] == 2
    await conn
