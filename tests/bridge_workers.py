"""Worker classes for the bridge tests. They live in an importable module (not a test file)
because the process bridges' ``spawn`` children import the class by module and name."""

from __future__ import annotations

import os
import threading

import numpy as np

from rtcbot.base import (
    ProcessSubscriptionConsumer,
    ProcessSubscriptionProducer,
    ProcessSubscriptionProducerConsumer,
    SubscriptionClosed,
    ThreadedSubscriptionConsumer,
    ThreadedSubscriptionProducer,
)


class CountingProducer(ThreadedSubscriptionProducer):
    """Puts 0..n-1, then waits for close (or returns at once if ``then_end``)."""

    def __init__(self, n: int, then_end: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.n = n
        self.then_end = then_end

    def _producer(self):
        self._setReady(True)
        for i in range(self.n):
            self._put_nowait(i)
        if not self.then_end:
            self._closing.wait()
        self._setReady(False)


class GatedProducer(ThreadedSubscriptionProducer):
    """Blocks its worker on a gate that only the test opens (ignores close meanwhile)."""

    def __init__(self, **kwargs):
        self.gate = threading.Event()
        self.entered = threading.Event()
        super().__init__(**kwargs)

    def _producer(self):
        self.entered.set()
        self.gate.wait(30)


class FailingProducer(ThreadedSubscriptionProducer):
    def _producer(self):
        raise ValueError("sensor unplugged")


class RecordingConsumer(ThreadedSubscriptionConsumer):
    """Appends what it reads to ``items``; sets ``got[n]`` events."""

    def __init__(self, **kwargs):
        self.items: list = []
        self.changed = threading.Condition()
        self.ended_by: list = []
        super().__init__(**kwargs)

    def _consumer(self):
        self._setReady(True)
        while not self._shouldClose:
            try:
                item = self._get()
            except SubscriptionClosed as exc:
                self.ended_by.append(str(exc))
                break
            with self.changed:
                self.items.append(item)
                self.changed.notify_all()
        self._setReady(False)

    def wait_for(self, n: int, timeout: float = 5) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.items) >= n, timeout)


class FailingConsumer(ThreadedSubscriptionConsumer):
    def _consumer(self):
        self._get()
        raise RuntimeError("motor driver fault")


# ----------------------------------------------------------------- process workers


class ProcCounter(ProcessSubscriptionProducer):
    def __init__(self, n: int, then_end: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.n = n
        self.then_end = then_end

    def _producer(self):
        self._setReady(True)
        for i in range(self.n):
            self._put_nowait(i)
        if not self.then_end:
            self._closing.wait()


class ProcFrames(ProcessSubscriptionProducer):
    def __init__(self, n: int, **kwargs):
        super().__init__(**kwargs)
        self.n = n

    def _producer(self):
        self._setReady(True)
        for i in range(self.n):
            frame = np.zeros((480, 640, 3), dtype=np.uint8)
            frame[:, :, 0] = i % 256
            self._put_nowait(frame)
        self._closing.wait()


class ProcPid(ProcessSubscriptionProducer):
    def _producer(self):
        self._put_nowait(os.getpid())
        self._setReady(True)
        self._closing.wait()


class ProcFailing(ProcessSubscriptionProducer):
    def _producer(self):
        raise KeyError("no such joystick")


class ProcUnpicklableError(ProcessSubscriptionProducer):
    def _producer(self):
        class Local(Exception):
            pass

        raise Local("cannot be pickled")


class ProcStubborn(ProcessSubscriptionProducer):
    """Ignores close: must be terminated."""

    def _producer(self):
        self._setReady(True)
        threading.Event().wait(60)


class ProcDoubler(ProcessSubscriptionProducerConsumer):
    def _producerConsumer(self):
        self._setReady(True)
        while True:
            try:
                x = self._get()
            except SubscriptionClosed:
                return
            self._put_nowait(x * 2)


class ProcSink(ProcessSubscriptionConsumer):
    """Reads until closed; reports what it read through a pipe end given by the test."""

    def __init__(self, report, **kwargs):
        super().__init__(**kwargs)
        self.report = report

    def _consumer(self):
        self._setReady(True)
        while True:
            try:
                x = self._get()
            except SubscriptionClosed:
                self.report.send(("closed", None))
                return
            self.report.send(("item", x))


class ProcIdleSink(ProcessSubscriptionConsumer):
    def _consumer(self):
        self._setReady(True)
        try:
            while True:
                self._get()
        except SubscriptionClosed:
            pass


class ProcFailingSink(ProcessSubscriptionConsumer):
    def _consumer(self):
        self._setReady(True)
        self._get()
        raise ZeroDivisionError("bad setpoint")


class ProcFlood(ProcessSubscriptionProducer):
    """Puts far more than its backlog before the parent can read, then ends."""

    def _producer(self):
        for i in range(5000):
            self._put_nowait(i)
