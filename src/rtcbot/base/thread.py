"""Bridges between blocking code in a thread and the asyncio event loop.

:class:`ThreadedSubscriptionProducer` runs ``_producer()`` in a thread; what it gives to
``self._put_nowait(x)`` comes out of ``await producer.get()`` (or any subscription) on the loop.
:class:`ThreadedSubscriptionConsumer` runs ``_consumer()`` in a thread; what the loop gives to
``consumer.put_nowait(x)`` (or a source set with ``putSubscription``) comes out of the blocking
``self._get()`` in the thread.

How they stay fast and prompt:

* Thread to loop: elements go into a bounded deque; the loop is woken once per batch (one
  ``call_soon_threadsafe`` however many elements arrived meanwhile) and delivers them in slices
  of 256, so a fast producer never holds the loop for long.
* Loop to thread: ``put_nowait`` hands the element straight to the thread's queue; a
  ``putSubscription`` source is pumped by one task owned by the consumer.
* ``close()`` never joins: it tells the worker to stop (``self._shouldClose`` becomes True,
  ``self._closing`` is set, a blocked ``_get()`` wakes up with ``SubscriptionClosed``) and
  returns at once; ``await obj`` waits until the worker has returned.
* An exception escaping ``_producer()``/``_consumer()`` reaches ``onError`` and closes the object;
  a worker that returns on its own closes it too (its readers see the end of the stream).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
from typing import Any

from .base import BaseSubscriptionConsumer, BaseSubscriptionProducer
from .errors import SubscriptionClosed, SubscriptionFull
from .events import threadedEventHandler
from .subscriptions import DEFAULT_QUEUE_SIZE, MostRecentSubscription, QueueSubscription, describe

__all__ = ["ThreadedSubscriptionConsumer", "ThreadedSubscriptionProducer"]

#: Elements delivered per loop callback before yielding to other tasks.
_SLICE = 256

_CLOSED = object()  # wakes a worker blocked in _get(): the consumer closed
_SOURCE_ENDED = object()  # the putSubscription source ended


def _keeps_newest(subscription_type: Any) -> bool:
    return isinstance(subscription_type, type) and issubclass(
        subscription_type, MostRecentSubscription
    )


def _check_backlog(backlog: Any) -> int:
    if not isinstance(backlog, int) or isinstance(backlog, bool) or backlog < 1:
        raise ValueError(f"backlog must be a positive int, got {backlog!r}")
    return backlog


class _StartsWorker(type):
    """Starts the worker once the whole ``__init__`` chain has run, so a subclass's attributes
    set after ``super().__init__()`` exist before ``_producer``/``_consumer`` starts."""

    def __call__(cls, *args: Any, **kwargs: Any):
        obj = super().__call__(*args, **kwargs)
        obj._startWorker()
        return obj


class _WorkerMixin:
    """The worker thread's life: start, error reporting, exit, and ``await obj``."""

    _daemonThread: bool
    _log: logging.Logger

    def _initWorker(self, daemonThread: bool) -> None:
        if hasattr(self, "_workerWaiters"):
            return
        self._daemonThread = daemonThread
        self._closing = threading.Event()
        self._workerExited = False
        self._workerWaiters: list[asyncio.Future[None]] = []
        self._thread: threading.Thread | None = None
        self._addFinisher(self._waitWorker)  # type: ignore[attr-defined]

    def _startWorker(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._runWorker, daemon=self._daemonThread, name=f"rtcbot-{type(self).__name__}"
        )
        self._thread.start()

    def _work(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _runWorker(self) -> None:
        try:
            self._work()
        except SubscriptionClosed:
            pass  # the stream ended: a normal way for a worker to stop
        except Exception as exc:
            self._log.error("worker thread failed: %r", exc, exc_info=exc)
            self._setError(exc)  # type: ignore[attr-defined]
        finally:
            self._callFromThread(self._onWorkerExit)  # type: ignore[attr-defined]

    def _onWorkerExit(self) -> None:
        self._workerExited = True
        for future in self._workerWaiters:
            if not future.done():
                future.set_result(None)
        self._workerWaiters.clear()
        self.close()  # type: ignore[attr-defined]

    async def _waitWorker(self) -> None:
        if self._workerExited or self._thread is None:
            return
        future = asyncio.get_running_loop().create_future()
        self._workerWaiters.append(future)
        await future


class ThreadedSubscriptionProducer(
    _WorkerMixin, BaseSubscriptionProducer, threadedEventHandler, metaclass=_StartsWorker
):
    """A producer whose elements come from blocking code in a thread.

    Override ``_producer()`` (it runs in the thread once the object is constructed)::

        class MySensor(ThreadedSubscriptionProducer):
            def _producer(self):
                self._setReady(True)
                while not self._shouldClose:
                    self._put_nowait(read_sensor())   # thread-safe, never blocks
                self._setReady(False)

    In the thread, ``self._closing.wait(seconds)`` is an interruptible ``time.sleep``: it returns
    True as soon as the object is closed. Elements waiting for the loop are bounded by
    ``backlog`` (default: 2 for a :class:`MostRecentSubscription` producer, i.e. video, else
    10,000); beyond it the oldest is dropped and counted in ``statistics()``. ``loop`` binds the
    object to that loop at once; by default it binds to the loop that first uses it.
    """

    def __init__(
        self,
        defaultSubscriptionType: Any = QueueSubscription,
        logger: logging.Logger | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        daemonThread: bool = True,
        *,
        backlog: int | None = None,
    ) -> None:
        BaseSubscriptionProducer.__init__(self, defaultSubscriptionType, False, logger)
        threadedEventHandler.__init__(self, logger, loop)
        self._initWorker(daemonThread)
        if backlog is None:
            backlog = 2 if _keeps_newest(defaultSubscriptionType) else DEFAULT_QUEUE_SIZE
        self._outBacklog = _check_backlog(backlog)
        self._inbox: collections.deque[Any] = collections.deque()
        self._drainPending = False
        self._inboxDropped = 0
        # get() may read the inbox directly when the default queue is the only subscriber
        self._defaultItems: collections.deque[Any] | None = None

    def _onFanoutChanged(self) -> None:
        fanout = self._fanout
        default = self._defaultSubscription
        self._defaultItems = (
            default._items
            if len(fanout) == 1
            and fanout[0].subscription is default
            and type(default) is QueueSubscription
            and not self._shouldClose
            else None
        )

    async def get(self) -> Any:
        """The next element (see :meth:`BaseSubscriptionProducer.get`). When the default
        subscription is the producer's only reader, elements are taken straight from the
        worker's queue once the subscription is empty: the same order, one copy fewer.
        Cancelling the wait loses nothing."""
        items = self._defaultItems
        if items is not None:
            if items:
                return items.popleft()
            inbox = self._inbox
            if inbox:
                try:
                    return inbox.popleft()
                except IndexError:  # the worker dropped the oldest meanwhile
                    pass
        return await BaseSubscriptionProducer.get(self)

    def _producer(self) -> None:
        """Override: runs in the worker thread. The default reports ready and waits until
        closed."""
        self._setReady(True)
        self._closing.wait()

    def _work(self) -> None:
        self._producer()

    def _put_nowait(self, element: Any) -> None:
        """Send ``element`` to the loop; callable from any thread, never blocks."""
        inbox = self._inbox
        if len(inbox) >= self._outBacklog:
            try:
                inbox.popleft()
                self._inboxDropped += 1
            except IndexError:
                pass
        inbox.append(element)
        if not self._drainPending:
            self._drainPending = True
            self._callFromThread(self._drain)

    def _drain(self) -> None:
        # On the loop. Reset the flag first: anything appended after this point schedules a
        # new drain or is taken by this one, so nothing is stranded.
        self._drainPending = False
        inbox = self._inbox
        if self._shouldClose:
            inbox.clear()
            return
        popleft = inbox.popleft
        try:
            batch = [popleft() for _ in range(min(len(inbox), _SLICE))]
        except IndexError:  # the worker dropped the oldest meanwhile (its backlog was full)
            batch = []
            while inbox and len(batch) < _SLICE:
                try:
                    batch.append(popleft())
                except IndexError:
                    break
        if not batch:
            return
        BaseSubscriptionProducer._put_many(self, batch)
        if inbox and not self._drainPending:
            self._drainPending = True
            asyncio.get_running_loop().call_soon(self._drain)

    def _onWorkerExit(self) -> None:
        # Deliver everything the worker produced before it ended, then end the stream.
        deliver = BaseSubscriptionProducer._put_nowait
        inbox = self._inbox
        while inbox and not self._shouldClose:
            deliver(self, inbox.popleft())
        super()._onWorkerExit()

    def statistics(self) -> dict[str, int]:
        """``{"backlog": elements waiting for the loop, "dropped": elements dropped because the
        backlog was full}``."""
        return {"backlog": len(self._inbox), "dropped": self._inboxDropped}

    def close(self) -> None:
        """Ask the worker to stop and end every subscription; returns at once (the worker is
        not joined: ``await producer`` waits for it)."""
        if self._closedFlag:
            return
        self._closing.set()
        super().close()


class ThreadedSubscriptionConsumer(
    _WorkerMixin, BaseSubscriptionConsumer, threadedEventHandler, metaclass=_StartsWorker
):
    """A consumer whose elements are used by blocking code in a thread.

    Override ``_consumer()`` (it runs in the thread once the object is constructed)::

        class MyOutput(ThreadedSubscriptionConsumer):
            def _consumer(self):
                self._setReady(True)
                while not self._shouldClose:
                    try:
                        data = self._get()        # blocks this thread, not the loop
                    except SubscriptionClosed:
                        break
                    set_output_value(data)
                self._setReady(False)

    ``put_nowait`` from the loop hands the element to the thread at once. At most ``backlog``
    elements wait (default 10,000, or 1 when ``directPutSubscriptionType`` is
    :class:`MostRecentSubscription`). When they are full, ``overflow`` decides: ``"raise"``
    (the default) refuses ``put_nowait`` with :class:`SubscriptionFull` and makes a
    ``putSubscription`` source wait; ``"drop_oldest"`` (the default for
    :class:`MostRecentSubscription`; right for audio and video) drops the oldest waiting
    element, counted in ``statistics()``.
    """

    def __init__(
        self,
        directPutSubscriptionType: Any = QueueSubscription,
        logger: logging.Logger | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        daemonThread: bool = True,
        *,
        backlog: int | None = None,
        overflow: str | None = None,
    ) -> None:
        BaseSubscriptionConsumer.__init__(self, directPutSubscriptionType, logger)
        threadedEventHandler.__init__(self, logger, loop)
        self._initWorker(daemonThread)
        keeps_newest = _keeps_newest(directPutSubscriptionType)
        if overflow is None:
            overflow = "drop_oldest" if keeps_newest else "raise"
        if overflow not in ("raise", "drop_oldest"):
            raise ValueError(f"overflow must be 'raise' or 'drop_oldest', got {overflow!r}")
        self._dropOldest = overflow == "drop_oldest"
        if backlog is None:
            backlog = 1 if keeps_newest else DEFAULT_QUEUE_SIZE
        self._inBacklog = _check_backlog(backlog)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._dropped = 0
        self._source: Any = None
        self._pumpTask: asyncio.Task[None] | None = None
        self._pumpSpace: asyncio.Future[None] | None = None
        self._pumpWaiting = False

    # ------------------------------------------------------------ loop side

    @property
    def subscription(self) -> Any:
        """The source set by ``putSubscription``, or None."""
        return self._source

    def put_nowait(self, data: Any) -> None:
        """Hand ``data`` to the worker thread; never blocks. Stops reading a
        ``putSubscription`` source. Raises :class:`SubscriptionClosed` after close and
        :class:`SubscriptionFull` when ``backlog`` elements are already waiting."""
        if self._shouldClose:
            raise SubscriptionClosed(
                f"{type(self).__name__} is closed: cannot put {describe(data)}"
            )
        if self._source is not None:
            self._stopPump()
        q = self._queue
        if q.qsize() >= self._inBacklog:
            if self._dropOldest:
                try:
                    q.get_nowait()
                    self._dropped += 1
                except queue.Empty:
                    pass
            else:
                self._dropped += 1
                raise SubscriptionFull(
                    f"cannot put {describe(data)}: {self._inBacklog} elements are waiting for "
                    f"{type(self).__name__}'s thread"
                )
        q.put(data)

    def putSubscription(self, subscription: Any) -> None:
        """Feed the worker from ``subscription`` (anything with ``async get()``) from now on."""
        self._checkSource(subscription)
        self._stopPump()
        self._source = subscription
        self._callFromThread(self._startPump, subscription)

    def stopSubscription(self) -> None:
        """Stop reading the ``putSubscription`` source."""
        self._stopPump()

    def _startPump(self, source: Any) -> None:
        if source is self._source and self._pumpTask is None and not self._shouldClose:
            self._pumpTask = self._spawn(self._pump(source), name=f"rtcbot pump {self!r}")

    def _stopPump(self) -> None:
        self._source = None
        task, self._pumpTask = self._pumpTask, None
        if task is not None:
            task.cancel()

    async def _pump(self, source: Any) -> None:
        q = self._queue
        while True:
            try:
                element = await source.get()
            except SubscriptionClosed:
                if self._source is source:
                    self._source = None
                    self._pumpTask = None
                    q.put(_SOURCE_ENDED)
                return
            while q.qsize() >= self._inBacklog:
                if self._dropOldest:
                    try:
                        q.get_nowait()
                        self._dropped += 1
                    except queue.Empty:
                        pass
                    break
                self._pumpSpace = asyncio.get_running_loop().create_future()
                self._pumpWaiting = True
                try:
                    # Re-check after raising the flag: the worker may have emptied the queue
                    # just before it could see the flag.
                    if q.qsize() >= self._inBacklog:
                        await self._pumpSpace
                finally:
                    self._pumpWaiting = False
                    self._pumpSpace = None
            q.put(element)

    def _wakePump(self) -> None:
        space = self._pumpSpace
        if space is not None and not space.done():
            space.set_result(None)

    # ------------------------------------------------------------ worker side

    def _consumer(self) -> None:
        """Override: runs in the worker thread. The default reports ready, then reads and
        discards elements."""
        self._setReady(True)
        while True:
            self._get()

    def _work(self) -> None:
        self._consumer()

    def _get(self) -> Any:  # type: ignore[override]
        """The next element, blocking the worker thread (never call it on the loop).

        Raises :class:`SubscriptionClosed` when the consumer is closed, and once when a
        ``putSubscription`` source ends."""
        if self._inLoopThread():
            raise RuntimeError(
                f"{type(self).__name__}._get() blocks: call it in _consumer() (the worker "
                "thread), never on the event loop"
            )
        if self._shouldClose:
            raise SubscriptionClosed(f"{type(self).__name__} is closed")
        element = self._queue.get()
        if element is _CLOSED:
            self._queue.put(_CLOSED)  # for any later _get()
            raise SubscriptionClosed(f"{type(self).__name__} is closed")
        if element is _SOURCE_ENDED:
            raise SubscriptionClosed(f"{type(self).__name__}'s source ended")
        if self._pumpWaiting:
            self._pumpWaiting = False
            self._callFromThread(self._wakePump)
        return element

    def _endWorkerInput(self) -> None:
        """Make a worker blocked in ``_get()`` see the end of its input now (thread-safe;
        for shutdown paths where the loop may be gone, such as interpreter exit)."""
        self._queue.put(_CLOSED)

    def _getBatch(self, limit: int) -> tuple[list[Any], Any]:
        """Worker side: block for one element, then take what else is already waiting (up to
        ``limit``). Returns ``(elements, marker)``, the marker being ``_CLOSED``,
        ``_SOURCE_ENDED`` or None."""
        q = self._queue
        element = q.get()
        elements: list[Any] = []
        marker = None
        while True:
            if element is _CLOSED:
                q.put(_CLOSED)
                marker = _CLOSED
                break
            if element is _SOURCE_ENDED:
                marker = _SOURCE_ENDED
                break
            elements.append(element)
            if len(elements) >= limit:
                break
            try:
                element = q.get_nowait()
            except queue.Empty:
                break
        if self._pumpWaiting:
            self._pumpWaiting = False
            self._callFromThread(self._wakePump)
        return elements, marker

    def statistics(self) -> dict[str, int]:
        """``{"backlog": elements waiting for the worker, "dropped": elements refused or
        dropped because the backlog was full}``."""
        return {"backlog": self._queue.qsize(), "dropped": self._dropped}

    def close(self) -> None:
        """Ask the worker to stop (a blocked ``_get()`` raises :class:`SubscriptionClosed`);
        returns at once. ``await consumer`` waits for the worker."""
        if self._closedFlag:
            return
        self._closing.set()
        self._shouldClose = True
        self._stopPump()
        self._queue.put(_CLOSED)
        super().close()
