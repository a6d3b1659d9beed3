"""RTCBot 0.2.5's import path for the serial connection: ``from rtcbot.arduino import
SerialConnection``. The code lives in :mod:`rtcbot.devices.serial`."""

from .devices.serial import SerialCodec, SerialConnection, SerialError

__all__ = ["SerialCodec", "SerialConnection", "SerialError"]
