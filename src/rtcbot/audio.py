"""RTCBot 0.2.5's ``rtcbot.audio`` module: microphone and speaker.

The code lives in :mod:`rtcbot.devices.audio`; this module keeps RTCBot's import path
(``from rtcbot.audio import Microphone``) working. Importing it loads no sound library
(sounddevice is imported when a microphone or speaker is created).
"""

from .devices.audio import Microphone, Speaker, Tone

__all__ = ["Microphone", "Speaker", "Tone"]
