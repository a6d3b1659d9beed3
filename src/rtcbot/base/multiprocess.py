"""Bridges between code in a child process and the asyncio event loop.

Use these when the blocking code must not share the GIL with the loop (heavy numpy/OpenCV work,
a library that is not thread-safe, a device read that cannot be interrupted). They work under
every multiprocessing start method; the default is ``spawn`` (macOS and Windows, and Linux from
Python 3.14, have no safe ``fork`` in a threaded process such as one running aiortc). Under
``spawn`` the child re-imports the module that defines the subclass, so define subclasses at
module level and guard the program's entry point with ``if __name__ == "__main__":``.

What crosses to the child: the object's **own** attributes (those set by the subclass), pickled.
rtcbot's internals (loop, threads, subscriptions, callbacks) stay in the parent. In the child,
``_producer()`` / ``_consumer()`` / ``_producerConsumer()`` run with the same protected API as the
thread bridges: ``_put_nowait``, ``_get``, ``_setReady``, ``_setError``, ``_close``,
``_shouldClose`` and ``_closing.wait(seconds)``.

Elements are pickled with protocol 5 and sent in batches; numpy arrays travel out of band (one
copy each way) and arrive writable. ``close()`` returns at once; the child sees
``_shouldClose``, and is terminated if it has not ended ``joinTimeout`` seconds later.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import multiprocessing
import pickle
import signal
import struct
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any

from .errors import SubscriptionClosed, WorkerError
from .subscriptions import QueueSubscription
from .thread import (
    _CLOSED,
    _SOURCE_ENDED,
    ThreadedSubscriptionConsumer,
    ThreadedSubscriptionProducer,
)

__all__ = [
    "ProcessSubscriptionConsumer",
    "ProcessSubscriptionProducer",
    "ProcessSubscriptionProducerConsumer",
]

_log = logging.getLogger("rtcbot.base.multiprocess")

_BATCH = 1024  # most elements sent in one message


# ---------------------------------------------------------------------------- wire format


def _send(conn: Connection, message: Any) -> None:
    """Send one message: a header with the sizes of the out-of-band buffers and the pickle,
    then each buffer (numpy arrays are not copied into the pickle)."""
    buffers: list[pickle.PickleBuffer] = []
    body = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    header = struct.pack(f"<I{len(raws)}Q", len(raws), *(r.nbytes for r in raws))
    conn.send_bytes(header + body)
    for raw in raws:
        conn.send_bytes(raw)


def _recv(conn: Connection) -> Any:
    data = conn.recv_bytes()
    (count,) = struct.unpack_from("<I", data)
    sizes = struct.unpack_from(f"<{count}Q", data, 4)
    buffers = []
    for size in sizes:
        buffer = bytearray(size)  # writable, so arrays built on it are writable
        conn.recv_bytes_into(buffer)
        buffers.append(buffer)
    return pickle.loads(memoryview(data)[4 + 8 * count :], buffers=buffers)


def _picklable_error(exc: BaseException) -> BaseException:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return WorkerError(f"{exc!r} in the child process\n{text}")
    exc.__notes__ = [*getattr(exc, "__notes__", []), f"in the child process:\n{text}"]
    return exc


# ---------------------------------------------------------------------------- child side


class _Outbox:
    """Child to parent: elements and control messages, in order, sent in batches by a thread
    of the child (so ``_put_nowait`` never blocks the child's own code)."""

    def __init__(self, conn: Connection, backlog: int) -> None:
        self._conn = conn
        self._backlog = backlog
        self._items: collections.deque[Any] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._idle = False
        self._stopping = False
        self.dropped = 0
        self._reported = 0  # drops already reported to the parent
        self._thread = threading.Thread(target=self._run, name="rtcbot-outbox", daemon=True)
        self._thread.start()

    def put(self, element: Any) -> None:
        with self._cond:
            items = self._items
            if len(items) >= self._backlog:
                # drop the oldest element (never a control message: ready, error, close)
                for i, item in enumerate(items):
                    if not isinstance(item, _Control):
                        del items[i]
                        self.dropped += 1
                        break
            items.append(element)
            if self._idle:
                self._cond.notify()

    def control(self, kind: str, payload: Any = None) -> None:
        with self._cond:
            self._items.append(_Control(kind, payload))
            if self._idle:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._stopping:
                    self._idle = True
                    self._cond.wait()
                self._idle = False
                items, self._items = self._items, collections.deque()
                stopping = self._stopping
            try:
                self._sendAll(items)
            except (BrokenPipeError, EOFError, OSError):
                return  # the parent is gone
            if stopping and not self._items:
                return

    def _sendAll(self, items: collections.deque[Any]) -> None:
        batch: list[Any] = []
        for item in items:
            if isinstance(item, _Control):
                if batch:
                    _send(self._conn, ("data", batch))
                    batch = []
                payload = item.payload
                if item.kind == "error":
                    payload = _picklable_error(payload)
                _send(self._conn, (item.kind, payload))
            else:
                batch.append(item)
                if len(batch) >= _BATCH:
                    _send(self._conn, ("data", batch))
                    batch = []
        if batch:
            _send(self._conn, ("data", batch))
        dropped = self.dropped
        if dropped != self._reported:  # the parent counts them in statistics()
            _send(self._conn, ("dropped", dropped - self._reported))
            self._reported = dropped

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()


class _Control:
    __slots__ = ("kind", "payload")

    def __init__(self, kind: str, payload: Any) -> None:
        self.kind = kind
        self.payload = payload


class _ChildLink:
    """What a bridge object uses in the child in place of the parent's machinery."""

    def __init__(self, closeEvent: Any, toParent: Connection, fromParent: Connection | None,
                 backlog: int) -> None:
        self.closeEvent = closeEvent
        self.outbox = _Outbox(toParent, backlog)
        self.fromParent = fromParent
        self.inbox: collections.deque[Any] = collections.deque()
        self.closedLocally = False
        self.inputEnded = False

    def shouldClose(self) -> bool:
        return self.closedLocally or self.closeEvent.is_set()

    def get(self) -> Any:
        inbox = self.inbox
        while not inbox:
            if self.inputEnded or self.fromParent is None:
                raise SubscriptionClosed("the parent closed the consumer")
            try:
                kind, payload = _recv(self.fromParent)
            except (EOFError, OSError):
                self.inputEnded = True
                continue
            if kind == "data":
                inbox.extend(payload)
            elif kind == "ended":
                raise SubscriptionClosed("the consumer's source ended")
            else:  # "close"
                self.inputEnded = True
        return inbox.popleft()


def _child_main(cls: type, state: dict[str, Any], role: str, closeEvent: Any,
                toParent: Connection, fromParent: Connection | None, backlog: int) -> None:
    """Entry point of the child process: rebuild the object from its own attributes and run
    its worker method; report the outcome to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    link = _ChildLink(closeEvent, toParent, fromParent, backlog)
    try:
        obj = cls.__new__(cls)
        obj.__dict__.update(state)
        obj.__dict__["_child"] = link
        obj.__dict__["_closing"] = closeEvent
        obj.__dict__["_log"] = logging.getLogger("rtcbot").getChild(cls.__name__)
        getattr(obj, role)()
    except SubscriptionClosed:
        link.outbox.control("exit")
    except BaseException as exc:
        link.outbox.control("error", exc)
    else:
        link.outbox.control("exit")
    finally:
        link.outbox.stop()
        toParent.close()
        if fromParent is not None:
            fromParent.close()


# ---------------------------------------------------------------------------- parent side


class _ProcessMixin:
    """Parent side of a process bridge: starts the child from the worker thread, reads what it
    sends, and stops it on close (terminating it after ``joinTimeout``)."""

    _role = ""
    _child: _ChildLink | None = None  # set (on the instance) only in the child
    _hasInput = False
    _hasOutput = False

    def _initProcess(self, joinTimeout: float, start_method: str | None, before: set[str],
                     backlog: int) -> None:
        if start_method is None:
            start_method = "spawn"
        self._ctx = multiprocessing.get_context(start_method)
        self._startMethod = start_method
        self._joinTimeout = float(joinTimeout)
        self._processCloseEvent = self._ctx.Event()
        self._process: Any = None
        self._childBacklog = backlog
        self._escalation: asyncio.TimerHandle | None = None
        self._internalKeys = (set(self.__dict__) - before) | {"_internalKeys"}

    # In the parent `_shouldClose` is a flag set by close(); in the child it follows the
    # parent's close event.
    @property
    def _shouldClose(self) -> bool:
        child = self._child
        if child is not None:
            return child.shouldClose()
        return self.__dict__.get("_shouldCloseFlag", False)

    @_shouldClose.setter
    def _shouldClose(self, value: bool) -> None:
        self.__dict__["_shouldCloseFlag"] = value

    def _childState(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._internalKeys}

    def _startChild(self) -> tuple[Connection | None, Connection | None]:
        """Start the child; return (parent's end to read from the child, parent's end to write
        to it). Runs in the worker thread (spawning takes a while)."""
        readEnd, childWrite = self._ctx.Pipe(duplex=False)
        childRead = writeEnd = None
        if self._hasInput:
            childRead, writeEnd = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=_child_main,
            args=(type(self), self._childState(), self._role, self._processCloseEvent,
                  childWrite, childRead, self._childBacklog),
            name=f"rtcbot-{type(self).__name__}",
            daemon=self._daemonThread,
        )
        try:
            process.start()
        except Exception as exc:
            readEnd.close()
            childWrite.close()
            if writeEnd is not None:
                writeEnd.close()
                childRead.close()
            raise type(exc)(
                f"could not start {type(self).__name__} in a child process (start method "
                f"{self._startMethod!r}): {exc}. Its own attributes must be picklable and the "
                "class defined at module level."
            ) from exc
        self._process = process
        childWrite.close()  # so that reading sees EOF when the child exits
        if childRead is not None:
            childRead.close()
        return readEnd, writeEnd

    def _readChild(self, conn: Connection) -> None:
        """Deliver what the child sends until it exits (EOF)."""
        deliver = ThreadedSubscriptionProducer._put_nowait
        try:
            while True:
                try:
                    kind, payload = _recv(conn)
                except (EOFError, OSError):
                    return
                if kind == "data":
                    for element in payload:
                        deliver(self, element)
                elif kind == "ready":
                    self._setReady(payload)
                elif kind == "error":
                    self._setError(payload)
                elif kind == "close":
                    self._close()
                elif kind == "dropped":  # the child's own backlog overflowed
                    self._inboxDropped += payload
        finally:
            conn.close()

    def _finishChild(self) -> None:
        process = self._process
        if process is not None:
            process.join()  # worker thread; bounded by the escalation started at close

    def _stopChild(self) -> None:
        """On close (loop thread): the child sees _shouldClose now; if it has not ended after
        joinTimeout it is terminated, then killed."""
        self._processCloseEvent.set()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._escalation = loop.call_later(self._joinTimeout, self._escalate, False)

    def _escalate(self, kill: bool) -> None:
        process = self._process
        if process is None or self._workerExited or not process.is_alive():
            return
        if kill:
            self._log.warning("child process did not stop after SIGTERM; killing it")
            process.kill()
            return
        self._log.warning(
            "child process still running %.1f s after close; terminating it", self._joinTimeout
        )
        process.terminate()
        self._escalation = asyncio.get_running_loop().call_later(
            self._joinTimeout, self._escalate, True
        )

    def _onWorkerExit(self) -> None:
        if self._escalation is not None:
            self._escalation.cancel()
            self._escalation = None
        super()._onWorkerExit()

    # ---- child-side dispatch of the protected API

    def _setReady(self, value: bool = True) -> None:
        child = self._child
        if child is not None:
            child.outbox.control("ready", bool(value))
        else:
            super()._setReady(value)

    def _setError(self, err: Any) -> None:
        child = self._child
        if child is not None:
            child.outbox.control("error", err)
        else:
            super()._setError(err)

    def _close(self) -> None:
        child = self._child
        if child is not None:
            child.closedLocally = True
            child.outbox.control("close")
        else:
            super()._close()

    def _put_nowait(self, element: Any) -> None:
        child = self._child
        if child is not None:
            child.outbox.put(element)
        else:
            ThreadedSubscriptionProducer._put_nowait(self, element)

    def _get(self) -> Any:
        child = self._child
        if child is not None:
            return child.get()
        return ThreadedSubscriptionConsumer._get(self)

    def _sendToChild(self, conn: Connection) -> None:
        """Parent worker loop of a consumer: forward the loop's elements to the child."""
        try:
            while True:
                try:
                    batch, marker = self._getBatch(_BATCH)
                except SubscriptionClosed:
                    return
                if batch:
                    _send(conn, ("data", batch))
                if marker is _SOURCE_ENDED:
                    _send(conn, ("ended", None))
                elif marker is _CLOSED:
                    return
        except (BrokenPipeError, EOFError, OSError):
            return  # the child is gone; its reader closes us
        finally:
            try:
                _send(conn, ("close", None))
            except (BrokenPipeError, EOFError, OSError):
                pass
            conn.close()


class ProcessSubscriptionProducer(_ProcessMixin, ThreadedSubscriptionProducer):
    """A producer whose ``_producer()`` runs in a child process.

    Same protected API as :class:`ThreadedSubscriptionProducer`. ``joinTimeout`` (seconds) is how
    long a child may take to end after ``close()`` before it is terminated; ``start_method`` is a
    multiprocessing start method ("spawn" by default, "fork", "forkserver"). ``loop`` and
    ``daemonProcess`` are kept from RTCBot 0.2.5.
    """

    _role = "_producer"

    def __init__(
        self,
        defaultSubscriptionType: Any = QueueSubscription,
        logger: logging.Logger | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        daemonProcess: bool = True,
        joinTimeout: float = 1,
        *,
        start_method: str | None = None,
        backlog: int | None = None,
    ) -> None:
        before = set(self.__dict__)
        ThreadedSubscriptionProducer.__init__(
            self, defaultSubscriptionType, logger, loop, daemonProcess, backlog=backlog
        )
        self._initProcess(joinTimeout, start_method, before, self._outBacklog)

    def _producer(self) -> None:
        """Override: runs in the child process. The default reports ready and waits until
        closed."""
        self._setReady(True)
        self._closing.wait()

    def _work(self) -> None:
        conn, _ = self._startChild()
        self._readChild(conn)
        self._finishChild()

    def close(self) -> None:
        if self._closedFlag:
            return
        self._stopChild()
        super().close()


class ProcessSubscriptionConsumer(_ProcessMixin, ThreadedSubscriptionConsumer):
    """A consumer whose ``_consumer()`` runs in a child process and reads with the blocking
    ``self._get()``. Same parameters as :class:`ProcessSubscriptionProducer`."""

    _role = "_consumer"
    _hasInput = True

    def __init__(
        self,
        directPutSubscriptionType: Any = QueueSubscription,
        logger: logging.Logger | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        daemonProcess: bool = True,
        joinTimeout: float = 1,
        *,
        start_method: str | None = None,
        backlog: int | None = None,
    ) -> None:
        before = set(self.__dict__)
        ThreadedSubscriptionConsumer.__init__(
            self, directPutSubscriptionType, logger, loop, daemonProcess, backlog=backlog
        )
        self._initProcess(joinTimeout, start_method, before, self._inBacklog)

    def _consumer(self) -> None:
        """Override: runs in the child process. The default reads and discards elements."""
        while True:
            self._get()

    def _work(self) -> None:
        conn, toChild = self._startChild()
        reader = threading.Thread(target=self._readUntilExit, args=(conn,), daemon=True,
                                  name=f"rtcbot-{type(self).__name__}-reader")
        reader.start()
        self._sendToChild(toChild)
        reader.join()
        self._finishChild()

    def _readUntilExit(self, conn: Connection) -> None:
        self._readChild(conn)
        self._close()  # the child ended: so does the consumer

    def close(self) -> None:
        if self._closedFlag:
            return
        self._stopChild()
        super().close()


class ProcessSubscriptionProducerConsumer(
    _ProcessMixin, ThreadedSubscriptionConsumer, ThreadedSubscriptionProducer
):
    """Both at once: ``_producerConsumer()`` runs in a child process, reads the loop's input with
    ``self._get()`` and sends output with ``self._put_nowait()``; the parent object is a
    consumer (``put_nowait``, ``putSubscription``) and a producer (``subscribe``, ``get``)."""

    _role = "_producerConsumer"
    _hasInput = True

    def __init__(
        self,
        directPutSubscriptionType: Any = QueueSubscription,
        defaultSubscriptionType: Any = QueueSubscription,
        logger: logging.Logger | None = None,
        defaultAutosubscribe: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
        daemonProcess: bool = True,
        joinTimeout: float = 1,
        *,
        start_method: str | None = None,
        backlog: int | None = None,
    ) -> None:
        before = set(self.__dict__)
        ThreadedSubscriptionConsumer.__init__(
            self, directPutSubscriptionType, logger, loop, daemonProcess, backlog=backlog
        )
        ThreadedSubscriptionProducer.__init__(
            self, defaultSubscriptionType, logger, loop, daemonProcess, backlog=backlog
        )
        if defaultAutosubscribe:
            self._setDefaultSubscription(self.subscribe())
        self._initProcess(joinTimeout, start_method, before, self._outBacklog)

    def _producerConsumer(self) -> None:
        """Override: runs in the child process. The default echoes its input back."""
        while True:
            self._put_nowait(self._get())

    def _work(self) -> None:
        conn, toChild = self._startChild()
        sender = threading.Thread(target=self._sendToChild, args=(toChild,), daemon=True,
                                  name=f"rtcbot-{type(self).__name__}-sender")
        sender.start()
        self._readChild(conn)
        self._queue.put(_CLOSED)  # the child ended: stop the sender
        sender.join()
        self._finishChild()

    def statistics(self) -> dict[str, int]:
        """Backlogs and drops of both directions."""
        return {
            "input_backlog": self._queue.qsize(),
            "input_dropped": self._dropped,
            "output_backlog": len(self._inbox),
            "output_dropped": self._inboxDropped,
        }

    def close(self) -> None:
        if self._closedFlag:
            return
        self._stopChild()
        ThreadedSubscriptionConsumer.close(self)
