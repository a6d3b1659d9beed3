"""Hand-written minimal bridges: the baselines that a user could write in a few lines.

* :class:`MinimalThreadProducer`: a worker thread appends to a ``deque``; at most ONE
  ``loop.call_soon_threadsafe`` is pending at a time (a "wake pending" flag), so the loop is
  woken once per batch, not once per item. ``async get()`` reads the deque.
* :class:`MinimalThreadConsumer`: ``queue.SimpleQueue``, ``put_nowait`` from the loop, blocking
  ``get()`` in the worker thread.
* :func:`raw_process_child`: the child loop of the process baseline, a raw
  ``multiprocessing.Queue``.

They have the same shape as the rtcbot classes the benchmark measures (``_producer`` /
``_consumer`` run in the thread and call ``_put_nowait`` / ``_get``), so the per-item work of the
worker is the same code in every implementation. They are baselines, not libraries: no error
handling beyond what the benchmark needs.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading

from _workloads import process_items

__all__ = [
    "MinimalClosed",
    "MinimalThreadConsumer",
    "MinimalThreadProducer",
    "raw_process_child",
]

_STOP = object()


class MinimalClosed(Exception):
    """End of stream of the minimal bridges."""


class _Worker:
    """A thread started on the running loop; ``await obj`` waits until it has ended."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()
        self._finished = self._loop.create_future()
        self._shouldClose = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _target(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            self._target()
        finally:
            self._loop.call_soon_threadsafe(_set_done, self._finished)

    def _setReady(self, value: bool = True) -> None:
        if value:
            self._loop.call_soon_threadsafe(_set_done, self._ready)

    def onReady(self) -> asyncio.Future:
        return self._ready

    def __await__(self):
        return asyncio.shield(self._finished).__await__()


def _set_done(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class MinimalThreadProducer(_Worker):
    """Worker thread -> deque -> one wake-up per batch -> ``async get()`` on the loop."""

    def __init__(self) -> None:
        self._items: collections.deque = collections.deque()
        self._wake_pending = False
        self._waiter: asyncio.Future | None = None
        self._stop_event = threading.Event()
        super().__init__()

    def _target(self) -> None:
        self._producer()

    def _producer(self) -> None:
        # Idle by default: wait until closed.
        self._setReady(True)
        self._stop_event.wait()

    def _put_nowait(self, item) -> None:
        # Runs in the worker thread. append() before reading the flag: a wake that is already
        # pending runs after this append and so sees the item.
        self._items.append(item)
        if not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._wake_pending = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self):
        items = self._items
        while not items:
            if self._shouldClose:
                raise MinimalClosed
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return items.popleft()

    def close(self) -> None:
        self._shouldClose = True
        self._stop_event.set()
        self._wake()


class MinimalThreadConsumer(_Worker):
    """``put_nowait`` on the loop -> ``queue.SimpleQueue`` -> blocking ``_get()`` in a thread."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        super().__init__()

    def _target(self) -> None:
        self._consumer()

    def _consumer(self) -> None:
        # Idle by default: wait for items until closed.
        self._setReady(True)
        try:
            while True:
                self._get()
        except MinimalClosed:
            pass

    def put_nowait(self, item) -> None:
        self._queue.put(item)

    def _get(self):
        item = self._queue.get()
        if item is _STOP:
            raise MinimalClosed
        return item

    def close(self) -> None:
        if not self._shouldClose:
            self._shouldClose = True
            self._queue.put(_STOP)


def raw_process_child(q, kind: str, n: int, shape: tuple[int, ...], flow=None) -> None:
    """Child of the raw ``multiprocessing.Queue`` baseline: the same loop as the rtcbot child."""
    process_items(q.put, kind, n, shape, flow)
