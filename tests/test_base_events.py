"""Events: ready fires only on ready, errors are exceptions and close, close fires once."""

from __future__ import annotations

import asyncio
import logging

import pytest

from rtcbot.base import RTCBotError, SubscriptionClosed, SubscriptionProducer
from rtcbot.base.events import baseEventHandler
from rtcbot.subscriptions import QueueSubscription


async def test_on_ready_fires_once_per_transition_and_not_on_close():
    obj = baseEventHandler()
    calls = []
    obj.onReady(lambda: calls.append("ready"))
    q = obj.onReady(QueueSubscription())
    obj._setReady(True)
    obj._setReady(True)
    obj._setReady(False)  # defect 3: must not fire
    assert obj.ready is False
    obj._setReady(True)
    obj.close()  # defect 3: close must not re-fire onReady
    assert calls == ["ready", "ready"]
    assert q.qsize() == 2
    assert obj.ready is False


async def test_await_on_ready_returns_and_raises_when_closed_first():
    obj = baseEventHandler()
    waiter = asyncio.ensure_future(obj.onReady())
    await asyncio.sleep(0)
    obj._setReady(True)
    async with asyncio.timeout(1):
        assert await waiter is True
        assert await obj.onReady() is True  # already ready: at once

    other = baseEventHandler()
    waiter = asyncio.ensure_future(other.onReady())
    await asyncio.sleep(0)
    other.close()
    with pytest.raises(SubscriptionClosed):
        async with asyncio.timeout(1):
            await waiter


async def test_await_on_error_returns_the_exception():
    # defect 4: `err = await obj.onError()` raised TypeError in RTCBot 0.2.5
    obj = baseEventHandler()
    waiter = asyncio.ensure_future(obj.onError())
    await asyncio.sleep(0)
    boom = OSError("camera unplugged")
    obj._setError(boom)
    async with asyncio.timeout(1):
        assert await waiter is boom
        assert await obj.onError() is boom  # already failed: at once
    assert obj.closed  # defect 5: an error closes the object
    assert obj.error is boom


async def test_on_error_resolves_none_on_plain_close():
    obj = baseEventHandler()
    waiter = asyncio.ensure_future(obj.onError())
    await asyncio.sleep(0)
    obj.close()
    async with asyncio.timeout(1):
        assert await waiter is None


async def test_non_exception_errors_are_wrapped():
    obj = baseEventHandler()
    errors = []
    obj.onError(errors.append)
    obj._setError("failed")  # RTCBot passed strings and False
    assert isinstance(errors[0], RTCBotError)
    assert "failed" in str(errors[0])


async def test_close_fires_once_with_all_subscriber_kinds():
    obj = baseEventHandler()
    calls = []

    async def acb():
        calls.append("async")

    obj.onClose(lambda: calls.append("sync"))
    obj.onClose(acb)
    q = obj.onClose(QueueSubscription())
    obj.close()
    obj.close()
    async with asyncio.timeout(1):
        await obj.onClose()
        await obj
    assert sorted(calls) == ["async", "sync"]
    assert q.get_nowait() is None and q.qsize() == 0


async def test_raising_event_subscriber_is_logged_and_others_still_run(caplog):
    obj = baseEventHandler()
    calls = []

    def bad():
        raise RuntimeError("handler bug")

    obj.onClose(bad)
    obj.onClose(lambda: calls.append("ok"))
    with caplog.at_level(logging.ERROR, logger="rtcbot"):
        obj.close()
    assert calls == ["ok"]
    assert "handler bug" in caplog.text


async def test_decorator_form_returns_the_callback():
    obj = baseEventHandler()

    @obj.onReady
    def ready():
        pass

    assert callable(ready)


async def test_async_with_closes():
    async with SubscriptionProducer() as producer:
        assert not producer.closed
    assert producer.closed


async def test_bad_subscriber_type_is_a_type_error():
    with pytest.raises(TypeError, match="42"):
        baseEventHandler().onClose(42)


async def test_subscribing_after_the_event_runs_at_once():
    obj = baseEventHandler()
    obj._setReady(True)
    calls = []
    obj.onReady(lambda: calls.append("ready"))
    assert calls == ["ready"]
    boom = ValueError("x")
    obj._setError(boom)
    obj.onError(calls.append)
    obj.onClose(lambda: calls.append("closed"))
    assert calls == ["ready", boom, "closed"]
