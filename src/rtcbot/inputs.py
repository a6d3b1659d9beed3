"""RTCBot 0.2.5's import path for local input devices: ``from rtcbot.inputs import Gamepad``.
The code lives in :mod:`rtcbot.devices.inputs`."""

from .devices.inputs import (
    Gamepad,
    InputDevice,
    Keyboard,
    Mouse,
    NoInputDeviceError,
    defaultFilter,
)

__all__ = ["Gamepad", "InputDevice", "Keyboard", "Mouse", "NoInputDeviceError", "defaultFilter"]
