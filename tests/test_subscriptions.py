"""Buffering policies: bounded, observable, cancellation-safe, closable."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from rtcbot.base import SubscriptionClosed, SubscriptionFull, SubscriptionProducer
from rtcbot.subscriptions import (
    CallbackSubscription,
    DelayedSubscription,
    EventSubscription,
    GetterSubscription,
    MostRecentSubscription,
    QueueSubscription,
    RebatchSubscription,
)


def test_queue_refuses_when_full_and_keeps_what_it_has():
    q = QueueSubscription(maxsize=2)
    q.put_nowait("a")
    q.put_nowait("b")
    with pytest.raises(SubscriptionFull, match="'c'"):
        q.put_nowait("c")
    assert q.get_nowait() == "a"
    q.put_nowait("d")  # room again: the next put succeeds
    assert [q.get_nowait(), q.get_nowait()] == ["b", "d"]
    s = q.statistics()
    assert (s.dropped, s.delivered, s.peak, s.buffered) == (1, 3, 2, 0)


def test_queue_drop_oldest_keeps_newest():
    q = QueueSubscription(maxsize=3, overflow="drop_oldest")
    for i in range(10):
        q.put_nowait(i)
    assert [q.get_nowait() for _ in range(3)] == [7, 8, 9]
    assert q.statistics().dropped == 7


def test_queue_rejects_bad_arguments():
    with pytest.raises(ValueError, match="maxsize"):
        QueueSubscription(0)
    with pytest.raises(ValueError, match="overflow"):
        QueueSubscription(10, overflow="block")


async def test_cancelled_get_loses_nothing():
    q = QueueSubscription()
    waiter = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    q.put_nowait("x")  # wakes the waiter...
    waiter.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiter
    async with asyncio.timeout(1):
        assert await q.get() == "x"


async def test_close_delivers_buffered_then_ends():
    q = QueueSubscription()
    q.put_nowait(1)
    q.close()
    assert await q.get() == 1
    with pytest.raises(SubscriptionClosed):
        await q.get()
    with pytest.raises(SubscriptionClosed):
        q.put_nowait(2)


async def test_close_wakes_waiting_readers():
    q = MostRecentSubscription()
    readers = [asyncio.ensure_future(q.get()) for _ in range(3)]
    await asyncio.sleep(0)
    q.close()
    async with asyncio.timeout(1):
        results = await asyncio.gather(*readers, return_exceptions=True)
    assert all(isinstance(r, SubscriptionClosed) for r in results)


async def test_most_recent_keeps_only_newest_and_counts_drops():
    s = MostRecentSubscription()
    for i in range(5):
        s.put_nowait(i)
    assert await s.get() == 4
    assert s.statistics().dropped == 4
    waiter = asyncio.ensure_future(s.get())
    await asyncio.sleep(0)
    assert not waiter.done()  # waits for a newer element
    s.put_nowait(5)
    async with asyncio.timeout(1):
        assert await waiter == 5


async def test_event_subscription_is_awaitable_and_one_shot():
    e = EventSubscription()
    waiter = asyncio.ensure_future(e.get())
    e.put_nowait("first")
    e.put_nowait("second")
    async with asyncio.timeout(1):
        assert await waiter == "first"
        assert await e == "first"


async def test_getter_and_callback_subscriptions():
    async def source():
        return 42

    assert await GetterSubscription(source).get() == 42
    seen = []
    CallbackSubscription(seen.append, runDirect=True).put_nowait(1)
    cb = CallbackSubscription(seen.append)
    cb.put_nowait(2)
    assert seen == [1]
    await asyncio.sleep(0)
    assert seen == [1, 2]


async def test_delayed_subscription_subscribes_on_first_get():
    producer = SubscriptionProducer()
    d = DelayedSubscription(producer)
    producer.put_nowait("before")  # nobody subscribed yet: kept for the first subscriber
    task = asyncio.ensure_future(d.get())
    async with asyncio.timeout(1):
        assert await task == "before"
    d.unsubscribe()
    producer.close()


@pytest.mark.parametrize("axis", [0, 1, -1, -2])
def test_rebatch_along_any_axis(axis):
    r = RebatchSubscription(4, axis=axis)
    shape = [3, 3]
    shape[axis] = 6
    a = np.arange(18).reshape(shape)
    r.put_nowait(a)
    first = r.get_nowait()
    assert first.shape[axis] == 4
    np.testing.assert_array_equal(first, np.take(a, range(4), axis=axis))
    r.put_nowait(a)
    second = r.get_nowait()
    expected = np.concatenate([np.take(a, [4, 5], axis=axis), np.take(a, [0, 1], axis=axis)],
                              axis=axis)
    np.testing.assert_array_equal(second, expected)


def test_rebatch_rejects_mismatched_shapes_and_keeps_remainder():
    r = RebatchSubscription(960)
    r.put_nowait(np.zeros((500, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(500, 2\)"):
        r.put_nowait(np.zeros((500, 1), dtype=np.float32))
    r.put_nowait(np.ones((500, 2), dtype=np.float32))
    batch = r.get_nowait()
    assert batch.shape == (960, 2)
    assert batch[:500].sum() == 0 and batch[500:].sum() == 460 * 2


def test_rebatch_rejects_bad_arguments():
    with pytest.raises(ValueError, match="samples"):
        RebatchSubscription(0)
    with pytest.raises(ValueError, match="axis 2"):
        RebatchSubscription(4, axis=2).put_nowait(np.zeros((4, 4)))


def test_a_subscription_knows_its_producer():
    producer = SubscriptionProducer()
    sub = producer.subscribe()
    assert sub.producer is producer
    producer.unsubscribe(sub)
    assert sub.producer is None
    assert QueueSubscription().producer is None
