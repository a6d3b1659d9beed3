"""The public surface: RTCBot 0.2.5's names are where its users import them from, and importing
rtcbot loads no hardware library and touches no device."""

from __future__ import annotations

import subprocess
import sys

import rtcbot
import rtcbot.base
import rtcbot.subscriptions

RTCBOT_TOP_LEVEL = [
    "SubscriptionClosed", "RTCConnection", "Websocket", "CVCamera", "PiCamera", "PiCamera2",
    "CVDisplay", "Microphone", "Speaker", "Gamepad", "Mouse", "Keyboard", "SerialConnection",
    "getRTCBotJS", "GPS", "EventSubscription", "MostRecentSubscription", "GetterSubscription",
    "CallbackSubscription", "DelayedSubscription", "RebatchSubscription",
]

RTCBOT_BASE = [
    "BaseSubscriptionConsumer", "BaseSubscriptionProducer", "SubscriptionConsumer",
    "SubscriptionProducer", "SubscriptionProducerConsumer", "SubscriptionClosed",
    "NoClosedSubscription", "ThreadedSubscriptionConsumer", "ThreadedSubscriptionProducer",
    "ProcessSubscriptionProducer", "ProcessSubscriptionConsumer",
    "ProcessSubscriptionProducerConsumer",
]


def test_rtcbot_names_are_declared():
    assert set(RTCBOT_TOP_LEVEL) <= set(rtcbot.__all__)
    assert set(RTCBOT_BASE) <= set(rtcbot.base.__all__)
    for name in RTCBOT_BASE:
        assert getattr(rtcbot.base, name)
    for name in ["EventSubscription", "MostRecentSubscription", "GetterSubscription",
                 "CallbackSubscription", "DelayedSubscription", "RebatchSubscription"]:
        assert getattr(rtcbot.subscriptions, name) is getattr(rtcbot, name)


def test_no_leaked_module_names():
    # RTCBot 0.2.5 leaked asyncio, np, partial, logging, deque through `import *`
    namespace: dict = {}
    exec("from rtcbot.subscriptions import *", namespace)
    assert not {"asyncio", "np", "partial", "logging", "deque"} & set(namespace)


def test_unknown_name_is_an_attribute_error():
    try:
        rtcbot.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_rtcbot_is_cheap():
    code = (
        "import sys, rtcbot, rtcbot.base, rtcbot.subscriptions\n"
        "heavy = ['cv2', 'sounddevice', 'soundcard', 'serial', 'evdev', 'inputs', 'pynmea2',\n"
        "         'picamera', 'picamera2', 'aiortc', 'av', 'aiohttp']\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "[]"


def test_every_exported_name_resolves():
    for name in rtcbot.__all__:
        assert getattr(rtcbot, name) is not None, name
