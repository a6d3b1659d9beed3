"""The benchmark's subclasses of the RTCBot bridge classes.

Imported by the ``--impl rtcbot`` run (this checkout's rtcbot) and by the ``--impl rtcbot025``
run (the original RTCBot 0.2.5, in its own venv) alike: it uses only public names that the two
share (``rtcbot.base.ThreadedSubscriptionProducer`` & co., ``_producer``/``_consumer``,
``_put_nowait``/``_get``, ``_setReady``, ``_shouldClose``, ``SubscriptionClosed``).

The process class is defined at module level so that the ``spawn`` start method can import it in
the child. Parameters are stored before ``super().__init__()``, since RTCBot 0.2.5 starts its
thread (or process) inside the constructor.
"""

from __future__ import annotations

import time

from _workloads import WAIT_LIMIT_S, process_items, thread_classes
from rtcbot.base import (
    ProcessSubscriptionProducer,
    SubscriptionClosed,
    ThreadedSubscriptionConsumer,
    ThreadedSubscriptionProducer,
)

__all__ = ["CLASSES", "ItemsProcessProducer", "SubscriptionClosed"]

CLASSES = thread_classes(
    ThreadedSubscriptionProducer, ThreadedSubscriptionConsumer, SubscriptionClosed
)


class ItemsProcessProducer(ProcessSubscriptionProducer):
    """Child process: ``n`` ints or frames as fast as the bridge takes them, then it stays
    (seed style, ``while not self._shouldClose``) until the parent closes it: RTCBot 0.2.5's
    parent stops reading as soon as its child ends, and would lose the last items."""

    def __init__(self, kind: str, n: int, shape: tuple[int, ...], flow, **kwargs) -> None:
        self._bench_args = (kind, n, shape, flow)
        super().__init__(**kwargs)

    def _producer(self) -> None:
        self._setReady(True)
        kind, n, shape, flow = self._bench_args
        process_items(self._put_nowait, kind, n, shape, flow)
        # Parked until closed; outside the timed span (which ends at the last item's arrival).
        closing = getattr(self, "_closing", None)  # rtcbot: an interruptible sleep
        if closing is not None:
            closing.wait(WAIT_LIMIT_S)
            return
        deadline = time.monotonic() + WAIT_LIMIT_S  # RTCBot 0.2.5: poll its close flag
        while not self._shouldClose and time.monotonic() < deadline:
            time.sleep(0.01)
