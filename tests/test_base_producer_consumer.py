"""Producers and consumers: fan-out, end of stream, cancellation, bounds (defects 6-9)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from rtcbot.base import (
    SubscriptionClosed,
    SubscriptionConsumer,
    SubscriptionFull,
    SubscriptionProducer,
    SubscriptionProducerConsumer,
)
from rtcbot.subscriptions import MostRecentSubscription, QueueSubscription
from rtcbot.testing import check_consumer, check_producer


async def test_producer_contract():
    await check_producer(SubscriptionProducer, emit=lambda p, i: p.put_nowait(i))


async def test_consumer_contract():
    async def received(c):
        return c.seen

    class Recorder(SubscriptionConsumer):
        def __init__(self):
            super().__init__()
            self.seen = []
            self._task = None
            self._callFromThread(self._start)

        def _start(self):
            self._spawn(self._run())

        async def _run(self):
            while True:
                self.seen.append(await self._get())

    await check_consumer(Recorder, received=received)


async def test_fanout_order_survives_raising_and_self_unsubscribing_callbacks(caplog):
    p = SubscriptionProducer()
    order = []

    def first(x):
        order.append(("first", x))

    def raises(x):
        raise ValueError(f"bad value {x}")

    def once(x):
        order.append(("once", x))
        p.unsubscribe(once)  # defect 9: "Set changed size during iteration" in RTCBot

    def last(x):
        order.append(("last", x))

    for cb in (first, raises, once, last):
        p.subscribe(cb)
    with caplog.at_level(logging.ERROR, logger="rtcbot"):
        p.put_nowait(1)
        p.put_nowait(2)
    assert order == [("first", 1), ("once", 1), ("last", 1), ("first", 2), ("last", 2)]
    assert "bad value 1" in caplog.text
    p.close()


async def test_elements_before_first_subscriber_are_kept():
    p = SubscriptionProducer()
    p.put_nowait("early 1")
    p.put_nowait("early 2")
    sub = p.subscribe()
    p.put_nowait("late")
    assert [await sub.get() for _ in range(3)] == ["early 1", "early 2", "late"]
    p.close()


async def test_producer_close_ends_its_readers():
    # defect 6: a consumer reading a closed producer waited forever
    p = SubscriptionProducer()
    sub = p.subscribe()
    reader = asyncio.ensure_future(sub.get())
    getter = asyncio.ensure_future(p.get())
    await asyncio.sleep(0)
    p.close()
    async with asyncio.timeout(2):
        for task in (reader, getter):
            with pytest.raises(SubscriptionClosed):
                await task
    with pytest.raises(SubscriptionClosed):
        await p.get()


async def test_consumer_reading_a_producer_sees_the_end_once_then_direct_data():
    p = SubscriptionProducer()
    c = SubscriptionConsumer()
    c.putSubscription(p)
    p.put_nowait("a")
    async with asyncio.timeout(2):
        assert await c.get() == "a"
        p.close()
        with pytest.raises(SubscriptionClosed, match=r"ended|closed"):
            await c.get()
        assert c.subscription is None  # back to put_nowait data
        c.put_nowait("b")
        assert await c.get() == "b"
    c.close()


async def test_cancelling_a_task_waiting_in_get_cancels_it_and_loses_nothing():
    # defect 7: RTCBot swallowed the CancelledError and returned data later
    c = SubscriptionConsumer()
    waiter = asyncio.ensure_future(c.get())
    await asyncio.sleep(0)
    waiter.cancel()
    async with asyncio.timeout(1):
        with pytest.raises(asyncio.CancelledError):
            await waiter
    c.put_nowait("kept")
    async with asyncio.timeout(1):
        assert await c.get() == "kept"
    c.close()


async def test_switching_source_while_waiting_is_not_a_cancellation():
    c = SubscriptionConsumer()
    p1, p2 = SubscriptionProducer(), SubscriptionProducer()
    c.putSubscription(p1)
    waiter = asyncio.ensure_future(c.get())
    await asyncio.sleep(0)
    c.putSubscription(p2)
    await asyncio.sleep(0)
    p2.put_nowait("from p2")
    async with asyncio.timeout(1):
        assert await waiter == "from p2"
    c.put_nowait("direct")  # put_nowait switches back to direct data
    async with asyncio.timeout(1):
        assert await c.get() == "direct"
    for obj in (c, p1, p2):
        obj.close()


async def test_put_after_close_raises_and_bound_is_explicit():
    # defect 8: RTCBot kept queuing into a closed consumer, without bound
    c = SubscriptionConsumer(directPutSubscriptionType=lambda: QueueSubscription(3))
    for i in range(3):
        c.put_nowait(i)
    with pytest.raises(SubscriptionFull, match="queue full"):
        c.put_nowait(3)
    assert await c.get() == 0
    c.put_nowait(3)  # nothing else was lost
    c.close()
    with pytest.raises(SubscriptionClosed):
        c.put_nowait(4)
    with pytest.raises(SubscriptionClosed):
        await c.get()
    p = SubscriptionProducer()
    p.close()
    with pytest.raises(SubscriptionClosed):
        p.put_nowait(1)


async def test_consumer_close_ends_a_pending_get():
    c = SubscriptionConsumer()
    waiter = asyncio.ensure_future(c.get())
    await asyncio.sleep(0)
    c.close()
    async with asyncio.timeout(1):
        with pytest.raises(SubscriptionClosed):
            await waiter


async def test_async_callbacks_run_in_order_one_at_a_time_and_are_owned(caplog):
    p = SubscriptionProducer()
    seen = []
    running = 0
    gate = asyncio.Event()
    all_seen = asyncio.Event()

    @p.subscribe
    async def slow(x):
        nonlocal running
        running += 1
        assert running == 1
        await gate.wait()
        seen.append(x)
        running -= 1
        if len(seen) == 4:
            all_seen.set()
        if x == 2:
            raise ValueError("callback bug")

    for i in range(4):
        p.put_nowait(i)
    gate.set()
    async with asyncio.timeout(2):
        await all_seen.wait()
    assert seen == [0, 1, 2, 3]
    assert "callback bug" in caplog.text
    p.close()
    async with asyncio.timeout(2):
        await p  # the callback's task is owned and finished with the producer


async def test_video_style_subscription_keeps_only_the_newest():
    p = SubscriptionProducer(defaultSubscriptionClass=MostRecentSubscription)
    sub = p.subscribe()
    for i in range(10):
        p.put_nowait(i)
    assert await sub.get() == 9
    assert sub.statistics().dropped == 9
    p.close()


async def test_full_subscriber_is_counted_and_others_still_get_elements(caplog):
    p = SubscriptionProducer()
    small = p.subscribe(QueueSubscription(2))
    big = p.subscribe()
    with caplog.at_level(logging.WARNING, logger="rtcbot"):
        for i in range(5):
            p.put_nowait(i)
    assert small.statistics().dropped == 3
    assert big.qsize() == 5
    assert "not keeping up" in caplog.text
    p.close()


async def test_producer_consumer_has_both_sides():
    class Echo(SubscriptionProducerConsumer):
        def __init__(self):
            super().__init__()
            self._callFromThread(lambda: self._spawn(self._run()))

        async def _run(self):
            while True:
                self._put_nowait(await self._get())

    e = Echo()
    sub = e.subscribe()
    e.put_nowait("ping")
    async with asyncio.timeout(2):
        assert await sub.get() == "ping"
    e.close()
    async with asyncio.timeout(2):
        await e
    with pytest.raises(SubscriptionClosed):
        await sub.get()


async def test_unsubscribe_unknown_names_it():
    p = SubscriptionProducer()
    with pytest.raises(KeyError, match="not subscribed"):
        p.unsubscribe("nope")
    p.unsubscribe()  # no default subscription: no-op
    p.close()


async def test_put_subscription_needs_get():
    with pytest.raises(TypeError, match="async get"):
        SubscriptionConsumer().putSubscription([1, 2])


async def test_async_subscriber_of_an_ended_producer_gets_the_rest_and_ends():
    p = SubscriptionProducer()
    p.put_nowait(1)
    p.put_nowait(2)
    p.close()
    seen = []

    async def cb(x):
        seen.append(x)

    p.subscribe(cb)
    async with asyncio.timeout(2):
        await p  # the callback's task ends after the elements produced before close
    assert seen == [1, 2]


async def test_unsubscribe_after_close_is_quiet():
    p = SubscriptionProducer()
    sub = p.subscribe()
    p.close()
    p.unsubscribe(sub)
    p.unsubscribe()
