"""rtcbot's foundation: events, producers and consumers, subscriptions, and the bridges that
move data between the event loop and threads or child processes.

Needs only the standard library and numpy; knows nothing of WebRTC or devices.
"""

from .base import (
    BaseSubscriptionConsumer,
    BaseSubscriptionProducer,
    SubscriptionConsumer,
    SubscriptionProducer,
    SubscriptionProducerConsumer,
)
from .errors import RTCBotError, SubscriptionClosed, SubscriptionFull, WorkerError
from .events import baseEventHandler, threadedEventHandler
from .multiprocess import (
    ProcessSubscriptionConsumer,
    ProcessSubscriptionProducer,
    ProcessSubscriptionProducerConsumer,
)
from .subscriptions import NoClosedSubscription
from .thread import ThreadedSubscriptionConsumer, ThreadedSubscriptionProducer

__all__ = [
    "BaseSubscriptionConsumer",
    "BaseSubscriptionProducer",
    "NoClosedSubscription",
    "ProcessSubscriptionConsumer",
    "ProcessSubscriptionProducer",
    "ProcessSubscriptionProducerConsumer",
    "RTCBotError",
    "SubscriptionClosed",
    "SubscriptionConsumer",
    "SubscriptionFull",
    "SubscriptionProducer",
    "SubscriptionProducerConsumer",
    "ThreadedSubscriptionConsumer",
    "ThreadedSubscriptionProducer",
    "WorkerError",
    "baseEventHandler",
    "threadedEventHandler",
]
