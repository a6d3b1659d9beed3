"""The worker-side loops of the bridge benchmark, shared by every implementation.

Each implementation's thread or child process calls the same function here with its own
``put`` / ``get``, so only the bridge differs between the figures of two implementations.
Stdlib only (numpy is imported lazily for frames): this module is imported by the rtcbot,
the minimal and the RTCBot 0.2.5 runs alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import SimpleNamespace

END = -1
"""Sent after the last item of a run, so the reader notices items that were dropped."""

NEVER = float("inf")
WAIT_LIMIT_S = 30.0
"""No wait of a worker lasts longer than this: the benchmark can never hang."""


class Flow:
    """Window flow control between the worker (sender) and the loop (reader).

    The reader stores how many items it has received in ``received``; the worker stops when
    ``window`` items are in flight and resumes when the backlog is down to half the window.
    The reader's per-item cost is one store and one comparison (``received >= resume_at``);
    ``resume_at`` is ``NEVER`` unless the worker waits. With ``window=None`` it never waits.
    See :meth:`on_received` for the reader's side.
    """

    __slots__ = ("credit", "received", "resume_at", "waits", "window")

    def __init__(self, window: int | None) -> None:
        self.window = window
        self.received = 0
        self.resume_at: float = NEVER
        self.waits = 0
        self.credit = threading.Event()

    def on_received(self, count: int) -> None:
        """Reader side, after each item (inlined by the reader for speed). The credit is set
        once per wait: setting an event takes a lock, and the worker may take a while to run
        and clear ``resume_at``."""
        self.received = count
        if count >= self.resume_at and not self.credit.is_set():
            self.credit.set()

    def wait_for_room(self, sent: int) -> None:
        """Worker side: block until the backlog is at most half the window."""
        assert self.window is not None
        self.waits += 1
        target = sent - self.window // 2
        self.credit.clear()
        self.resume_at = target
        deadline = time.monotonic() + WAIT_LIMIT_S
        while self.received < target:
            self.credit.wait(0.5)
            self.credit.clear()
            if time.monotonic() > deadline:
                self.resume_at = NEVER
                raise TimeoutError(f"reader stalled at {self.received} of {sent} items")
        self.resume_at = NEVER


def burst(put: Callable[[object], None], n: int, flow: Flow, should_close: Callable[[], bool]):
    """Put the ints ``0..n-1`` as fast as the bridge takes them, then :data:`END`."""
    window = flow.window
    for start in range(0, n, 1024):
        if should_close():
            return
        for i in range(start, min(start + 1024, n)):
            if window is not None and i - flow.received >= window:
                flow.wait_for_room(i)
            put(i)
    put(END)


def paced(put: Callable[[object], None], n: int, period_ns: int, should_close):
    """Put ``time.perf_counter_ns()`` every ``period_ns`` (the only sleeps: pacing), then END."""
    clock = time.perf_counter_ns
    due = clock()
    for _ in range(n):
        due += period_ns
        while (left := due - clock()) > 0:
            time.sleep(left / 1e9)
        if should_close():
            return
        put(clock())
    put(END)


def count_items(get: Callable[[], object], n: int, done: threading.Event, result: dict):
    """Consumer thread: count the items from blocking ``get()`` until it raises (end of stream).

    When the ``n``-th item arrives it stores ``perf_counter()`` in ``result["t_done"]`` and sets
    ``done``. The exception that ended the stream is returned to the caller to check its type.
    """
    count = 0
    try:
        while True:
            get()
            count += 1
            if count == n:
                result["t_done"] = time.perf_counter()
                done.set()
    finally:
        result["count"] = count


class ProcessFlow(Flow):
    """:class:`Flow` across processes: the counters live in shared memory, the credit is a
    ``multiprocessing`` event. Made in the parent, handed to the child at its start (fork:
    inherited; spawn: pickled with the process's arguments)."""

    __slots__ = ("_received", "_resume_at", "_waits", "every")

    def __init__(self, ctx, window: int | None, every: int = 1) -> None:
        self.window = window
        self.every = every  # the reader publishes its count every this many items
        self._waits = ctx.RawValue("q", 0)
        self._received = ctx.RawValue("q", 0)
        self._resume_at = ctx.RawValue("d", NEVER)
        self.credit = ctx.Event()

    def __getstate__(self):
        return (self.window, self.every, self._waits, self._received, self._resume_at, self.credit)

    def __setstate__(self, state) -> None:
        (self.window, self.every, self._waits, self._received, self._resume_at, self.credit) = state

    @property
    def waits(self) -> int:
        return self._waits.value

    @waits.setter
    def waits(self, value: int) -> None:
        self._waits.value = value

    @property
    def received(self) -> int:
        return self._received.value

    @received.setter
    def received(self, value: int) -> None:
        self._received.value = value

    @property
    def resume_at(self) -> float:
        return self._resume_at.value

    @resume_at.setter
    def resume_at(self, value: float) -> None:
        self._resume_at.value = value


def process_items(put, kind: str, n: int, shape: tuple[int, ...], flow: Flow | None = None):
    """Child process loop: ``n`` ints, or ``n`` uint8 frames of ``shape`` (a fresh, filled
    array each, as a camera gives), as fast as the bridge takes them, within ``flow``'s
    window if it has one; then :data:`END`."""
    window = flow.window if flow is not None else None
    every = flow.every if flow is not None else 1
    if kind == "frames":
        import numpy as np

        def make(i):
            return np.full(shape, i & 0xFF, dtype=np.uint8)
    else:

        def make(i):
            return i

    for i in range(n):
        if window is not None and i % every == 0 and i - flow.received >= window:
            flow.wait_for_room(i)
        put(make(i))
    put(END)


def thread_classes(producer_base: type, consumer_base: type, closed: type) -> SimpleNamespace:
    """Subclasses of one implementation's threaded producer and consumer, seed style.

    ``Burst(n, go, flow)`` puts ``n`` ints as fast as it can once ``go`` is set, then ``END``;
    ``Paced(n, go, period_ns)`` puts ``perf_counter_ns()`` every ``period_ns``, then ``END``;
    ``Counting(n, done)`` counts the items of blocking ``self._get()`` until ``closed`` is raised
    and sets ``done`` at the ``n``-th (``n=0``: an idle consumer); ``Idle`` says it is ready and
    then runs the base class's own ``_producer`` (which produces nothing). Parameters are
    stored before ``super().__init__()``, since RTCBot 0.2.5 starts the thread inside its
    constructor. A worker's exception is kept in ``bench_error`` (the JSON reports it).
    """

    class Burst(producer_base):
        def __init__(self, n: int, go: threading.Event, flow: Flow) -> None:
            self._bench_args = (n, go, flow)
            self.bench_error: str | None = None
            super().__init__()

        def _producer(self) -> None:
            self._setReady(True)
            n, go, flow = self._bench_args
            try:
                if go.wait(WAIT_LIMIT_S):
                    burst(self._put_nowait, n, flow, lambda: self._shouldClose)
            except Exception as exc:
                self.bench_error = repr(exc)
            self._setReady(False)

    class Paced(producer_base):
        def __init__(self, n: int, go: threading.Event, period_ns: int) -> None:
            self._bench_args = (n, go, period_ns)
            self.bench_error: str | None = None
            super().__init__()

        def _producer(self) -> None:
            self._setReady(True)
            n, go, period_ns = self._bench_args
            try:
                if go.wait(WAIT_LIMIT_S):
                    paced(self._put_nowait, n, period_ns, lambda: self._shouldClose)
            except Exception as exc:
                self.bench_error = repr(exc)
            self._setReady(False)

    class Counting(consumer_base):
        def __init__(self, n: int, done: threading.Event) -> None:
            self._bench_args = (n, done)
            self.bench_result: dict = {}
            self.bench_error: str | None = None
            super().__init__()

        def _consumer(self) -> None:
            self._setReady(True)
            n, done = self._bench_args
            try:
                count_items(self._get, n, done, self.bench_result)
            except closed:
                self.bench_result["end"] = closed.__name__
            except Exception as exc:
                self.bench_error = repr(exc)
            self._setReady(False)

    class Idle(producer_base):
        def _producer(self) -> None:
            self._setReady(True)
            super()._producer()

    return SimpleNamespace(Burst=Burst, Paced=Paced, Counting=Counting, Idle=Idle)
