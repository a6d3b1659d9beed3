"""WebRTC connections: :class:`RTCConnection`, its data channels and its media handlers.

This is the only part of rtcbot that uses aiortc.
"""

from ._connection import (
    ConnectionLost,
    InvalidDescription,
    PeerVanished,
    RTCConnection,
    SessionGone,
    SignalingError,
    close_all,
    make_configuration,
    validate_description,
)
from ._datachannel import DataChannel, DataChannelStatistics
from ._heartbeat import HeartbeatStatistics
from ._media import (
    AudioReceiver,
    AudioSender,
    ConnectionAudioHandler,
    ConnectionVideoHandler,
    MediaError,
    VideoReceiver,
    VideoSender,
)
from ._resume import ResumeStatistics

__all__ = [
    "AudioReceiver",
    "AudioSender",
    "ConnectionAudioHandler",
    "ConnectionLost",
    "ConnectionVideoHandler",
    "DataChannel",
    "DataChannelStatistics",
    "HeartbeatStatistics",
    "InvalidDescription",
    "MediaError",
    "PeerVanished",
    "RTCConnection",
    "ResumeStatistics",
    "SessionGone",
    "SignalingError",
    "VideoReceiver",
    "VideoSender",
    "close_all",
    "make_configuration",
    "validate_description",
]
