"""Lifecycle events (ready, error, close) and late binding to the event loop.

Every rtcbot object is a :class:`baseEventHandler`. It can be created anywhere -- at module level
before any event loop exists, in a thread, inside a coroutine -- and binds to the event loop that
first uses it (the running loop of the first call made from async code). Objects that have
something to deliver before that (a worker thread produced data, reported ready) keep it until
a loop appears: the first rtcbot object that binds to a running loop adopts every waiting one.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from .errors import RTCBotError, SubscriptionClosed

__all__ = ["baseEventHandler", "threadedEventHandler"]

_log = logging.getLogger("rtcbot.base")

try:  # the C accelerated accessor; public since Python 3.7 as asyncio._get_running_loop
    _running_loop = asyncio._get_running_loop
except AttributeError:  # pragma: no cover

    def _running_loop() -> asyncio.AbstractEventLoop | None:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return None


# Objects with work queued for a loop they do not know yet. The first object to bind to a
# running loop binds them all to it (one process normally runs one rtcbot loop).
_unbound_lock = threading.Lock()
_unbound: weakref.WeakSet[baseEventHandler] = weakref.WeakSet()


_finder: threading.Thread | None = None


def _adopt_unbound(loop: asyncio.AbstractEventLoop) -> None:
    with _unbound_lock:
        if not _unbound:
            return
        waiting = list(_unbound)
        _unbound.clear()
    for obj in waiting:
        obj._bindLoop(loop)


def _park(obj: baseEventHandler) -> None:
    """Remember that ``obj`` has work for a loop it does not know yet."""
    global _finder
    with _unbound_lock:
        _unbound.add(obj)
        if _finder is None:
            _finder = threading.Thread(target=_find_loop, name="rtcbot-loop-finder", daemon=True)
            _finder.start()


def _scan_for_running_loop() -> asyncio.AbstractEventLoop | None:
    """A running asyncio loop of another thread, found in the threads' stacks (the main
    thread first), or None."""
    me = threading.get_ident()
    main = threading.main_thread().ident
    frames = sys._current_frames()
    for ident in sorted(frames, key=lambda i: i != main):
        if ident == me:
            continue
        frame = frames[ident]
        while frame is not None:
            local = frame.f_locals
            for name in ("self", "loop"):
                candidate = local.get(name)
                if isinstance(candidate, asyncio.AbstractEventLoop) and candidate.is_running():
                    return candidate
            frame = frame.f_back
    return None


def _find_loop() -> None:
    """Runs while objects wait for a loop that no rtcbot call has shown them (for example a
    camera created at module level whose only subscriber is a plain callback, in a program that
    then calls ``loop.run_forever()``). Looks for a running loop with a growing back-off (1 ms
    up to 100 ms) and hands it to them; ends as soon as nobody waits."""
    global _finder
    delay = 0.001
    while True:
        with _unbound_lock:
            if not _unbound:
                _finder = None
                return
        loop = _scan_for_running_loop()
        if loop is not None:
            _adopt_unbound(loop)
            delay = 0.001
            continue
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _call_kind(callback: Any) -> str:
    """How to deliver an event or element to ``callback``: 'put', 'coro' or 'call'."""
    if hasattr(callback, "put_nowait"):
        return "put"
    if inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
        getattr(callback, "__call__", None)  # noqa: B004 - async callable objects
    ):
        return "coro"
    if callable(callback):
        return "call"
    raise TypeError(
        f"expected a callback, a coroutine function or an object with put_nowait(), got "
        f"{callback!r}"
    )


class _EventAwaitable:
    """What ``onReady()``, ``onError()`` and ``onClose()`` return when called with no argument:
    an awaitable (``await obj.onReady()``) that also has ``get()``."""

    __slots__ = ("_handler", "_kind")

    def __init__(self, handler: baseEventHandler, kind: str) -> None:
        self._handler = handler
        self._kind = kind

    async def get(self) -> Any:
        return await self._handler._waitEvent(self._kind)

    def __await__(self):
        return self.get().__await__()


class baseEventHandler:
    """Ready/error/close events, owned background tasks and late loop binding.

    Public: ``ready``, ``error``, ``closed``, ``onReady``, ``onError``, ``onClose``, ``close()``,
    ``await obj``, ``async with obj``. Protected (for subclasses): ``_setReady``, ``_setError``,
    ``_spawn``.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        if getattr(self, "_eventsInitialized", False):
            return
        self._eventsInitialized = True
        self._log = (logger if logger is not None else logging.getLogger("rtcbot")).getChild(
            type(self).__name__
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loopThreadId: int | None = None
        self._loopLock = threading.Lock()
        self._pendingCalls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._readyFlag = False
        self._closedFlag = False
        self._errorValue: BaseException | None = None
        self._eventSubscribers: dict[str, list[tuple[Any, str]]] = {
            "ready": [],
            "error": [],
            "close": [],
        }
        self._eventWaiters: list[tuple[str, asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._finishers: list[Callable[[], Any]] = []

    # ------------------------------------------------------------------ loop binding

    def _ensureLoop(self) -> asyncio.AbstractEventLoop | None:
        """Bind to the running loop if called from one; return the bound loop (or None)."""
        running = _running_loop()
        loop = self._loop
        if running is not None and running is not loop:
            if loop is None or loop.is_closed() or not loop.is_running():
                self._bindLoop(running)
                _adopt_unbound(running)
                return running
        return loop

    def _bindLoop(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._loopLock:
            if self._loop is loop:
                return
            self._loop = loop
            # The id of the thread that runs it: we bind either from that thread (a call made
            # in async code) or through adoption by an object that was bound from it.
            self._loopThreadId = getattr(loop, "_thread_id", None) or threading.get_ident()
            pending, self._pendingCalls = self._pendingCalls, []
        for fn, args in pending:
            self._callSoon(loop, fn, args)
        self._onLoopBound(loop)

    def _onLoopBound(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hook: called once the object knows its loop (from any thread)."""

    def _inLoopThread(self) -> bool:
        return self._loopThreadId == threading.get_ident()

    @staticmethod
    def _callSoon(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], args: tuple) -> bool:
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: the program is ending
            _log.debug("event loop closed; dropped call %r", fn)
            return False
        return True

    def _callFromThread(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the object's loop: at once when already on it, else queued
        with one thread-safe wake-up (kept until a loop is bound)."""
        if self._loop is None and _running_loop() is not None:
            self._ensureLoop()
        loop = self._loop
        if loop is None:
            with self._loopLock:
                if self._loop is None:
                    self._pendingCalls.append((fn, args))
                    _park(self)
                    return
                loop = self._loop
        if self._inLoopThread():
            fn(*args)
        else:
            self._callSoon(loop, fn, args)

    # ------------------------------------------------------------------ owned tasks

    def _spawn(self, coro: Any, *, critical: bool = True, name: str | None = None):
        """Start ``coro`` as a task owned by this object (needs a running loop).

        The task is kept, cancelled on close and awaited by ``await obj``. If ``critical``, an
        exception from it reaches ``onError`` and closes the object; otherwise it is logged.
        """
        loop = self._ensureLoop()
        if loop is None:
            coro.close()
            raise RuntimeError(f"{self!r}: starting a task needs a running event loop")
        task = loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._taskDone if critical else self._callbackTaskDone)
        return task

    def _taskDone(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, SubscriptionClosed):
            self._log.error("background task %s failed: %r", task.get_name(), exc)
            self._setError(exc)

    def _callbackTaskDone(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error(
                "callback task %s raised", task.get_name(), exc_info=task.exception()
            )

    # ------------------------------------------------------------------ events

    @property
    def ready(self) -> bool:
        """True while the object is ready (a device open, a connection established)."""
        return self._readyFlag

    @property
    def error(self) -> BaseException | None:
        """The exception that broke the object, or None."""
        return self._errorValue

    @property
    def closed(self) -> bool:
        """True once the object is closed (by ``close()``, an error, or its end)."""
        return self._closedFlag

    def _subscribeEvent(self, kind: str, subscription: Any) -> Any:
        self._ensureLoop()
        if subscription is None:
            return _EventAwaitable(self, kind)
        how = _call_kind(subscription)
        self._eventSubscribers[kind].append((subscription, how))
        # An event that already happened is delivered at once (like awaiting it).
        if kind == "ready" and self._readyFlag:
            self._deliverEvent(kind, subscription, how, ())
        elif kind == "close" and self._closedFlag:
            self._deliverEvent(kind, subscription, how, ())
        elif kind == "error" and self._errorValue is not None:
            self._deliverEvent(kind, subscription, how, (self._errorValue,))
        return subscription

    def onReady(self, subscription: Any = None) -> Any:
        """Run ``subscription`` when the object becomes ready.

        ``subscription`` may be a callable (called with no argument), a coroutine function
        (started as a task) or an object with ``put_nowait`` (receives ``True``); it is returned,
        so this works as a decorator. If the object is already ready it runs at once (the
        same holds for ``onClose`` on a closed object and ``onError`` on a failed one). With
        no argument, returns an awaitable: ``await obj.onReady()`` returns once ready, and
        raises the object's error (or :class:`SubscriptionClosed`) if it closes first.
        Cancelling that await is harmless.
        """
        return self._subscribeEvent("ready", subscription)

    def onError(self, subscription: Any = None) -> Any:
        """Run ``subscription`` with the exception when the object fails.

        Same kinds as :meth:`onReady` (callables receive the exception). With no argument,
        ``err = await obj.onError()`` returns the error (at once if it already failed), or None
        if the object closes without error.
        """
        return self._subscribeEvent("error", subscription)

    def onClose(self, subscription: Any = None) -> Any:
        """Run ``subscription`` when the object closes (callables get no argument,
        ``put_nowait`` receives None). With no argument, ``await obj.onClose()`` returns once
        closed. ``await obj`` waits for the close to complete, workers included."""
        return self._subscribeEvent("close", subscription)

    async def _waitEvent(self, kind: str) -> Any:
        self._ensureLoop()
        if kind == "ready":
            if self._readyFlag:
                return True
            if self._closedFlag:
                raise self._closedError()
        elif kind == "error":
            if self._errorValue is not None or self._closedFlag:
                return self._errorValue
        elif self._closedFlag:
            return None
        future = asyncio.get_running_loop().create_future()
        entry = (kind, future)
        self._eventWaiters.append(entry)
        try:
            return await future
        finally:
            if entry in self._eventWaiters:
                self._eventWaiters.remove(entry)

    def _closedError(self) -> BaseException:
        if self._errorValue is not None:
            return self._errorValue
        return SubscriptionClosed(f"{type(self).__name__} closed before it became ready")

    def _resolveWaiters(self, kind: str, value: Any = None, exc: BaseException | None = None):
        waiters = [w for w in self._eventWaiters if w[0] == kind]
        for entry in waiters:
            self._eventWaiters.remove(entry)
            future = entry[1]
            if not future.done():
                if exc is not None:
                    future.set_exception(exc)
                else:
                    future.set_result(value)

    def _fire(self, kind: str, *args: Any) -> None:
        for subscriber, how in list(self._eventSubscribers[kind]):
            self._deliverEvent(kind, subscriber, how, args)

    def _deliverEvent(self, kind: str, subscriber: Any, how: str, args: tuple) -> None:
        try:
            if how == "put":
                value = args[0] if args else (True if kind == "ready" else None)
                subscriber.put_nowait(value)
            elif how == "coro":
                if _running_loop() is None:
                    self._log.warning(
                        "on%s coroutine %r not run: no event loop is running",
                        kind.capitalize(),
                        subscriber,
                    )
                    return
                self._spawn(subscriber(*args), critical=False)
            else:
                subscriber(*args)
        except Exception:
            self._log.exception("on%s subscriber %r raised", kind.capitalize(), subscriber)

    def _setReady(self, value: bool = True) -> None:
        """Mark the object ready (``True``: fires onReady once per transition) or not ready
        (``False``: fires nothing). Ignored once closed."""
        if self._closedFlag:
            return
        if value:
            if not self._readyFlag:
                self._readyFlag = True
                self._resolveWaiters("ready", True)
                self._fire("ready")
        else:
            self._readyFlag = False

    def _setError(self, err: Any) -> None:
        """Record ``err`` (an exception; anything else is wrapped in :class:`RTCBotError`), fire
        onError, then close the object."""
        if not isinstance(err, BaseException):
            err = RTCBotError(f"{type(self).__name__} failed: {err!r}")
        if self._errorValue is None:
            self._errorValue = err
        elif self._closedFlag:
            self._log.debug("error after close ignored: %r", err)
            return
        self._resolveWaiters("error", err)
        self._fire("error", err)
        self.close()

    def close(self) -> None:
        """Close the object: stops its work, ends its readers' streams, fires onClose.

        Synchronous, idempotent, never blocks; ``await obj`` waits until background tasks and
        workers have finished.
        """
        if self._closedFlag:
            return
        self._closedFlag = True
        self._readyFlag = False
        for task in list(self._tasks):
            task.cancel()
        self._resolveWaiters("ready", exc=self._closedError())
        self._resolveWaiters("error", self._errorValue)
        self._resolveWaiters("close", None)
        self._fire("close")

    def _close(self) -> None:
        """Close from any thread (workers call this)."""
        self.close()

    def _addFinisher(self, finisher: Callable[[], Any]) -> None:
        """Register an awaitable factory that ``await obj`` waits for after close."""
        self._finishers.append(finisher)

    async def _waitClosed(self) -> None:
        await self._waitEvent("close")
        if self._tasks:
            current = asyncio.current_task()
            await asyncio.gather(*(t for t in self._tasks if t is not current),
                                 return_exceptions=True)
        for finisher in self._finishers:
            await finisher()

    def __await__(self):
        return self._waitClosed().__await__()

    async def __aenter__(self):
        self._ensureLoop()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.close()
        await self

    def __repr__(self) -> str:
        state = "closed" if self._closedFlag else ("ready" if self._readyFlag else "not ready")
        return f"<{type(self).__name__} {state}>"


class threadedEventHandler(baseEventHandler):
    """An event handler whose ``_setReady``, ``_setError`` and ``_close`` may be called from any
    thread (worker threads of devices): they hop to the object's loop. ``loop`` is accepted for
    RTCBot 0.2.5 compatibility and, if given, binds the object to that loop at once."""

    def __init__(
        self,
        logger: logging.Logger | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(logger)
        if loop is not None and self._loop is None:
            self._bindLoop(loop)

    def _setReady(self, value: bool = True) -> None:
        self._callFromThread(baseEventHandler._setReady, self, value)

    def _setError(self, err: Any) -> None:
        self._callFromThread(baseEventHandler._setError, self, err)

    def _close(self) -> None:
        self._callFromThread(self.close)
