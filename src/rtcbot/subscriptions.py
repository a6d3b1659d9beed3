"""The subscription classes of RTCBot 0.2.5 (and rtcbot's bounded :class:`QueueSubscription`).

The implementation lives in :mod:`rtcbot.base.subscriptions`; this module keeps RTCBot's import
path ``from rtcbot.subscriptions import MostRecentSubscription``.
"""

from .base.subscriptions import (
    BaseSubscription,
    CallbackSubscription,
    DelayedSubscription,
    EventSubscription,
    GetterSubscription,
    MostRecentSubscription,
    QueueSubscription,
    RebatchSubscription,
    SubscriptionStatistics,
)

__all__ = [
    "BaseSubscription",
    "CallbackSubscription",
    "DelayedSubscription",
    "EventSubscription",
    "GetterSubscription",
    "MostRecentSubscription",
    "QueueSubscription",
    "RebatchSubscription",
    "SubscriptionStatistics",
]
