"""Media building blocks below the connection: frame and audio conversion, pacing, the video
encoder rtcbot controls (bitrate, frame rate, keyframes), one encode shared by many viewers
(:mod:`rtcbot.media.fanout`) and the low-latency jitter buffer.

Needs numpy and PyAV (``av``), which are imported lazily; nothing here touches an event loop at
import or construction, and nothing here knows about connections.
"""

from __future__ import annotations

from .audio import AudioClock, audio_frame_to_float, check_audio, to_int16_samples
from .encoder import (
    BitratePolicy,
    EncodedPacket,
    KeyframePolicy,
    VideoEncoder,
    VideoEncoderSettings,
    VideoEncodeStage,
)
from .fanout import (
    EncodedVideoSubscription,
    SharedVideoEncoder,
    encoder_sharing_enabled,
    set_encoder_sharing,
    shared_encoders,
)
from .jitterbuffer import MarkerJitterBuffer
from .video import (
    FramePacer,
    TimestampedFrame,
    capture_time,
    check_bgr_frame,
    timestamped,
    to_bgr_array,
    to_video_frame,
)

__all__ = [
    "AudioClock",
    "BitratePolicy",
    "EncodedPacket",
    "EncodedVideoSubscription",
    "FramePacer",
    "KeyframePolicy",
    "MarkerJitterBuffer",
    "SharedVideoEncoder",
    "TimestampedFrame",
    "VideoEncodeStage",
    "VideoEncoder",
    "VideoEncoderSettings",
    "audio_frame_to_float",
    "capture_time",
    "check_audio",
    "check_bgr_frame",
    "encoder_sharing_enabled",
    "set_encoder_sharing",
    "shared_encoders",
    "timestamped",
    "to_bgr_array",
    "to_int16_samples",
    "to_video_frame",
]
