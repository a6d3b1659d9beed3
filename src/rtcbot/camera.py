"""RTCBot 0.2.5's ``rtcbot.camera`` module: cameras and the OpenCV display.

The code lives in :mod:`rtcbot.devices.camera` and :mod:`rtcbot.devices.display`; this module
keeps RTCBot's import path (``from rtcbot.camera import CVCamera``) working. Importing it loads
no camera library (OpenCV is imported when a camera or display is created).
"""

from .devices.camera import CVCamera, PiCamera, PiCamera2
from .devices.display import CVDisplay
from .devices.sources import TestPattern, VideoFile, frame_info

__all__ = [
    "CVCamera",
    "CVDisplay",
    "PiCamera",
    "PiCamera2",
    "TestPattern",
    "VideoFile",
    "frame_info",
]
