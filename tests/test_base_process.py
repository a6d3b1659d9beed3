"""Process bridges under spawn and fork (defects 13-17)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource

import numpy as np
import pytest

from bridge_workers import (
    ProcCounter,
    ProcDoubler,
    ProcFailing,
    ProcFailingSink,
    ProcFrames,
    ProcIdleSink,
    ProcPid,
    ProcSink,
    ProcStubborn,
    ProcUnpicklableError,
)
from rtcbot.base import SubscriptionClosed, WorkerError

pytestmark = pytest.mark.process

METHODS = ["spawn", "fork"]


@pytest.fixture(params=METHODS)
def method(request):
    return request.param


async def test_items_reach_the_loop_in_order(method):
    p = ProcCounter(5000, start_method=method)
    async with asyncio.timeout(20):
        await p.onReady()
        got = [await p.get() for _ in range(5000)]
    assert got == list(range(5000))
    p.close()
    async with asyncio.timeout(10):
        await p


async def test_child_is_another_process_and_ends_with_close(method):
    p = ProcPid(start_method=method)
    async with asyncio.timeout(20):
        pid = await p.get()
    assert pid != os.getpid()
    p.close()  # returns at once; the child sees _shouldClose
    async with asyncio.timeout(10):
        await p
    assert not p._process.is_alive()


async def test_frames_arrive_writable_and_intact(method):
    p = ProcFrames(20, start_method=method)
    async with asyncio.timeout(20):
        frames = [await p.get() for _ in range(20)]
    assert [int(f[0, 0, 0]) for f in frames] == list(range(20))
    assert all(f.shape == (480, 640, 3) and f.dtype == np.uint8 for f in frames)
    frames[0][0, 0, 0] = 99  # a user may modify what they receive
    p.close()
    async with asyncio.timeout(10):
        await p


async def test_child_that_ends_delivers_everything_then_closes(method):
    # defect 16: RTCBot's reader stopped early and lost the last items and the close
    p = ProcCounter(3000, then_end=True, start_method=method)
    got = []
    async with asyncio.timeout(20):
        while True:
            try:
                got.append(await p.get())
            except SubscriptionClosed:
                break
        await p
    assert got == list(range(3000))
    assert p.closed and p.error is None


async def test_child_exception_reaches_on_error(method):
    p = ProcFailing(start_method=method)
    async with asyncio.timeout(20):
        err = await p.onError()
        await p
    assert isinstance(err, KeyError) and "joystick" in str(err)
    assert any("child process" in note for note in getattr(err, "__notes__", []))
    q = ProcUnpicklableError(start_method=method)
    async with asyncio.timeout(20):
        err = await q.onError()
    assert isinstance(err, WorkerError) and "cannot be pickled" in str(err)


async def test_producer_consumer_round_trip_and_events(method):
    # defects 14 and 17: ready/close of consumers never reached the parent in RTCBot
    d = ProcDoubler(start_method=method)
    async with asyncio.timeout(20):
        await d.onReady()
        for i in range(100):
            d.put_nowait(i)
        got = [await d.get() for _ in range(100)]
    assert got == [2 * i for i in range(100)]
    d.close()
    async with asyncio.timeout(10):
        await d


async def test_consumer_receives_and_sees_close(method):
    reader, writer = multiprocessing.get_context(method).Pipe(duplex=False)
    c = ProcSink(writer, start_method=method)
    async with asyncio.timeout(20):
        await c.onReady()
    for i in range(10):
        c.put_nowait(i)
    got = []
    while len(got) < 10:
        _, value = await asyncio.to_thread(_recv_with_timeout, reader)
        got.append(value)
    assert got == list(range(10))
    c.close()
    assert (await asyncio.to_thread(_recv_with_timeout, reader))[0] == "closed"
    async with asyncio.timeout(10):
        await c


def _recv_with_timeout(conn, timeout=10):
    if not conn.poll(timeout):
        raise TimeoutError("nothing from the child")
    return conn.recv()


async def test_consumer_error_reaches_parent(method):
    c = ProcFailingSink(start_method=method)
    c.put_nowait(1)
    async with asyncio.timeout(20):
        err = await c.onError()
        await c
    assert isinstance(err, ZeroDivisionError)


async def test_idle_consumer_does_not_spin(method):
    # defect 13: RTCBot's parent busy-waited a whole core while the child was idle
    c = ProcIdleSink(start_method=method)
    async with asyncio.timeout(20):
        await c.onReady()
    before = resource.getrusage(resource.RUSAGE_SELF)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    await asyncio.sleep(0.5)  # a measurement window, not synchronisation
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert used < 0.25, f"parent used {used:.2f} CPU-s in 0.5 s while idle"
    del children_before
    c.close()
    async with asyncio.timeout(10):
        await c


async def test_stubborn_child_is_terminated_after_join_timeout(method):
    p = ProcStubborn(start_method=method, joinTimeout=0.2)
    async with asyncio.timeout(20):
        await p.onReady()
    p.close()
    async with asyncio.timeout(10):
        await p
    assert p._process.exitcode is not None and p._process.exitcode != 0


async def test_unpicklable_class_is_a_clear_error():
    q = _unpicklable_counter()
    async with asyncio.timeout(20):
        err = await q.onError()
    assert "picklable" in str(err) and "module level" in str(err)


def _unpicklable_counter():
    class NotAtModuleLevel(ProcCounter):
        pass

    return NotAtModuleLevel(1, start_method="spawn")


async def test_close_while_the_child_is_still_starting(method):
    p = ProcCounter(10, start_method=method)
    p.close()  # before the child has even started (spawn takes a while)
    async with asyncio.timeout(20):
        await p
    assert p.closed and p.error is None
    assert p._process is None or not p._process.is_alive()


async def test_producer_consumer_keeps_its_two_bounds_apart():
    from rtcbot.base import ProcessSubscriptionProducerConsumer
    from rtcbot.subscriptions import MostRecentSubscription

    video_in = ProcessSubscriptionProducerConsumer(directPutSubscriptionType=MostRecentSubscription)
    assert video_in._inBacklog == 1 and video_in._outBacklog == 10_000
    video_out = ProcessSubscriptionProducerConsumer(defaultSubscriptionType=MostRecentSubscription)
    assert video_out._inBacklog == 10_000 and video_out._outBacklog == 2
    for d in (video_in, video_out):
        d.close()
        async with asyncio.timeout(20):
            await d


async def test_drops_in_the_child_are_counted_in_the_parent():
    from bridge_workers import ProcFlood

    p = ProcFlood(start_method="spawn", backlog=10)
    got = []
    async with asyncio.timeout(20):
        while True:
            try:
                got.append(await p.get())
            except SubscriptionClosed:
                break
    assert got == sorted(got) and got[-1] == 4999
    dropped = p.statistics()["dropped"]
    assert dropped > 0 and len(got) + dropped == 5000
