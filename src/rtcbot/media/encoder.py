"""Video encoding that rtcbot controls: bitrate range, frame rate, keyframes.

aiortc encodes VP8 at 250 kbit/s-1.5 Mbit/s with a keyframe every 3000 frames (100 s at 30 fps:
one lost keyframe freezes a viewer that long) and rebuilds its encoder, with a keyframe, whenever
the receiver's bitrate estimate moves by 10 %. rtcbot encodes with PyAV itself and hands aiortc
finished packets, which aiortc only splits into RTP packets. The parts:

* :class:`VideoEncoderSettings` -- what a user can set (per outgoing track).
* :class:`KeyframePolicy` and :class:`BitratePolicy` -- the rules, as plain classes that take
  ``now``: a keyframe at least every ``keyframe_interval`` seconds, forced ones (a new viewer,
  a picture-loss request) at once but at most one per ``min_keyframe_gap``; the target bitrate
  follows the receiver's estimate inside [``min_bitrate``, ``max_bitrate``], changed (which
  costs a keyframe) only when it moves by more than 25 % and not more often than every 2 s.
* :class:`VideoEncoder` -- the PyAV encoder itself (synchronous; VP8 or H.264).
* :class:`VideoEncodeStage` -- runs the encoder in its own thread for the event loop. It knows
  nothing of connections: the per-connection aiortc track reads packets from it. This is the
  seam where one encode can later feed several connections.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fractions
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BitratePolicy",
    "EncodedPacket",
    "KeyframePolicy",
    "VideoEncodeStage",
    "VideoEncoder",
    "VideoEncoderSettings",
    "check_codec",
]

_log = logging.getLogger("rtcbot.media.encoder")

#: RTP video clock: timestamps of packets are in 1/90000 s.
VIDEO_CLOCK = 90000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)
CODECS = ("VP8", "H264")


def check_codec(codec: str) -> str:
    """``codec`` in upper case if rtcbot can encode it (``"VP8"``, ``"H264"``); ``ValueError``
    naming it otherwise."""
    name = str(codec).upper()
    if name not in CODECS:
        raise ValueError(f"cannot encode video codec {codec!r}; rtcbot encodes {CODECS}")
    return name


@dataclass
class VideoEncoderSettings:
    """Settings of one outgoing video track (all optional).

    * ``codec`` -- ``"VP8"`` (default) or ``"H264"``: offered first when this side makes the
      offer. The encoder always follows the codec that the two peers actually negotiated.
    * ``max_bitrate`` -- bits per second when the network allows; None: from the resolution
      and frame rate (about 0.1 bit per pixel: 920 kbit/s at 640x480, 2.8 Mbit/s at 1280x720,
      at 30 fps), capped at 8 Mbit/s.
    * ``min_bitrate`` -- the floor when the receiver reports congestion (default 150 kbit/s).
    * ``adapt_bitrate`` -- follow the receiver's bandwidth estimate (REMB) between the two
      (default True); False keeps ``max_bitrate``.
    * ``max_framerate`` -- frames per second at most; frames that come sooner are skipped
      (default 30).
    * ``keyframe_interval`` -- seconds between keyframes at most (default 2.0): a viewer that lost
      a keyframe recovers within this time even if its loss report is lost too.
    * ``min_keyframe_gap`` -- forced keyframes (new viewer, picture loss) at most once per this
      many seconds (default 0.5); a request inside the gap is served when it ends.
    * ``cpu_used`` -- VP8 speed (-16..16, higher is faster and worse; default -6 as aiortc);
      ``preset`` -- x264 preset for H.264 (default ``"ultrafast"``); ``threads`` -- encoder
      threads (default 1); ``extra_options`` -- more FFmpeg encoder options.
    """

    codec: str = "VP8"
    max_bitrate: int | None = None
    min_bitrate: int = 150_000
    adapt_bitrate: bool = True
    max_framerate: float = 30.0
    keyframe_interval: float = 2.0
    min_keyframe_gap: float = 0.5
    cpu_used: int = -6
    preset: str = "ultrafast"
    threads: int | None = None
    extra_options: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        codec = str(self.codec).upper().replace(".", "")
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}, got {self.codec!r}")
        self.codec = codec
        if self.max_bitrate is not None and (
            not isinstance(self.max_bitrate, int) or self.max_bitrate < 10_000
        ):
            raise ValueError(
                f"max_bitrate must be an int of at least 10000 bits/s or None, got "
                f"{self.max_bitrate!r}"
            )
        if not isinstance(self.min_bitrate, int) or self.min_bitrate < 10_000:
            raise ValueError(
                f"min_bitrate must be an int of at least 10000 bits/s, got {self.min_bitrate!r}"
            )
        if self.max_bitrate is not None and self.min_bitrate > self.max_bitrate:
            raise ValueError(
                f"min_bitrate {self.min_bitrate} is above max_bitrate {self.max_bitrate}"
            )
        for name in ("max_framerate", "keyframe_interval"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not isinstance(self.min_keyframe_gap, (int, float)) or self.min_keyframe_gap < 0:
            raise ValueError(
                f"min_keyframe_gap must be a number >= 0, got {self.min_keyframe_gap!r}"
            )

    def bitrate_for(self, width: int, height: int) -> int:
        """The maximum bitrate for frames of this size (``max_bitrate`` or the automatic one)."""
        if self.max_bitrate is not None:
            return self.max_bitrate
        fps = min(self.max_framerate, 30.0)
        auto = int(width * height * fps * 0.1)
        return max(self.min_bitrate, min(auto, 8_000_000))


class KeyframePolicy:
    """When the next frame must be a keyframe (plain: give it ``now``, seconds).

    Periodic: one at least every ``interval`` seconds. Forced: :meth:`request` (a new viewer, a
    picture-loss indication) is served by the next frame, unless a keyframe went out less than
    ``min_gap`` ago: then by the first frame after the gap (requests are never dropped, and
    many requests inside one gap cost one keyframe).
    """

    def __init__(self, interval: float = 2.0, min_gap: float = 0.5) -> None:
        self.interval = interval
        self.min_gap = min_gap
        self._last: float | None = None
        self._pending = False
        self._urgent = False
        self.requests = 0
        self.forced = 0

    def request(self, urgent: bool = False) -> None:
        """Ask for a keyframe as soon as the rate limit allows; ``urgent`` (a new viewer, who
        sees nothing until a keyframe comes) asks for it on the next frame, whatever the
        rate limit."""
        self.requests += 1
        self._pending = True
        if urgent:
            self._urgent = True

    @property
    def pending(self) -> bool:
        """True while a request waits to be served."""
        return self._pending

    def should_force(self, now: float) -> bool:
        """True if the frame about to be encoded at ``now`` must be a keyframe."""
        last = self._last
        if last is None:
            return True
        if now - last >= self.interval or self._urgent:
            return True
        return self._pending and now - last >= self.min_gap

    def sent(self, now: float, forced: bool) -> None:
        """Record that a keyframe went out at ``now`` (``forced``: because we asked)."""
        if forced and self._pending:
            self.forced += 1
        self._last = now
        self._pending = False
        self._urgent = False


class BitratePolicy:
    """The encoder's target bitrate (plain: give it ``now``, seconds).

    Starts at ``maximum``. :meth:`estimate` feeds the receiver's estimate: the target follows it,
    clamped to [``minimum``, ``maximum``], but only moves when the clamped estimate differs from
    the current target by more than ``hysteresis`` (a fraction) and ``min_interval`` seconds
    have passed since the last move -- each move rebuilds the encoder, which costs a keyframe.

    The target goes down only when the estimate is below what is actually being sent
    (``actual``): a receiver's estimate grows with the rate it receives, so an encoder that
    sends less than its target (a still picture) would otherwise be talked down step by step to
    the minimum although the network has room.
    """

    def __init__(
        self,
        minimum: int,
        maximum: int,
        hysteresis: float = 0.25,
        min_interval: float = 2.0,
    ) -> None:
        self.minimum = minimum
        self.maximum = max(minimum, maximum)
        self.target = self.maximum
        self.hysteresis = hysteresis
        self.min_interval = min_interval
        self._changed: float | None = None
        self.changes = 0

    def set_range(self, minimum: int, maximum: int) -> None:
        """New limits (the frame size changed); the target starts again at ``maximum``."""
        self.minimum = minimum
        self.maximum = max(minimum, maximum)
        self.target = self.maximum

    def estimate(self, bitrate: float, now: float, actual: float | None = None) -> bool:
        """Feed an estimate (bits/s) and the rate actually sent lately (bits/s, None if not
        known yet); True if the target changed."""
        wanted = int(max(self.minimum, min(self.maximum, bitrate)))
        if wanted < self.target and (actual is None or bitrate >= 0.9 * actual):
            return False
        if abs(wanted - self.target) <= self.hysteresis * self.target:
            return False
        if self._changed is not None and now - self._changed < self.min_interval:
            return False
        self.target = wanted
        self._changed = now
        self.changes += 1
        return True


@dataclass(frozen=True)
class EncodedPacket:
    """One encoded frame: the PyAV packet (``pts`` in 1/90000 s, ``time_base`` set), whether it
    is a keyframe, its size in bytes, the source frame's media time (seconds from the stream's
    first frame) and, when known, its capture time (seconds, :func:`time.monotonic` clock)."""

    packet: Any
    keyframe: bool
    size: int
    time: float
    captured: float | None = None


class VideoEncoder:
    """A PyAV VP8 or H.264 encoder with rtcbot's settings. Synchronous and not thread-safe:
    use it from one thread (:class:`VideoEncodeStage` does).

    The codec context is (re)built at the first frame, when the frame size, the codec or the
    target bitrate changes (PyAV cannot change a running encoder's bitrate).
    """

    def __init__(self, settings: VideoEncoderSettings | None = None, codec: str | None = None):
        self.settings = settings if settings is not None else VideoEncoderSettings()
        self.codec_name = (codec or self.settings.codec).upper()
        if self.codec_name not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
        self._context: Any = None
        self._size: tuple[int, int] | None = None
        self._bitrate: int | None = None
        self.rebuilds = 0

    def _build(self, width: int, height: int, bitrate: int) -> None:
        import av

        settings = self.settings
        if self.codec_name == "VP8":
            context = av.CodecContext.create("libvpx", "w")
            options = {
                "deadline": "realtime",
                "cpu-used": str(settings.cpu_used),
                "lag-in-frames": "0",
                "auto-alt-ref": "0",
                "error-resilient": "1",
                "static-thresh": "1",
                "undershoot-pct": "100",
                "overshoot-pct": "15",
                "partitions": "0",
                "minrate": str(bitrate),
                "maxrate": str(bitrate),
                "bufsize": str(bitrate),
            }
            context.qmin = 2
            context.qmax = 56
        else:
            context = av.CodecContext.create("libx264", "w")
            options = {
                "preset": settings.preset,
                "tune": "zerolatency",
                "profile": "baseline",
                "level": "31",
                "maxrate": str(bitrate),
                "bufsize": str(bitrate),
                "x264-params": "repeat-headers=1:sliced-threads=0:aud=0",
            }
        options.update(settings.extra_options)
        context.width = width
        context.height = height
        context.pix_fmt = "yuv420p"
        context.bit_rate = bitrate
        context.time_base = VIDEO_TIME_BASE
        context.framerate = fractions.Fraction(round(settings.max_framerate * 1000), 1000)
        # Keyframes are decided by time (KeyframePolicy), not by a frame count.
        context.gop_size = 100_000
        # One thread: on small machines (a Raspberry Pi, 2 cores shared with decoding and
        # networking) more encoder threads cost 2-3x the CPU per frame for little speed.
        context.thread_count = settings.threads or 1
        context.options = options
        self._context = context
        self._size = (width, height)
        self._bitrate = bitrate
        self.rebuilds += 1

    def encode(self, frame: Any, pts: int, keyframe: bool, bitrate: int) -> list[Any]:
        """Encode one ``yuv420p`` PyAV ``VideoFrame`` at ``pts`` (1/90000 s) and return its
        packets (``pts``/``time_base`` set). ``keyframe`` forces a keyframe; ``bitrate`` is the
        target (a change rebuilds the encoder, so its first frame is a keyframe)."""
        import av

        size = (frame.width, frame.height)
        if self._context is None or size != self._size or bitrate != self._bitrate:
            if self._context is not None:
                self._flush()
            self._build(frame.width, frame.height, bitrate)
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        frame.pict_type = (
            av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        )
        packets = self._context.encode(frame)
        for packet in packets:
            packet.time_base = VIDEO_TIME_BASE
            if packet.pts is None:
                packet.pts = pts
        return packets

    def _flush(self) -> None:
        try:
            self._context.encode(None)
        except Exception:  # pragma: no cover - flushing a dying encoder
            pass
        self._context = None


class VideoEncodeStage:
    """Runs one :class:`VideoEncoder` in its own worker thread (encoding never runs on the event
    loop) and applies the keyframe and bitrate policies.

    One stage encodes one source. It does not know about connections: per-connection tracks call
    :meth:`encode`, :meth:`request_keyframe` and :meth:`estimate_bitrate`. Use from the event loop's
    thread; :meth:`close` releases the thread (without waiting).
    """

    def __init__(self, settings: VideoEncoderSettings | None = None) -> None:
        self.settings = settings if settings is not None else VideoEncoderSettings()
        self.codec = self.settings.codec
        self._encoder: VideoEncoder | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.keyframes = KeyframePolicy(
            self.settings.keyframe_interval, self.settings.min_keyframe_gap
        )
        self.bitrate = BitratePolicy(self.settings.min_bitrate, self.settings.bitrate_for(640, 480))
        self._size: tuple[int, int] | None = None
        self._closed = False
        # The policies are used by the loop (requests, estimates) and the worker (decisions).
        self._lock = threading.Lock()
        # statistics
        self.frames_encoded = 0
        self.keyframes_sent = 0
        self.bytes_encoded = 0
        self.encode_seconds = 0.0
        #: Bits per second actually produced, over the last second or so (None at first).
        self.actual_bitrate: float | None = None
        self._window: tuple[float, int] | None = None

    def set_codec(self, codec: str) -> None:
        """Encode ``codec`` (the negotiated one) from the next frame on."""
        self.codec = check_codec(codec)

    def request_keyframe(self, urgent: bool = False) -> None:
        """A viewer needs a keyframe: it lost a picture (served within the rate limit), or it
        just joined (``urgent``: served by the next frame)."""
        with self._lock:
            self.keyframes.request(urgent)

    def estimate_bitrate(self, bitrate: float) -> None:
        """The receiver's bandwidth estimate (bits/s) arrived."""
        if self.settings.adapt_bitrate:
            with self._lock:
                changed = self.bitrate.estimate(bitrate, time.monotonic(), self.actual_bitrate)
            if changed:
                _log.debug("target bitrate now %d bit/s", self.bitrate.target)

    @property
    def target_bitrate(self) -> int:
        """The bitrate the encoder aims at now (bits/s)."""
        return self.bitrate.target

    async def encode(
        self, image: Any, media_time: float, captured: float | None = None
    ) -> list[EncodedPacket]:
        """Convert and encode one frame (a checked BGR array or ``av.VideoFrame``) in the worker
        thread; ``media_time`` (seconds) becomes its timestamp, ``captured`` (monotonic
        seconds) travels with its packets. Returns its packets (usually one). Cancelling the
        await abandons the frame (the encoder stays consistent)."""
        if self._closed:
            raise RuntimeError("VideoEncodeStage is closed")
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="rtcbot-video-encode"
            )
        loop = asyncio.get_running_loop()
        pts = round(media_time * VIDEO_CLOCK)
        return await loop.run_in_executor(
            self._executor, self._encode_sync, image, pts, media_time, captured
        )

    def _encode_sync(
        self, image: Any, pts: int, media_time: float, captured: float | None = None
    ) -> list[EncodedPacket]:
        from .video import to_video_frame

        started = time.perf_counter()
        frame = to_video_frame(image)
        size = (frame.width, frame.height)
        now = time.monotonic()
        with self._lock:
            if size != self._size:
                self._size = size
                self.bitrate.set_range(self.settings.min_bitrate, self.settings.bitrate_for(*size))
            force = self.keyframes.should_force(now)
            target = self.bitrate.target
        encoder = self._encoder
        if encoder is None or encoder.codec_name != self.codec:
            encoder = self._encoder = VideoEncoder(self.settings, self.codec)
        packets = encoder.encode(frame, pts, force, target)
        out = []
        for packet in packets:
            keyframe = bool(packet.is_keyframe)
            if keyframe:
                with self._lock:
                    self.keyframes.sent(now, force)
                self.keyframes_sent += 1
            size_bytes = packet.size
            self.bytes_encoded += size_bytes
            out.append(EncodedPacket(packet, keyframe, size_bytes, media_time, captured))
        self.frames_encoded += 1
        self.encode_seconds += time.perf_counter() - started
        window = self._window
        if window is None:
            self._window = (now, self.bytes_encoded)
        elif now - window[0] >= 1.0:
            self.actual_bitrate = (self.bytes_encoded - window[1]) * 8.0 / (now - window[0])
            self._window = (now, self.bytes_encoded)
        return out

    def close(self) -> None:
        """Release the worker thread (returns at once; a frame being encoded finishes)."""
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
