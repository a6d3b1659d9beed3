"""rtcbot: remote-controlled robots over WebRTC.

Stream a robot's cameras and microphones to a browser or to another Python program, and receive
control messages back, with low latency. Compatible with the API of RTCBot 0.2.5.

``import rtcbot`` is cheap: each name below is imported on first use, so a program that only
uses :mod:`rtcbot.base` never loads aiortc, and no hardware library is imported until the device
that needs it is created.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.3.0.dev0"

# name -> module that defines it
_EXPORTS = {
    "SubscriptionClosed": "rtcbot.base.errors",
    "SubscriptionFull": "rtcbot.base.errors",
    "RTCBotError": "rtcbot.base.errors",
    "DeviceError": "rtcbot.base.errors",
    "BaseSubscription": "rtcbot.base.subscriptions",
    "QueueSubscription": "rtcbot.base.subscriptions",
    "MostRecentSubscription": "rtcbot.base.subscriptions",
    "EventSubscription": "rtcbot.base.subscriptions",
    "GetterSubscription": "rtcbot.base.subscriptions",
    "CallbackSubscription": "rtcbot.base.subscriptions",
    "DelayedSubscription": "rtcbot.base.subscriptions",
    "RebatchSubscription": "rtcbot.base.subscriptions",
    "SubscriptionStatistics": "rtcbot.base.subscriptions",
    "RTCConnection": "rtcbot.connection",
    "DataChannel": "rtcbot.connection",
    "VideoEncoderSettings": "rtcbot.media",
    "set_encoder_sharing": "rtcbot.media",
    "Recorder": "rtcbot.media.recording",
    "Recording": "rtcbot.media.recording",
    "Websocket": "rtcbot.websocket",
    "WebsocketError": "rtcbot.websocket",
    "load_ice_config": "rtcbot.ice",
    "getRTCBotJS": "rtcbot.javascript",
    "getRTCBotJSModule": "rtcbot.javascript",
    "CVCamera": "rtcbot.camera",
    "PiCamera": "rtcbot.camera",
    "PiCamera2": "rtcbot.camera",
    "CVDisplay": "rtcbot.camera",
    "Microphone": "rtcbot.audio",
    "Speaker": "rtcbot.audio",
    "Gamepad": "rtcbot.inputs",
    "Mouse": "rtcbot.inputs",
    "Keyboard": "rtcbot.inputs",
    "SerialConnection": "rtcbot.arduino",
    "GPS": "rtcbot.devices.gps",
    "SerialError": "rtcbot.arduino",
    "NoInputDeviceError": "rtcbot.inputs",
    "TestPattern": "rtcbot.devices.sources",
    "VideoFile": "rtcbot.devices.sources",
    "FrameInfo": "rtcbot.devices.sources",
    "frame_info": "rtcbot.devices.sources",
    "Tone": "rtcbot.devices.audio",
    "FrameRecorder": "rtcbot.devices.display",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rtcbot' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
