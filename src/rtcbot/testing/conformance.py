"""A conformance kit for the producer/consumer contract.

Run it over every producer and consumer (devices, connection streams, bridges)::

    async def test_pattern_is_a_producer():
        await check_producer(lambda: TestPattern(fps=100))

Each check creates fresh objects with the factory it is given, exercises the contract and
closes them. Every wait is bounded by ``timeout`` seconds; a failure raises ``AssertionError``
naming the broken rule.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from ..base._compat import TIMEOUT_ERRORS
from ..base._compat import timeout as aio_timeout
from ..base.errors import SubscriptionClosed

__all__ = ["check_consumer", "check_producer"]


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def _bounded(awaitable: Awaitable[Any], timeout: float, what: str) -> Any:
    try:
        async with aio_timeout(timeout):
            return await awaitable
    except TIMEOUT_ERRORS:
        raise AssertionError(f"{what}: nothing after {timeout} s") from None


async def check_producer(
    make: Callable[[], Any],
    *,
    emit: Callable[[Any, int], Any] | None = None,
    timeout: float = 5.0,
) -> None:
    """Assert the producer contract on objects returned by ``make()``.

    ``emit(producer, i)``, if given, makes the producer produce one element (for producers that
    do not produce on their own, such as a ``SubscriptionProducer``); it may be a coroutine.
    Checked: ``get()`` returns elements; two subscriptions both receive (fan-out); the decorator
    form returns the callback and calls it; ``async def`` callbacks are called; ``unsubscribe``
    stops delivery and rejects unknown subscriptions with ``KeyError``; ``close()`` is idempotent,
    ends a reader waiting in ``get()`` with ``SubscriptionClosed``, and ``await producer``
    returns.
    """

    async def produce_until(condition: Callable[[], bool], what: str, producer: Any) -> None:
        i = 0

        async def loop() -> None:
            nonlocal i
            while not condition():
                if emit is not None:
                    await _maybe_await(emit(producer, i))
                    i += 1
                await asyncio.sleep(0.001 if emit is not None else 0.005)

        await _bounded(loop(), timeout, what)

    producer = make()
    pending: list[asyncio.Future[Any]] = []  # reader tasks, cancelled if a check fails
    try:
        # get() and fan-out to two subscriptions
        sub1 = producer.subscribe()
        sub2 = producer.subscribe()
        assert sub1 is not None and sub2 is not None, "subscribe() must return the subscription"
        got: dict[str, Any] = {}

        async def read(name: str, sub: Any) -> None:
            got[name] = await sub.get()

        readers = [asyncio.ensure_future(read("a", sub1)), asyncio.ensure_future(read("b", sub2)),
                   asyncio.ensure_future(read("get", producer))]
        pending.extend(readers)
        await produce_until(lambda: all(r.done() for r in readers),
                            "fan-out to two subscriptions and get()", producer)
        for r in readers:
            r.result()

        # decorator and coroutine callbacks
        calls: list[Any] = []
        acalls: list[Any] = []

        def callback(x: Any) -> None:
            calls.append(x)

        async def acallback(x: Any) -> None:
            acalls.append(x)

        assert producer.subscribe(callback) is callback, "subscribe(cb) must return cb"
        assert producer.subscribe(acallback) is acallback, "subscribe(async cb) must return it"
        await produce_until(lambda: bool(calls) and bool(acalls), "callbacks called", producer)

        # unsubscribe stops delivery
        producer.unsubscribe(callback)
        before = len(calls)
        seen = len(acalls)
        await produce_until(lambda: len(acalls) > seen + 1, "delivery after unsubscribe", producer)
        assert len(calls) == before, "an unsubscribed callback was still called"
        try:
            producer.unsubscribe(object())
        except KeyError:
            pass
        else:
            raise AssertionError("unsubscribe(unknown) must raise KeyError")

        # close ends a waiting reader, is idempotent, and completes
        sub3 = producer.subscribe()
        while True:  # drain what sub3 may already hold
            try:
                sub3.get_nowait()
            except Exception:
                break
        waiting = asyncio.ensure_future(_drain_until_closed(sub3))
        pending.append(waiting)
        await asyncio.sleep(0)
        producer.close()
        producer.close()
        assert producer.closed, "closed must be True after close()"
        await _bounded(waiting, timeout, "a reader of a closed producer to see SubscriptionClosed")
        await _bounded(producer, timeout, "await producer after close()")
    finally:
        producer.close()
        for task in pending:
            task.cancel()


async def _drain_until_closed(sub: Any) -> None:
    while True:
        try:
            await sub.get()
        except SubscriptionClosed:
            return


async def check_consumer(
    make: Callable[[], Any],
    *,
    sample: Callable[[int], Any] = lambda i: i,
    received: Callable[[Any], Awaitable[list[Any]]] | None = None,
    timeout: float = 5.0,
) -> None:
    """Assert the consumer contract on objects returned by ``make()``.

    ``sample(i)`` makes the i-th valid input element. ``received(consumer)``, if given, returns
    (awaits) the list of elements the consumer has used so far, so delivery can be checked.
    Checked: ``put_nowait`` accepts elements without blocking; ``putSubscription`` accepts a
    producer and a subscription and rejects an object without ``get`` with ``TypeError``;
    ``close()`` is idempotent and ``await consumer`` returns; ``put_nowait`` after close raises
    ``SubscriptionClosed``.
    """
    from ..base.base import SubscriptionProducer

    consumer = make()
    source = SubscriptionProducer()
    try:
        consumer.put_nowait(sample(0))
        if received is not None:
            await _bounded(_wait_received(consumer, received, 1), timeout,
                           "an element given to put_nowait to be used")
        try:
            consumer.putSubscription(object())
        except TypeError:
            pass
        else:
            raise AssertionError("putSubscription(object without get) must raise TypeError")
        consumer.putSubscription(source)
        if received is not None:
            async def feed() -> None:
                i = 1
                start = len(await received(consumer))
                while len(await received(consumer)) <= start:
                    source.put_nowait(sample(i))
                    i += 1
                    await asyncio.sleep(0.005)

            await _bounded(feed(), timeout, "elements from putSubscription(producer) to be used")
        consumer.putSubscription(source.subscribe())
        consumer.close()
        consumer.close()
        assert consumer.closed, "closed must be True after close()"
        await _bounded(consumer, timeout, "await consumer after close()")
        try:
            consumer.put_nowait(sample(0))
        except SubscriptionClosed:
            pass
        else:
            raise AssertionError("put_nowait after close() must raise SubscriptionClosed")
    finally:
        consumer.close()
        source.close()


async def _wait_received(consumer: Any, received: Callable[[Any], Awaitable[list[Any]]],
                         n: int) -> None:
    # `received` is the device's own record: polled, with the caller's timeout around it
    while len(await received(consumer)) < n:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
