"""Devices: serial ports (Arduino), GPS, local input devices, cameras, displays and sound.

Importing this package is cheap: it imports no hardware library and touches no device. Each
name below is imported from its module on first use (``from rtcbot.devices import GPS``), and
a device imports its library (pyserial, pynmea2, evdev...) only when it is created, raising an
ImportError that names the extra to install when it is missing.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module (relative to this package) that defines it
_EXPORTS = {
    "SerialConnection": ".serial",
    "SerialCodec": ".serial",
    "SerialError": ".serial",
    "GPS": ".gps",
    "InputDevice": ".inputs",
    "Gamepad": ".inputs",
    "Keyboard": ".inputs",
    "Mouse": ".inputs",
    "NoInputDeviceError": ".inputs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rtcbot.devices' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
