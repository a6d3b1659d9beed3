"""One encode, many viewers: a video source encoded once feeds every connection that shows it.

Each viewer of an RTCBot 0.2.5 (or plain aiortc) robot costs a full video encode. rtcbot encodes a
source once and hands the same encoded frames to every viewer; a viewer then costs only the
packetizing and sending. The parts:

* :class:`SharedVideoEncoder` -- a producer of encoded frames (:class:`~rtcbot.media.encoder.
  EncodedPacket`): it reads BGR frames from a source, paces them, encodes each once (PyAV, in its
  own thread) and delivers the packets to each of its subscribers.
* :class:`EncodedVideoSubscription` -- one viewer's buffer, with the policy encoded video needs:
  a viewer starts on a keyframe (delta frames before it are held back); a viewer whose backlog
  grows past ``maxsize`` frames (it stopped reading) loses its backlog, waits for the next
  keyframe and asks for one -- the others are not slowed down and lose nothing.
* :func:`shared_video_encoder` -- the registry that makes sharing automatic: the same source
  (the same producer object, or subscriptions of the same producer), the same codec and the same
  settings give the same encoder. :func:`set_encoder_sharing` turns sharing off for the whole
  program; connections and tracks have their own switch (``conn.video.share_encoder``).

Keyframes: a new viewer gets one on the next frame (within one frame interval). A picture-loss
request from one viewer forces a keyframe for all, so such requests are rate-limited: at most one
per ``settings.min_keyframe_gap`` seconds, and at least :data:`SHARED_MIN_KEYFRAME_GAP` seconds
apart while several viewers share the encoder (one viewer on a lossy link cannot flood the
others with keyframes, which cost bitrate and quality).

Bitrate: with ``settings.adapt_bitrate`` (the default) the shared encoder follows the *lowest*
bandwidth estimate of its viewers (within ``min_bitrate``..``max_bitrate``, with the hysteresis of
:class:`~rtcbot.media.encoder.BitratePolicy`), so every viewer can keep up; with
``adapt_bitrate=False`` it encodes at ``max_bitrate`` whatever the viewers report.

Nothing here knows about aiortc or connections; the connection's per-viewer track reads an
:class:`EncodedVideoSubscription`.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from typing import Any

from ..base.base import BaseSubscriptionProducer
from ..base.errors import SubscriptionClosed
from ..base.subscriptions import BaseSubscription, MostRecentSubscription, QueueSubscription
from .encoder import EncodedPacket, VideoEncoderSettings, VideoEncodeStage
from .video import FramePacer, capture_time, check_bgr_frame

__all__ = [
    "LIVE_BACKLOG",
    "ORDERED_BACKLOG",
    "SHARED_MIN_KEYFRAME_GAP",
    "EncodedVideoSubscription",
    "SharedVideoEncoder",
    "encoder_sharing_enabled",
    "producer_of",
    "set_encoder_sharing",
    "shared_encoders",
    "shared_video_encoder",
]

_log = logging.getLogger("rtcbot.media.fanout")

#: Frames a live viewer may fall behind (0.5 s at 30 fps) before its backlog is dropped.
LIVE_BACKLOG = 15
#: The same for a stream that must not skip frames (``canSkip=False``).
ORDERED_BACKLOG = 300
#: Forced keyframes for picture loss are at least this many seconds apart while several
#: viewers share an encoder.
SHARED_MIN_KEYFRAME_GAP = 1.0


# ===================================================================== one viewer's buffer


class EncodedVideoSubscription(BaseSubscription[EncodedPacket]):
    """One viewer's buffer of encoded frames (:class:`~rtcbot.media.encoder.EncodedPacket`).

    Policy: first in, first out. Delta frames that come before the first keyframe are held back
    (a decoder cannot start on them), counted in ``held_back``. When ``maxsize`` frames are
    already waiting (the viewer stopped reading), the whole backlog is dropped (counted in
    ``statistics().dropped``), the viewer waits for the next keyframe and ``on_resync()`` is
    called (the encoder then forces a keyframe, within its rate limit); ``resyncs`` counts this.
    A keyframe arriving on a full buffer replaces the backlog at once.
    """

    def __init__(self, maxsize: int = LIVE_BACKLOG, on_resync: Any = None) -> None:
        super().__init__()
        if not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be a positive int, got {maxsize!r}")
        self.maxsize = maxsize
        self.on_resync = on_resync
        self._items: collections.deque[EncodedPacket] = collections.deque()
        self.waiting_keyframe = True
        self.held_back = 0
        self.resyncs = 0

    def _buffered(self) -> int:
        return len(self._items)

    def put_nowait(self, packet: EncodedPacket) -> None:
        """Queue one encoded frame (see the class docstring for the policy). Raises
        :class:`~rtcbot.SubscriptionClosed` once closed."""
        if self._closed:
            raise SubscriptionClosed("EncodedVideoSubscription is closed")
        items = self._items
        if self.waiting_keyframe:
            if not packet.keyframe:
                self.held_back += 1
                return
            self.waiting_keyframe = False
        if len(items) >= self.maxsize:
            self._dropped += len(items)
            items.clear()
            if not packet.keyframe:
                self._dropped += 1
                self.waiting_keyframe = True
                self.resyncs += 1
                if self.on_resync is not None:
                    self.on_resync()
                return
        items.append(packet)
        if len(items) > self._peak:
            self._peak = len(items)
        self._waiters.wake_one()

    def get_nowait(self) -> EncodedPacket:
        """The oldest waiting frame; ``asyncio.QueueEmpty`` if none, and
        :class:`~rtcbot.SubscriptionClosed` once closed and empty."""
        if self._items:
            self._delivered += 1
            return self._items.popleft()
        if self._closed:
            raise SubscriptionClosed("EncodedVideoSubscription is closed")
        raise asyncio.QueueEmpty


# ===================================================================== the shared encoder


class SharedVideoEncoder(BaseSubscriptionProducer):
    """Encodes the frames of one source once and delivers the packets to every subscriber.

    ``source`` is anything with ``async get()`` returning BGR ``uint8`` frames ``(height, width,
    3)`` (or ``av.VideoFrame``). Subscribers receive :class:`~rtcbot.media.encoder.EncodedPacket`
    objects (PyAV packets with ``pts`` in 1/90000 s); ``subscribe()`` with no argument gives an
    :class:`EncodedVideoSubscription`, whose policy suits a viewer. Every new subscriber makes
    the next frame a keyframe.

    The encoder runs while it has subscribers: it starts reading the source at the first one
    and stops at the last (``close_when_unused=True``: it then closes; the registry's encoders
    do). It closes when the source ends (its subscribers get
    :class:`~rtcbot.SubscriptionClosed`).

    * ``settings`` -- :class:`~rtcbot.media.VideoEncoderSettings`; ``codec`` overrides its codec
      (the one the viewers negotiated).
    * ``fps`` -- frame rate cap (default: ``settings.max_framerate``); ``can_skip`` -- skip
      frames to stay live (True) or send every frame in order (False).
    """

    def __init__(
        self,
        source: Any,
        settings: VideoEncoderSettings | None = None,
        *,
        codec: str | None = None,
        fps: float | None = None,
        can_skip: bool = True,
        close_when_unused: bool = False,
        logger: logging.Logger | None = None,
    ) -> None:
        self.can_skip = bool(can_skip)
        super().__init__(
            defaultSubscriptionClass=self._new_viewer_buffer, logger=logger or _log
        )
        if not callable(getattr(source, "get", None)):
            raise TypeError(f"source needs an async get() method, got {source!r}")
        if settings is None:
            settings = VideoEncoderSettings()
        elif not isinstance(settings, VideoEncoderSettings):
            raise TypeError(f"settings must be a VideoEncoderSettings, got {settings!r}")
        self.settings = settings
        limit = settings.max_framerate if fps is None else min(float(fps), settings.max_framerate)
        self.fps = limit
        self._source = source
        self._pacer = FramePacer(limit, can_skip=self.can_skip)
        self._stage = VideoEncodeStage(settings)
        if codec is not None:
            self._stage.set_codec(codec)
        self._close_when_unused = close_when_unused
        self._producer: BaseSubscriptionProducer | None = None
        self._pump: asyncio.Task[None] | None = None
        self._estimates: dict[int, float] = {}
        self.frames_invalid = 0
        self.size: tuple[int, int] | None = None
        self.source_ended = False
        self.viewers_total = 0

    def _new_viewer_buffer(self) -> EncodedVideoSubscription:
        return EncodedVideoSubscription(
            LIVE_BACKLOG if self.can_skip else ORDERED_BACKLOG, self.request_keyframe
        )

    # ------------------------------------------------------------------ viewers

    @property
    def codec(self) -> str:
        """The codec encoded: ``"VP8"`` or ``"H264"``."""
        return self._stage.codec

    @property
    def viewers(self) -> int:
        """How many subscribers (viewers) it feeds now."""
        return len(self._fanout)

    def subscribe(self, subscription: Any = None) -> Any:
        """Add a viewer (see the class docstring); the next frame is a keyframe for it. With no
        argument, returns a new :class:`EncodedVideoSubscription`; one given without
        ``on_resync`` asks this encoder for keyframes when it resyncs."""
        known = len(self._fanout)
        subscription = super().subscribe(subscription)
        if isinstance(subscription, EncodedVideoSubscription) and subscription.on_resync is None:
            subscription.on_resync = self.request_keyframe
        if not self._shouldClose and len(self._fanout) > known:
            self.viewers_total += 1
            self._update_gap()
            self._stage.request_keyframe(urgent=True)
            if self._pump is None:
                self._pump = self._spawn(self._run(), name="rtcbot shared video encoder")
        return subscription

    def unsubscribe(self, subscription: Any = None) -> None:
        """Remove a viewer; without viewers the encoder stops reading its source (and closes
        if it was made with ``close_when_unused``)."""
        super().unsubscribe(subscription)
        self._estimates.pop(id(subscription), None)
        self._update_gap()
        if not self._fanout:
            if self._close_when_unused:
                self.close()
            else:
                pump, self._pump = self._pump, None
                if pump is not None:
                    pump.cancel()

    def _update_gap(self) -> None:
        gap = self.settings.min_keyframe_gap
        if len(self._fanout) > 1:
            gap = max(gap, SHARED_MIN_KEYFRAME_GAP)
        self._stage.keyframes.min_gap = gap

    def request_keyframe(self) -> None:
        """A viewer lost a picture: force a keyframe, within the rate limit (see the module
        docstring)."""
        self._stage.request_keyframe()

    def estimate_bitrate(self, viewer: Any, bitrate: float) -> None:
        """``viewer``'s bandwidth estimate (bits/s) arrived; the encoder follows the lowest
        estimate of its current viewers (when ``settings.adapt_bitrate``)."""
        if id(viewer) not in self._targets:
            return
        self._estimates[id(viewer)] = float(bitrate)
        self._stage.estimate_bitrate(min(self._estimates.values()))

    # ------------------------------------------------------------------ encoding

    async def _run(self) -> None:
        source = self._source
        pacer = self._pacer
        stage = self._stage
        while True:
            try:
                frame = await source.get()
            except SubscriptionClosed:
                break
            try:
                check_bgr_frame(frame)
            except (TypeError, ValueError) as exc:
                self.frames_invalid += 1
                if self.frames_invalid in (1, 10, 100) or self.frames_invalid % 1000 == 0:
                    self._log.error(
                        "video frame not sent (%d so far): %s", self.frames_invalid, exc
                    )
                continue
            now = time.monotonic()
            captured = capture_time(frame)
            decision = pacer.decide(now, captured)
            if not decision.send:
                continue
            if decision.wait > 0:
                await asyncio.sleep(decision.wait)
            packets = await stage.encode(
                frame, decision.time, captured if captured is not None else now
            )
            shape = getattr(frame, "shape", None)
            self.size = (shape[1], shape[0]) if shape is not None else (frame.width, frame.height)
            for packet in packets:
                self._put_nowait(packet)
        self.source_ended = True
        self._pump = None
        self.close()

    def statistics(self) -> dict[str, Any]:
        """Numbers about the encoder: ``codec``, ``size``, ``viewers`` (now), ``viewers_total``
        (ever), ``frames_encoded``, ``keyframes``, ``forced_keyframes``, ``keyframe_requests``,
        ``target_bitrate`` (bits/s), ``encode_ms_avg``, ``frames_skipped`` (by the frame-rate
        cap), ``frames_invalid``."""
        stage = self._stage
        return {
            "codec": stage.codec,
            "size": self.size,
            "viewers": self.viewers,
            "viewers_total": self.viewers_total,
            "frames_encoded": stage.frames_encoded,
            "keyframes": stage.keyframes_sent,
            "forced_keyframes": stage.keyframes.forced,
            "keyframe_requests": stage.keyframes.requests,
            "target_bitrate": stage.target_bitrate,
            "encode_ms_avg": (
                stage.encode_seconds * 1000.0 / stage.frames_encoded
                if stage.frames_encoded
                else None
            ),
            "frames_skipped": self._pacer.skipped,
            "frames_invalid": self.frames_invalid,
        }

    def close(self) -> None:
        """Stop encoding: the worker thread is released and every viewer's subscription ends
        (readers get :class:`~rtcbot.SubscriptionClosed`)."""
        if self._closedFlag:
            return
        super().close()
        self._stage.close()
        release = getattr(self._source, "_rtcbot_release", None)
        if release is not None:
            release()


# ===================================================================== sharing automatically

_sharing = True
_registry: dict[tuple[Any, ...], SharedVideoEncoder] = {}


def set_encoder_sharing(enabled: bool) -> None:
    """Turn automatic encoder sharing on (the default) or off for the whole program. Off, every
    connection encodes its video itself (as RTCBot 0.2.5 and aiortc do). Encoders already
    shared stay shared until their viewers leave."""
    global _sharing
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True or False, got {enabled!r}")
    _sharing = enabled


def encoder_sharing_enabled() -> bool:
    """Whether connections share encoders automatically (see :func:`set_encoder_sharing`)."""
    return _sharing


def producer_of(source: Any) -> BaseSubscriptionProducer | None:
    """The rtcbot producer whose frames ``source`` carries: ``source`` itself if it is a
    producer (a camera, a received video track), the producer that a subscription was made
    by (``camera.subscribe()``), or None (anything else: a plain queue, an object of your own
    with ``get()``; such sources are not shared)."""
    if isinstance(source, BaseSubscriptionProducer):
        return source
    if isinstance(source, BaseSubscription):
        return source.producer
    return None


def settings_key(settings: VideoEncoderSettings) -> tuple[Any, ...]:
    """A hashable key of ``settings``: equal settings share an encoder."""
    values = dataclasses.asdict(settings)
    values["extra_options"] = tuple(sorted(settings.extra_options.items()))
    return tuple(sorted(values.items()))


class _ProducerInput:
    """What a registry encoder reads: its own subscription of the producer (the newest frame
    only when frames may be skipped), released when the encoder closes."""

    def __init__(self, producer: BaseSubscriptionProducer, can_skip: bool) -> None:
        self._producer = producer
        self._subscription = producer.subscribe(
            MostRecentSubscription() if can_skip else QueueSubscription(ORDERED_BACKLOG)
        )

    async def get(self) -> Any:
        return await self._subscription.get()

    def _rtcbot_release(self) -> None:
        try:
            self._producer.unsubscribe(self._subscription)
        except KeyError:
            pass
        self._subscription.close()


def shared_video_encoder(
    source: Any,
    settings: VideoEncoderSettings,
    *,
    codec: str,
    fps: float | None = None,
    can_skip: bool = True,
) -> SharedVideoEncoder | None:
    """The encoder shared by every viewer of ``source`` with this codec, settings, frame-rate
    cap and skipping rule (made at the first call; it closes when its last viewer leaves).
    None if ``source`` cannot be shared (see :func:`producer_of`). Call on the event loop."""
    producer = producer_of(source)
    if producer is None or producer.closed:
        return None
    loop = asyncio.get_running_loop()
    key = (id(loop), id(producer), codec.upper(), settings_key(settings), fps, bool(can_skip))
    encoder = _registry.get(key)
    if encoder is not None and not encoder.closed:
        return encoder
    encoder = SharedVideoEncoder(
        _ProducerInput(producer, can_skip),
        settings,
        codec=codec,
        fps=fps,
        can_skip=can_skip,
        close_when_unused=True,
    )
    encoder._producer = producer
    _registry[key] = encoder

    def forget() -> None:
        if _registry.get(key) is encoder:
            del _registry[key]

    encoder.onClose(forget)
    return encoder


def shared_encoders() -> list[SharedVideoEncoder]:
    """The encoders shared right now (for statistics and tests)."""
    return [e for e in _registry.values() if not e.closed]

