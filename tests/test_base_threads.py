"""Thread bridges: the seed's classes, prompt close, errors reach onError (defects 1, 2, 5, 12,
18)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bridge_workers import (
    CountingProducer,
    FailingConsumer,
    FailingProducer,
    GatedProducer,
    RecordingConsumer,
)
from rtcbot.base import (
    SubscriptionClosed,
    SubscriptionFull,
    SubscriptionProducer,
    ThreadedSubscriptionConsumer,
    ThreadedSubscriptionProducer,
)
from rtcbot.subscriptions import MostRecentSubscription
from rtcbot.testing import check_consumer, check_producer


async def test_threaded_producer_contract():
    class Ticker(ThreadedSubscriptionProducer):
        def _producer(self):
            i = 0
            while not self._closing.wait(0.002):
                self._put_nowait(i)
                i += 1

    await check_producer(Ticker)


async def test_threaded_consumer_contract():
    async def received(c):
        return list(c.items)

    await check_consumer(RecordingConsumer, received=received)


async def test_items_arrive_in_order_and_all_of_them():
    p = CountingProducer(8000)
    async with asyncio.timeout(10):
        items = [await p.get() for _ in range(8000)]
    assert items == list(range(8000))
    assert p.statistics()["dropped"] == 0
    p.close()
    async with asyncio.timeout(5):
        await p


async def test_a_burst_beyond_the_backlog_drops_oldest_and_counts():
    p = CountingProducer(5000, then_end=True, backlog=1000)
    async with asyncio.timeout(10):
        await p.onClose()  # the worker never waited for the loop
    got = []
    async with asyncio.timeout(10):
        while True:
            try:
                got.append(await p.get())
            except SubscriptionClosed:
                break
    assert got[-1] == 4999 and got == sorted(got)
    assert len(got) + p.statistics()["dropped"] == 5000


async def test_worker_ending_ends_the_stream_after_delivering_everything():
    p = CountingProducer(1000, then_end=True)
    got = []
    async with asyncio.timeout(5):
        while True:
            try:
                got.append(await p.get())
            except SubscriptionClosed:
                break
        await p
    assert got == list(range(1000))
    assert p.closed and p.error is None


async def test_close_returns_while_the_worker_is_still_blocked():
    # defect 12: RTCBot joined the worker thread in close(), blocking the loop
    p = GatedProducer()
    assert p.entered.wait(5)
    p.close()  # returns although the worker cannot see it yet
    assert p.closed
    assert p._thread.is_alive()
    waiting = asyncio.ensure_future(p._waitClosed())
    await asyncio.sleep(0.01)
    assert not waiting.done()  # `await p` waits for the worker...
    p.gate.set()
    async with asyncio.timeout(5):
        await waiting  # ...and completes once it has returned
    assert not p._thread.is_alive()


async def test_close_wakes_a_consumer_blocked_in_get():
    c = RecordingConsumer()
    async with asyncio.timeout(5):
        await c.onReady()
    c.close()
    async with asyncio.timeout(5):
        await c
    assert c.ended_by and "closed" in c.ended_by[0]


async def test_worker_exception_reaches_on_error_and_closes():
    p = FailingProducer()
    async with asyncio.timeout(5):
        err = await p.onError()
        await p
    assert isinstance(err, ValueError) and "unplugged" in str(err)
    assert p.closed
    c = FailingConsumer()
    c.put_nowait(1)
    async with asyncio.timeout(5):
        err = await c.onError()
        await c
    assert isinstance(err, RuntimeError) and c.closed


async def test_consumer_gets_put_nowait_and_put_subscription_data():
    c = RecordingConsumer()
    src = SubscriptionProducer()
    c.put_nowait("direct")
    c.putSubscription(src)
    for i in range(100):
        src.put_nowait(i)
    assert await asyncio.to_thread(c.wait_for, 101)
    assert c.items == ["direct", *range(100)]
    src.close()  # the source ends: the seed's consumer loop ends on SubscriptionClosed
    async with asyncio.timeout(5):
        await c
    assert c.ended_by and "ended" in c.ended_by[0]


async def test_put_subscription_waits_for_space_instead_of_dropping():
    c = RecordingConsumer(backlog=4)
    src = SubscriptionProducer()
    c.putSubscription(src.subscribe())
    for i in range(200):
        src.put_nowait(i)
    assert await asyncio.to_thread(c.wait_for, 200)
    assert c.items == list(range(200))
    assert c.statistics()["dropped"] == 0
    c.close()
    src.close()


async def test_direct_put_beyond_backlog_raises():
    gate = threading.Event()

    class Stuck(ThreadedSubscriptionConsumer):
        def _consumer(self):
            gate.wait(10)

    c = Stuck(backlog=2)
    c.put_nowait(1)
    c.put_nowait(2)
    with pytest.raises(SubscriptionFull, match="waiting"):
        c.put_nowait(3)
    assert c.statistics() == {"backlog": 2, "dropped": 1}
    gate.set()
    c.close()
    async with asyncio.timeout(5):
        await c


async def test_video_style_consumer_keeps_only_newest():
    gate = threading.Event()

    class Display(RecordingConsumer):
        def _consumer(self):
            gate.wait(10)
            super()._consumer()

    c = Display(directPutSubscriptionType=MostRecentSubscription)
    for i in range(10):
        c.put_nowait(i)
    gate.set()
    assert await asyncio.to_thread(c.wait_for, 1)
    assert c.items == [9]
    c.close()


async def test_get_on_the_loop_thread_is_refused():
    c = RecordingConsumer()
    async with asyncio.timeout(5):
        await c.onReady()
    with pytest.raises(RuntimeError, match="worker thread"):
        c._get()
    c.close()


async def test_explicit_loop_parameter_is_honoured():
    # defect 2: RTCBot overwrote the given loop with get_event_loop()
    loop = asyncio.get_running_loop()
    p = CountingProducer(3, loop=loop)
    assert p._loop is loop
    p.close()


async def test_producer_put_after_close_is_ignored_in_worker():
    p = CountingProducer(0)
    p.close()
    p._put_nowait("late")  # the worker's race with close: no error, nothing delivered
    async with asyncio.timeout(5):
        await p
    with pytest.raises(SubscriptionClosed):
        await p.get()


def test_worker_survives_the_loop_ending():
    """After asyncio.run ends, a still-running worker that puts data must not crash
    (RTCBot: 'Event loop is closed' in the camera thread)."""
    failures = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: failures.append(args.exc_value)
    try:
        class Forever(ThreadedSubscriptionProducer):
            def _producer(self):
                while not self._closing.wait(0.001):
                    self._put_nowait(1)

        p = Forever()

        async def main():
            await p.get()

        asyncio.run(main())
        assert not p._closing.wait(0.05)  # still producing into a closed loop
        p.close()
        p._thread.join(5)
        assert not p._thread.is_alive()
    finally:
        threading.excepthook = old_hook
    assert failures == []


async def test_a_batch_arriving_before_any_subscriber_is_kept():
    class PutThenSignal(ThreadedSubscriptionProducer):
        def __init__(self):
            self.done = threading.Event()
            super().__init__()

        def _producer(self):
            for i in range(100):
                self._put_nowait(i)
            self.done.set()
            self._closing.wait()

    p = PutThenSignal()
    # The worker scheduled the drain before it set `done`, so the drain runs (with nobody
    # subscribed) before this task resumes.
    assert await asyncio.to_thread(p.done.wait, 5)
    async with asyncio.timeout(5):
        got = [await p.get() for _ in range(100)]
    assert got == list(range(100))
    p.close()


async def test_default_workers_report_ready():
    p, c = ThreadedSubscriptionProducer(), ThreadedSubscriptionConsumer()
    async with asyncio.timeout(5):
        await p.onReady()
        await c.onReady()
    p.close()
    c.close()
    async with asyncio.timeout(5):
        await p
        await c


async def test_consumer_overflow_drop_oldest():
    gate = threading.Event()

    class Slow(RecordingConsumer):
        def _consumer(self):
            gate.wait(10)
            super()._consumer()

    c = Slow(backlog=3, overflow="drop_oldest")
    for i in range(10):
        c.put_nowait(i)  # never raises: the oldest waiting element makes room
    assert c.statistics() == {"backlog": 3, "dropped": 7}
    gate.set()
    assert await asyncio.to_thread(c.wait_for, 3)
    assert c.items == [7, 8, 9]
    c.close()
    with pytest.raises(ValueError, match="overflow"):
        ThreadedSubscriptionConsumer(overflow="block")


async def test_direct_reading_stops_when_a_second_subscriber_joins():
    class OnDemand(ThreadedSubscriptionProducer):
        def __init__(self):
            self.requests = __import__("queue").SimpleQueue()
            super().__init__()

        def _producer(self):
            while True:
                batch = self.requests.get()
                if batch is None:
                    return
                for item in batch:
                    self._put_nowait(item)

    p = OnDemand()
    p.requests.put(range(0, 500))
    async with asyncio.timeout(5):
        first = [await p.get() for _ in range(250)]  # get() alone: may read the inbox
        second = p.subscribe()  # from here on every element must reach both readers
        p.requests.put(range(500, 1000))
        rest = [await p.get() for _ in range(750)]
        seen_by_second = [await second.get()]
        while seen_by_second[-1] != 999:
            seen_by_second.append(await second.get())
    assert first + rest == list(range(1000))
    # a contiguous tail of the stream: what was still on its way when it joined, and
    # everything produced after
    start = seen_by_second[0]
    assert start <= 500 and seen_by_second == list(range(start, 1000))
    p.requests.put(None)
    async with asyncio.timeout(5):
        await p
