"""Video and audio over an :class:`~rtcbot.RTCConnection`: ``conn.video`` and ``conn.audio``.

Sending (``put_nowait`` / ``putSubscription``): BGR ``uint8`` frames of shape
``(height, width, 3)``; audio as numpy arrays ``(samples,)`` or ``(samples, channels)``, float
in [-1, 1] or int16, mono or stereo. Receiving (``subscribe`` / ``get``): C-contiguous BGR
``uint8`` frames (video keeps only the newest frame per reader) and ``float32`` 48 kHz
``(samples, channels)`` audio (a bounded backlog per reader; the oldest is dropped).

The outgoing video path is split in two so that one encode can later feed several connections:
:class:`VideoSender` owns the frame pacing and a :class:`~rtcbot.media.VideoEncodeStage` (PyAV,
in its own thread), and :class:`EncodedVideoTrack` is the per-connection aiortc track that hands
the encoded packets to aiortc (which then only packetizes them), holds back delta frames until a
new viewer's first keyframe, and forwards the viewer's keyframe requests and bandwidth estimates
to the stage.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack, RTCRtpSender
from aiortc.mediastreams import MediaStreamError

from ..base.base import (
    BaseSubscriptionConsumer,
    BaseSubscriptionProducer,
    SubscriptionProducer,
    SubscriptionProducerConsumer,
)
from ..base.errors import RTCBotError, SubscriptionClosed
from ..base.subscriptions import BaseSubscription, MostRecentSubscription, QueueSubscription
from ..media.audio import AudioClock, audio_frame_to_float, to_int16_samples
from ..media.encoder import VideoEncoderSettings, check_codec
from ..media.fanout import (
    EncodedVideoSubscription,
    SharedVideoEncoder,
    encoder_sharing_enabled,
    shared_video_encoder,
)
from ..media.jitterbuffer import MarkerJitterBuffer
from ..media.video import (
    capture_time,
    check_bgr_frame,
    timestamped,
    to_bgr_array,
)
from ._media_hooks import (
    hook_sender_feedback,
    install_jitter_buffer,
    installed_jitter_buffer,
    negotiated_codec,
    prefer_codec_in_answer,
    remote_stream_id,
    set_stream_id,
)

__all__ = [
    "AudioReceiver",
    "AudioSender",
    "ConnectionAudioHandler",
    "ConnectionVideoHandler",
    "EncodedVideoTrack",
    "MediaError",
    "VideoReceiver",
    "VideoSender",
]

_log = logging.getLogger("rtcbot.connection.media")

#: Received audio frames kept per reader before the oldest is dropped (20 ms each: 2 s).
AUDIO_BACKLOG = 100
#: Audio given to ``put_nowait`` that waited longer than this (seconds) before it could be sent
#: is dropped when skipping is allowed, so a backlog never turns into permanent delay.
AUDIO_MAX_AGE = 0.5
#: What a track name may be: it becomes the WebRTC stream id (an SDP token, 64 chars at most).
_NAME = re.compile(r"[A-Za-z0-9_.\-!#$%&'*+^`|~]{1,64}")


class MediaError(RTCBotError):
    """A media track cannot work (for example the peers negotiated a codec rtcbot cannot
    encode)."""


def _audio_queue() -> QueueSubscription:
    return QueueSubscription(AUDIO_BACKLOG, overflow="drop_oldest")


class _Rate:
    """Bits per second of a growing byte counter, between two reads."""

    def __init__(self) -> None:
        self._last = (time.monotonic(), 0)

    def update(self, total_bytes: int, now: float) -> float:
        last = self._last
        self._last = (now, total_bytes)
        if now <= last[0]:
            return 0.0
        return (total_bytes - last[1]) * 8.0 / (now - last[0])


def _subscription_drops(producer: BaseSubscriptionProducer) -> int:
    """Elements the producer's subscribers lost to their buffer policy (slow readers)."""
    dropped = 0
    for target in producer._fanout:
        sub = target.subscription
        if isinstance(sub, BaseSubscription):
            dropped += sub.statistics().dropped
    return dropped


async def _rtp_stats(rtp_object: Any) -> dict[str, Any]:
    """Packet counters from an aiortc sender's or receiver's getStats()."""
    out: dict[str, Any] = {}
    if rtp_object is None:
        return out
    try:
        report = await rtp_object.getStats()
    except Exception as exc:  # the transport is closing
        _log.debug("getStats failed: %r", exc)
        return out
    for stat in report.values():
        kind = getattr(stat, "type", None)
        if kind == "outbound-rtp":
            out["packets_sent"] = stat.packetsSent
            out["bytes_sent"] = stat.bytesSent
        elif kind == "remote-inbound-rtp":
            out["packets_lost"] = stat.packetsLost
            if stat.roundTripTime is not None:
                out["rtt_ms"] = stat.roundTripTime * 1000.0
        elif kind == "inbound-rtp":
            out["packets_received"] = stat.packetsReceived
            out["packets_lost"] = stat.packetsLost
            out["jitter"] = stat.jitter
    return out


# ====================================================================================== video


class EncodedVideoTrack(MediaStreamTrack):
    """The aiortc track of one :class:`VideoSender` on one connection: one viewer.

    ``recv()`` returns ``av.Packet`` objects already encoded by a
    :class:`~rtcbot.media.SharedVideoEncoder` (the sender's own, or one shared with the other
    connections that show the same source); aiortc's RTP sender packetizes them for the
    negotiated codec without encoding again. The track reads its own
    :class:`~rtcbot.media.EncodedVideoSubscription`: it starts on a keyframe (asked for when it
    starts), and if it falls behind (its connection stopped sending) it skips to the next
    keyframe without slowing the other viewers. Keyframe requests (PLI/FIR) and bandwidth
    estimates (REMB) of its viewer go to the encoder.
    """

    kind = "video"

    def __init__(self, sender: VideoSender) -> None:
        super().__init__()
        self._sender = sender
        self._encoder: SharedVideoEncoder | None = None
        self._tap: EncodedVideoSubscription | None = None
        self._codec: str | None = None
        self._started = False
        self.transceiver: Any = None
        # statistics
        self.frames_sent = 0
        self.bytes_sent = 0
        self.keyframe_requests = 0
        self.bitrate_estimate: int | None = None
        self.encoder_switches = 0
        self._old_held_back = 0
        self._old_dropped = 0
        self._old_resyncs = 0

    def _attach(self, transceiver: Any) -> None:
        """Called when the track is added to a peer connection."""
        self.transceiver = transceiver
        hook_sender_feedback(transceiver.sender, self._on_keyframe_request, self._on_estimate)

    def _on_keyframe_request(self) -> None:
        self.keyframe_requests += 1
        encoder = self._encoder
        if encoder is not None:
            encoder.request_keyframe()

    def _on_estimate(self, bitrate: int) -> None:
        self.bitrate_estimate = bitrate
        encoder, tap = self._encoder, self._tap
        if encoder is not None and tap is not None:
            encoder.estimate_bitrate(tap, bitrate)

    def _start(self) -> None:
        self._started = True
        sender = self._sender
        codec = negotiated_codec(self.transceiver) if self.transceiver is not None else None
        if codec is not None:
            try:
                check_codec(codec)
            except ValueError as exc:
                error = MediaError(f"video track: {exc}")
                sender._setError(error)
                raise MediaStreamError(str(error)) from exc
            if codec.upper() != sender.settings.codec:
                _log.info(
                    "video track: the peer negotiated %s (settings ask for %s): encoding %s",
                    codec,
                    sender.settings.codec,
                    codec,
                )
        self._codec = (codec or sender.settings.codec).upper()
        self._connect()
        sender._setReady(True)

    # ------------------------------------------------------------------ which encoder

    @property
    def held_back(self) -> int:
        """Delta frames not sent because this viewer waited for a keyframe."""
        tap = self._tap
        return self._old_held_back + (tap.held_back if tap is not None else 0)

    @property
    def frames_dropped(self) -> int:
        """Encoded frames this viewer lost because it fell behind (the others did not)."""
        tap = self._tap
        return self._old_dropped + (tap.statistics().dropped if tap is not None else 0)

    def _connect(self) -> None:
        """Read from the encoder the sender uses now (a new viewer of it: it sends a keyframe)."""
        if self._codec is None:
            return  # not started: _start connects
        encoder = self._sender._encoderFor(self._codec)
        tap = self._tap
        if encoder is self._encoder and tap is not None and not tap.closed:
            return
        self._disconnect()
        tap = encoder._new_viewer_buffer()
        encoder.subscribe(tap)
        self._encoder, self._tap = encoder, tap
        self.encoder_switches += 1

    def _disconnect(self) -> None:
        encoder, tap = self._encoder, self._tap
        self._encoder = self._tap = None
        if tap is None:
            return
        self._old_held_back += tap.held_back
        self._old_dropped += tap.statistics().dropped
        self._old_resyncs += tap.resyncs
        if encoder is not None and not encoder.closed:
            try:
                encoder.unsubscribe(tap)
            except KeyError:
                pass
        tap.close()

    async def recv(self) -> Any:
        """The next encoded frame (an ``av.Packet``, pts in 1/90000 s). Raises aiortc's
        ``MediaStreamError`` once the sender is closed (the track ends)."""
        if self.readyState != "live":
            raise MediaStreamError
        if not self._started:
            self._start()
        while True:
            tap = self._tap
            if tap is None:
                self.stop()
                raise MediaStreamError
            try:
                packet = await tap.get()
                break
            except SubscriptionClosed:
                if tap is not self._tap:
                    continue  # moved to another encoder meanwhile
                self._encoderEnded()
        self.frames_sent += 1
        self.bytes_sent += packet.size
        return packet.packet

    def _encoderEnded(self) -> None:
        sender = self._sender
        encoder = self._encoder
        if sender._shouldClose or self.readyState != "live":
            self.stop()
            raise MediaStreamError
        if encoder is not None and encoder.error is not None:
            error = MediaError(f"video encoder failed: {encoder.error!r}")
            error.__cause__ = encoder.error
            sender._setError(error)
            self.stop()
            raise MediaStreamError(str(error))
        if encoder is not None and encoder.source_ended and sender._shareSource is not None:
            # The shared source ended: go on with the sender's own input (put_nowait data).
            sender._shareSource = None
        self._disconnect()
        self._connect()

    def stop(self) -> None:
        """End the track (aiortc calls this when its sender stops)."""
        self._disconnect()
        super().stop()


class _ConsumerInput:
    """What an encoder reads from a consumer (a sender, or a handler for its default sender):
    the consumer's input -- its ``put_nowait`` data or its ``putSubscription`` source. A source
    that ends does not end it; closing the consumer does."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer

    async def get(self) -> Any:
        consumer = self._consumer
        while True:
            try:
                return await consumer._get()
            except SubscriptionClosed:
                if consumer._shouldClose:
                    raise


def _check_name(name: Any) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"a track name must be 1 to 64 letters, digits or -_.!#$%&'*+^`|~ (it becomes the "
            f"WebRTC stream id), got {name!r}"
        )
    return name


class VideoSender(BaseSubscriptionConsumer):
    """One outgoing video track: a consumer of BGR frames (``put_nowait`` /
    ``putSubscription``).

    * ``fps`` -- most frames per second to send (None: the settings' ``max_framerate``).
    * ``canSkip`` -- True (default, live video): only the newest frame waits to be sent and
      frames that come too soon are skipped, so the stream never lags its source. False: every
      frame is sent, in order (a bounded queue of 300 frames; ``put_nowait`` raises
      :class:`~rtcbot.SubscriptionFull` when it is full), paced at ``fps`` if given.
    * ``settings`` -- :class:`~rtcbot.media.VideoEncoderSettings` (bitrate range, frame rate,
      keyframe interval, codec).
    * ``name`` -- the track's name, seen by the peer (the browser's ``conn.video.names``, a
      Python peer's ``receiver.name``); None: unnamed.
    * ``share`` -- share the encoder with the other connections that show the same source (see
      ``docs/guides/many-viewers.md``): None (default) follows
      :func:`rtcbot.media.set_encoder_sharing`, True or False decide for this track.

    Frame timestamps come from the frame's capture time when it has one
    (:func:`rtcbot.media.timestamped`), else from when it was put. ``videoStreamTrack`` is the
    aiortc track (it returns encoded packets). Ready once the connection starts pulling frames.
    """

    def __init__(
        self,
        fps: float | None = None,
        canSkip: bool = True,
        settings: VideoEncoderSettings | None = None,
        name: str | None = None,
        share: bool | None = None,
    ) -> None:
        if settings is None:
            settings = VideoEncoderSettings()
        elif not isinstance(settings, VideoEncoderSettings):
            raise TypeError(f"settings must be a VideoEncoderSettings, got {settings!r}")
        if fps is not None and (not isinstance(fps, (int, float)) or not fps > 0):
            raise ValueError(f"fps must be a positive number or None, got {fps!r}")
        if share is not None and not isinstance(share, bool):
            raise TypeError(f"share must be None, True or False, got {share!r}")
        buffer = (
            MostRecentSubscription
            if canSkip
            else functools.partial(QueueSubscription, 300, overflow="raise")
        )
        super().__init__(directPutSubscriptionType=buffer, logger=_log)
        self.settings = settings
        self.canSkip = bool(canSkip)
        self.fps = None if fps is None else float(fps)
        self.name = _check_name(name)
        self.share = share
        self._shareSource: Any = None
        self._private: SharedVideoEncoder | None = None
        self._drainTask: asyncio.Task[None] | None = None
        self.videoStreamTrack = EncodedVideoTrack(self)
        self._rate = _Rate()

    def put_nowait(self, frame: Any) -> None:
        """Queue a frame: a numpy ``uint8`` array ``(height, width, 3)`` in BGR order, or an
        ``av.VideoFrame``. Raises ``TypeError``/``ValueError`` naming a frame that cannot be
        sent (nothing else is affected)."""
        super().put_nowait(_stamp_frame(frame))
        if self._shareSource is not None:
            self._setShareSource(None)

    def putSubscription(self, subscription: Any) -> None:
        """Send what ``subscription`` produces (a camera, ``camera.subscribe()``...). When
        other connections show the same source, its encoder is shared (see ``share``)."""
        super().putSubscription(subscription)
        self._setShareSource(subscription)

    def stopSubscription(self) -> None:
        """Stop reading the current source; send ``put_nowait`` frames from now on."""
        super().stopSubscription()
        self._setShareSource(None)

    # ------------------------------------------------------------------ which encoder

    @property
    def sharing(self) -> bool:
        """Whether this track may share its encoder (``share``, else the global switch)."""
        return encoder_sharing_enabled() if self.share is None else self.share

    def _setShareSource(self, source: Any) -> None:
        """The source whose encoder this track may share (None: encode the sender's input)."""
        self._shareSource = source
        self._stopDrain()
        track = self.videoStreamTrack
        if track._started and track.readyState == "live" and not self._shouldClose:
            track._connect()

    def _encoderFor(self, codec: str) -> SharedVideoEncoder:
        source = self._shareSource
        if source is not None and self.sharing:
            shared = shared_video_encoder(
                source, self.settings, codec=codec, fps=self.fps, can_skip=self.canSkip
            )
            if shared is not None:
                self._startDrain(source)
                return shared
        private = self._private
        if private is None or private.closed:
            private = self._private = SharedVideoEncoder(
                _ConsumerInput(self),
                self.settings,
                codec=codec,
                fps=self.fps,
                can_skip=self.canSkip,
                logger=_log,
            )
        elif private.codec != codec:
            private._stage.set_codec(codec)
        return private

    def _startDrain(self, source: Any) -> None:
        # The shared encoder reads the producer through its own subscription; a subscription
        # the user made for this track (camera.subscribe()) is read and discarded here, so it
        # never fills up. One that keeps only the newest frame cannot fill up: left alone.
        if self._drainTask is not None or isinstance(
            source, (BaseSubscriptionProducer, MostRecentSubscription)
        ):
            return
        if source is self._subscription or (
            isinstance(self._subscription, _ConsumerInput)  # fed by its handler
            and source is self._subscription._consumer._subscription
        ):
            self._drainTask = self._spawn(
                self._drain(), critical=False, name="rtcbot drain video source"
            )

    async def _drain(self) -> None:
        while True:
            try:
                await self._get()
            except SubscriptionClosed:
                if self._shouldClose:
                    return

    def _stopDrain(self) -> None:
        task, self._drainTask = self._drainTask, None
        if task is not None:
            task.cancel()

    # ------------------------------------------------------------------ aiortc side

    def _track(self) -> EncodedVideoTrack:
        return self.videoStreamTrack

    def _renewTrack(self) -> None:
        """A resumed session: the next transport gets a fresh aiortc track (a new viewer of
        the same encoder: it starts on a keyframe); the counters carry over."""
        old = self.videoStreamTrack
        new = EncodedVideoTrack(self)
        new.frames_sent = old.frames_sent
        new.bytes_sent = old.bytes_sent
        new.keyframe_requests = old.keyframe_requests
        new.bitrate_estimate = old.bitrate_estimate
        new.encoder_switches = old.encoder_switches
        new._old_held_back = old.held_back
        new._old_dropped = old.frames_dropped
        new._old_resyncs = old._old_resyncs + (old._tap.resyncs if old._tap is not None else 0)
        self.videoStreamTrack = new
        old.stop()

    def _rtpSender(self) -> Any:
        transceiver = self.videoStreamTrack.transceiver
        return None if transceiver is None else transceiver.sender

    def _statistics(self) -> dict[str, Any]:
        track = self.videoStreamTrack
        encoder = track._encoder or self._private
        numbers = encoder.statistics() if encoder is not None else {}
        replaced = self._directPutSubscription.statistics().dropped
        source = self._subscription
        if isinstance(source, _ConsumerInput):  # the default track: conn.video's own buffer
            replaced += source._consumer._directPutSubscription.statistics().dropped
        pacer = encoder._pacer if encoder is not None else None
        sent = pacer.sent if pacer is not None else 0
        skipped = pacer.skipped if pacer is not None else 0
        encoded = numbers.get("frames_encoded", 0)
        return {
            "codec": numbers.get("codec", track._codec or self.settings.codec),
            "name": self.name,
            "size": numbers.get("size"),
            "shared": encoder is not None and encoder is not self._private,
            "viewers": numbers.get("viewers", 0),
            "frames_offered": sent + skipped + replaced,
            "frames_skipped": skipped + replaced,
            "frames_encoded": encoded,
            "frames_sent": track.frames_sent,
            "frames_invalid": numbers.get("frames_invalid", 0),
            "frames_dropped": track.frames_dropped,
            "held_back": track.held_back,
            "keyframes": numbers.get("keyframes", 0),
            "keyframe_requests": track.keyframe_requests,
            "forced_keyframes": numbers.get("forced_keyframes", 0),
            "target_bitrate": numbers.get("target_bitrate"),
            "bitrate_estimate": track.bitrate_estimate,
            "bitrate": self._rate.update(track.bytes_sent, time.monotonic()),
            "bytes_sent": track.bytes_sent,
            "encode_ms_avg": numbers.get("encode_ms_avg"),
        }

    def close(self) -> None:
        """Stop sending: the track ends (the peer sees its remote track end) and the encoder
        is released (a shared one goes on for its other viewers). The connection stays
        open."""
        if self._closedFlag:
            return
        super().close()
        self._stopDrain()
        self.videoStreamTrack._disconnect()
        if self._private is not None:
            self._private.close()
        _stop_rtp_sender(self)


class _TrackReader:
    """What both receivers share: they read an aiortc remote track, which a resumed session
    replaces with the next transport's (:meth:`_rebind`). When the track ends with its
    transport and the session may resume (``_mayResume``, set by the handler), the reader
    waits for the next track instead of ending."""

    track: Any
    receiver: Any
    _mayResume: Callable[[Any], bool] | None = None
    _trackWaiter: asyncio.Future[None] | None = None

    async def _recvFrame(self) -> Any:
        """The next frame of the current track; raises ``MediaStreamError`` when it ends for
        good. Cancelling it loses nothing."""
        while True:
            track = self.track
            try:
                return await track.recv()
            except MediaStreamError:
                if self.track is not track:
                    continue  # rebound meanwhile
                may_resume = self._mayResume
                if may_resume is None or not may_resume(self):
                    raise
                waiter = asyncio.get_running_loop().create_future()
                self._trackWaiter = waiter
                try:
                    await waiter
                finally:
                    self._trackWaiter = None

    def _rebind(self, track: Any, receiver: Any) -> None:
        """Read ``track`` (of the next transport) from now on."""
        self.track = track
        self.receiver = receiver
        waiter = self._trackWaiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class VideoReceiver(_TrackReader, BaseSubscriptionProducer):
    """One incoming video track: a producer of C-contiguous BGR ``uint8`` frames
    ``(height, width, 3)``; each reader keeps only the newest frame. Ready at the first frame;
    closes (its readers get :class:`~rtcbot.SubscriptionClosed`) when the remote track ends.
    Create it on the event loop (the connection does)."""

    def __init__(self, track: Any) -> None:
        super().__init__(defaultSubscriptionClass=MostRecentSubscription, logger=_log)
        self.track = track
        #: The name the peer gave the track (its stream id), or None if unnamed.
        self.name: str | None = None
        self.frames_received = 0
        self.receiver: Any = None  # the aiortc RTCRtpReceiver, when known
        self._rate = _Rate()
        self.size: tuple[int, int] | None = None
        self._spawn(self._run(), name="rtcbot video receiver")

    async def _run(self) -> None:
        while True:
            try:
                frame = await self._recvFrame()
            except MediaStreamError:
                break
            # a whole-image conversion: off the event loop (a few ms per HD frame on a Pi)
            array = await asyncio.to_thread(to_bgr_array, frame)
            self.frames_received += 1
            if self.frames_received == 1:
                self._setReady(True)
            self.size = (array.shape[1], array.shape[0])
            self._put_nowait(array)
        self._log.info("remote video track %s ended", self.track.id)
        self.close()

    async def _statistics(self) -> dict[str, Any]:
        buffer = installed_jitter_buffer(self.receiver) if self.receiver is not None else None
        out: dict[str, Any] = {
            "size": self.size,
            "frames_received": self.frames_received,
            "frames_dropped": _subscription_drops(self),
            "ended": self.closed,
        }
        if buffer is not None:
            out["bitrate"] = self._rate.update(buffer.bytes, time.monotonic())
            out["frames_released_at_marker"] = buffer.frames_by_marker
            out["stalls_skipped"] = buffer.stalls
        out.update(await _rtp_stats(self.receiver))
        return out

    def close(self) -> None:
        """Stop reading the track (readers get :class:`~rtcbot.SubscriptionClosed`)."""
        if self._closedFlag:
            return
        super().close()


async def _stop_quietly(rtp_sender: Any) -> None:
    try:
        await rtp_sender.stop()
    except Exception as exc:  # the connection is closing too
        _log.debug("stopping an RTP sender: %r", exc)


def _stop_rtp_sender(sender: Any) -> None:
    """Stop the aiortc RTP sender of a closed track, so the peer gets an RTCP BYE and its
    remote track ends (aiortc keeps sending RTCP reports for an ended track otherwise)."""
    rtp_sender = sender._rtpSender()
    if rtp_sender is None:
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop: the peer connection is not running either
    sender._spawn(_stop_quietly(rtp_sender), critical=False, name="rtcbot stop rtp sender")


def _stamp_frame(frame: Any) -> Any:
    """Check a frame at the call site and attach the time it was put if it has none."""
    check_bgr_frame(frame)
    if isinstance(frame, np.ndarray) and capture_time(frame) is None:
        return timestamped(frame)
    return frame


class _MediaHandler(SubscriptionProducerConsumer):
    """What ``conn.video`` and ``conn.audio`` share: senders, receivers, negotiation hooks."""

    kind = "media"

    def __init__(self, connection: Any, buffer: Any) -> None:
        super().__init__(
            directPutSubscriptionType=buffer,
            defaultSubscriptionType=buffer,
            logger=_log,
        )
        self._connection = connection
        self._senders: list[Any] = []
        self._receivers: list[Any] = []
        self._defaultSender: Any = None
        self._defaultReceiver: Any = None
        self._trackSubscriber = SubscriptionProducer(logger=_log)
        self._offerToReceive = 0
        self._negotiated = False
        self._pc: Any = None
        self._warnedNoTrack = False
        self._awaitingTrack: list[Any] = []
        self._addFinisher(self._waitParts)

    async def _waitParts(self) -> None:
        """``await handler``: its senders' and receivers' tasks have ended too."""
        parts = [*self._senders, *self._receivers]
        if parts:
            await asyncio.gather(*(part._waitClosed() for part in parts), return_exceptions=True)

    # ------------------------------------------------------------------ user API: sending

    def _newSender(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _addTrack(self, source: Any, *args: Any, **kwargs: Any) -> Any:
        if self._shouldClose:
            raise SubscriptionClosed(f"conn.{self.kind} is closed")
        if self._negotiated:
            raise RuntimeError(
                f"add {self.kind} tracks before the connection is negotiated (before "
                "getLocalDescription / setRemoteDescription): WebRTC renegotiation is not "
                "supported"
            )
        name = kwargs.get("name")
        if name is not None and any(s.name == name for s in self._senders):
            raise ValueError(
                f"conn.{self.kind} already has a track named {name!r}: names must be unique"
            )
        sender = self._newSender(*args, **kwargs)
        if source is not None:
            sender.putSubscription(source)
        elif self._defaultSender is None:
            sender.putSubscription(_ConsumerInput(self))
        if self._defaultSender is None and source is None:
            self._defaultSender = sender
        self._senders.append(sender)
        return sender

    def _ensureDefaultSender(self) -> None:
        if self._defaultSender is not None:
            return
        if not self._negotiated:
            self._addTrack(None)
        elif not self._warnedNoTrack:
            self._warnedNoTrack = True
            self._log.warning(
                "conn.%s got data after the connection was negotiated without an outgoing %s "
                "track: nothing is sent. Call put_nowait/putSubscription/addTrack before "
                "getLocalDescription.",
                self.kind,
                self.kind,
            )

    def putSubscription(self, subscription: Any) -> None:
        """Send what ``subscription`` (anything with ``async get()``: a camera, a microphone,
        ``producer.subscribe()``) produces, on the default outgoing track (created by the first
        call; do this before the connection is negotiated)."""
        super().putSubscription(subscription)
        self._ensureDefaultSender()

    # ------------------------------------------------------------------ user API: receiving

    def subscribe(self, subscription: Any = None) -> Any:
        """Receive the first incoming track's data (see the class docstring for the format).
        Also asks the peer for one incoming track when we make the offer."""
        self.offerToReceive()
        return super().subscribe(subscription)

    def onTrack(self, callback: Any = None) -> Any:
        """Subscribe to incoming tracks: ``callback`` (or the returned subscription) gets one
        receiver per remote track (a :class:`VideoReceiver` / :class:`AudioReceiver`, itself a
        producer). Also asks for at least one incoming track when we make the offer."""
        self.offerToReceive()
        return self._trackSubscriber.subscribe(callback)

    def offerToReceive(self, num: int = 1) -> None:
        """Ask for (at least) ``num`` incoming tracks of this kind when we make the offer."""
        if not isinstance(num, int) or num < 0:
            raise ValueError(f"offerToReceive needs a count >= 0, got {num!r}")
        self._offerToReceive = max(self._offerToReceive, num)

    # ------------------------------------------------------------------ connection hooks

    def _prepareTransceiver(self, sender: Any, transceiver: Any, offerer: bool) -> None:
        """Kind-specific setup of a sending transceiver (codec preferences, hooks)."""

    def _addTransceivers(self, pc: Any, offerer: bool) -> None:
        """Add our outgoing tracks to ``pc`` (and recvonly slots when offering). Called once by
        the connection, before createOffer or createAnswer."""
        self._pc = pc
        self._negotiated = True
        for sender in self._senders:
            track = sender._track()
            if offerer:
                transceiver = pc.addTransceiver(track, direction="sendrecv")
            else:
                rtp_sender = pc.addTrack(track)
                transceiver = next(
                    (t for t in pc.getTransceivers() if t.sender is rtp_sender), None
                )
                if transceiver is None or transceiver.mid is None:
                    self._log.warning(
                        "the peer's offer has no %s slot left for an outgoing track: it is "
                        "not sent (the offering side must ask to receive it)",
                        self.kind,
                    )
                    continue
            self._prepareTransceiver(sender, transceiver, offerer)
            if sender.name is not None:
                set_stream_id(transceiver.sender, sender.name)
        if offerer:
            for _ in range(self._offerToReceive - len(self._senders)):
                pc.addTransceiver(self.kind, direction="recvonly")
        self._prepareReceivers(pc)

    def _prepareReceivers(self, pc: Any) -> None:
        """Kind-specific setup of the receivers (video installs its jitter buffer)."""

    def _onConnected(self, pc: Any) -> None:
        self._pc = pc
        self._prepareReceivers(pc)

    def _newReceiver(self, track: Any) -> Any:
        raise NotImplementedError

    def _releaseTransport(self) -> None:
        """The connection dropped its transport and will bring up another (a resumed
        session): senders get fresh aiortc tracks for it, and the receivers wait for the
        tracks of the next transport, which arrive in the same order."""
        self._pc = None
        for sender in self._senders:
            if not sender.closed:
                sender._renewTrack()
        self._awaitingTrack = [r for r in self._receivers if not r.closed]

    def _receiverMayResume(self, receiver: Any) -> bool:
        may_resume = getattr(self._connection, "_trackMayResume", None)
        return bool(may_resume is not None and not self._shouldClose and may_resume(receiver))

    def _onRemoteTrack(self, track: Any) -> None:
        """A remote track of our kind arrived (called by the connection)."""
        if self._shouldClose:
            return
        pc = getattr(self._connection, "_pc", None) or self._pc
        while self._awaitingTrack:  # a resumed session: the same receiver reads on
            receiver = self._awaitingTrack.pop(0)
            if receiver.closed:
                continue
            rtp = None if pc is None else next(
                (r for r in pc.getReceivers() if r.track is track), None
            )
            receiver._rebind(track, rtp)
            return
        receiver = self._newReceiver(track)
        receiver._mayResume = self._receiverMayResume
        if self._pc is not None:
            receiver.receiver = next((r for r in self._pc.getReceivers() if r.track is track), None)
        self._receivers.append(receiver)
        receiver.onClose(functools.partial(self._receiverClosed, receiver))
        if self._defaultReceiver is None:
            self._useDefault(receiver)
        # aiortc announces remote tracks before it stores the remote description that names
        # them: hand the receiver to onTrack subscribers once it is stored (the same call of
        # setRemoteDescription, without waiting for anything else).
        asyncio.get_running_loop().call_soon(self._announceReceiver, receiver)

    def _announceReceiver(self, receiver: Any) -> None:
        pc = getattr(self._connection, "_pc", None) or self._pc
        if pc is not None:
            if receiver.receiver is None:
                receiver.receiver = next(
                    (r for r in pc.getReceivers() if r.track is receiver.track), None
                )
            receiver.name = remote_stream_id(pc, receiver.track)
        if not self._shouldClose:
            self._trackSubscriber._put_nowait(receiver)

    def _useDefault(self, receiver: Any) -> None:
        self._defaultReceiver = receiver
        receiver.subscribe(self._put_nowait)

    def _receiverClosed(self, receiver: Any) -> None:
        # One remote track ending never closes the handler or the connection (RTCBot 0.2.5
        # closed both); the default stream moves on to another live track if there is one.
        if receiver is self._defaultReceiver and not self._shouldClose:
            self._defaultReceiver = None
            for other in self._receivers:
                if other is not receiver and not other.closed:
                    self._useDefault(other)
                    break

    async def _stats(self, pc: Any) -> dict[str, Any]:
        """``{"senders": [...], "receivers": [...]}``: one dict of numbers per track."""
        for receiver in self._receivers:
            if receiver.receiver is None and pc is not None:
                receiver.receiver = next(
                    (r for r in pc.getReceivers() if r.track is receiver.track), None
                )
        senders = []
        for sender in self._senders:
            numbers = sender._statistics()
            numbers.update(await _rtp_stats(sender._rtpSender()))
            senders.append(numbers)
        receivers = [await receiver._statistics() for receiver in self._receivers]
        return {"senders": senders, "receivers": receivers}

    def close(self) -> None:
        """End every outgoing and incoming track of this kind (the connection stays open)."""
        if self._closedFlag:
            return
        self._shouldClose = True
        for sender in self._senders:
            sender.close()
        for receiver in self._receivers:
            receiver.close()
        self._trackSubscriber.close()
        super().close()


class ConnectionVideoHandler(_MediaHandler):
    """``conn.video``: send and receive video (RTCBot 0.2.5 API, plus encoder settings and
    statistics).

    Send: ``put_nowait(frame)`` / ``putSubscription(camera)`` -- frames are numpy ``uint8``
    arrays ``(height, width, 3)`` in BGR order -- go to the default outgoing track, created by
    the first call; ``addTrack()`` adds more tracks. Receive: ``subscribe()`` / ``get()`` give the
    frames of the first incoming track as C-contiguous BGR ``uint8`` arrays (a reader that is
    slow gets the newest frame and skips the rest); ``onTrack()`` gives one
    :class:`VideoReceiver` per incoming track. ``settings`` (a
    :class:`~rtcbot.media.VideoEncoderSettings`) applies to tracks added afterwards: set it
    before the first ``put_nowait``/``putSubscription``.

    ``share_encoder`` (None, True or False; default None: follow
    :func:`rtcbot.media.set_encoder_sharing`, on unless turned off) says whether this
    connection's tracks may share one encode of a source with the other connections that show
    it (a camera given to several connections' ``putSubscription``, or subscriptions of it):
    set it before adding tracks. See ``docs/guides/many-viewers.md``.
    """

    kind = "video"

    def __init__(self, connection: Any = None) -> None:
        super().__init__(connection, MostRecentSubscription)
        self.settings = VideoEncoderSettings()
        self.share_encoder: bool | None = None

    def _newSender(
        self,
        fps: float | None = None,
        canSkip: bool = True,
        settings: VideoEncoderSettings | None = None,
        name: str | None = None,
        share: bool | None = None,
    ) -> VideoSender:
        return VideoSender(
            fps=fps,
            canSkip=canSkip,
            settings=settings or self.settings,
            name=name,
            share=self.share_encoder if share is None else share,
        )

    def addTrack(
        self,
        frameSubscription: Any = None,
        fps: float | None = None,
        canSkip: bool = True,
        settings: VideoEncoderSettings | None = None,
        name: str | None = None,
        share: bool | None = None,
    ) -> VideoSender:
        """Add one outgoing video track and return its :class:`VideoSender`.

        ``frameSubscription`` (anything with ``async get()``) feeds it; without one, the first
        track added is the default track fed by ``conn.video.put_nowait``/``putSubscription``,
        and later ones are fed through the returned sender. ``fps`` caps its frame rate,
        ``canSkip`` says whether frames may be skipped to stay live (see :class:`VideoSender`),
        ``settings`` overrides ``conn.video.settings`` for this track. ``name`` (unique per
        connection; letters, digits, ``-_.``...) is what the peer sees the track as (the
        browser's ``conn.video.subscribe(name, cb)``, a Python peer's ``receiver.name``).
        ``share`` overrides ``conn.video.share_encoder`` for this track. Must be called before
        the connection is negotiated (``RuntimeError`` after)."""
        return self._addTrack(
            frameSubscription,
            fps=fps,
            canSkip=canSkip,
            settings=settings,
            name=name,
            share=share,
        )

    def put_nowait(self, frame: Any) -> None:
        """Send a BGR frame (numpy ``uint8`` ``(height, width, 3)`` or ``av.VideoFrame``) on the
        default track; only the newest frame waits. Raises ``TypeError``/``ValueError`` naming a
        frame that cannot be sent; the stream is not affected."""
        frame = _stamp_frame(frame)
        super().put_nowait(frame)
        self._ensureDefaultSender()
        sender = self._defaultSender
        if sender is not None and sender._shareSource is not None:
            sender._setShareSource(None)

    def putSubscription(self, subscription: Any) -> None:
        """Send what ``subscription`` produces (a camera, ``camera.subscribe()``...) on the
        default track (created by the first call; do this before the connection is
        negotiated). Connections that show the same source share its encoder (see
        ``share_encoder``)."""
        super().putSubscription(subscription)
        if self._defaultSender is not None:
            self._defaultSender._setShareSource(subscription)

    def stopSubscription(self) -> None:
        """Stop reading the current source; the default track sends ``put_nowait`` frames."""
        super().stopSubscription()
        if self._defaultSender is not None:
            self._defaultSender._setShareSource(None)

    def _prepareTransceiver(self, sender: Any, transceiver: Any, offerer: bool) -> None:
        preferred = sender.settings.codec
        if offerer:
            codecs = RTCRtpSender.getCapabilities("video").codecs
            ordered = sorted(
                codecs,
                key=lambda c: (c.name == "rtx", c.name != preferred),
            )
            transceiver.setCodecPreferences(ordered)
        else:
            # Answering (a browser's offer): put our codec first in the answer if the offer
            # has it; the codec actually negotiated is checked when the track starts.
            prefer_codec_in_answer(transceiver, preferred)
        sender.videoStreamTrack._attach(transceiver)

    def _prepareReceivers(self, pc: Any) -> None:
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video":
                receiver = transceiver.receiver
                if installed_jitter_buffer(receiver) is None:
                    install_jitter_buffer(receiver, MarkerJitterBuffer())

    def _newReceiver(self, track: Any) -> VideoReceiver:
        return VideoReceiver(track)


# ====================================================================================== audio


class _AudioChunk:
    """Audio given to ``put_nowait``: converted at the call site, stamped with the time."""

    __slots__ = ("samples", "time")

    def __init__(self, samples: np.ndarray, put_time: float) -> None:
        self.samples = samples
        self.time = put_time


def _audio_chunk(data: Any) -> _AudioChunk:
    return _AudioChunk(to_int16_samples(data), time.monotonic())


class _AudioSenderTrack(MediaStreamTrack):
    """The aiortc track of one :class:`AudioSender`: 20 ms s16 frames, pts in samples."""

    kind = "audio"

    def __init__(self, sender: AudioSender) -> None:
        super().__init__()
        self._sender = sender
        self.transceiver: Any = None

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        try:
            return await self._sender._next_frame()
        except SubscriptionClosed:
            self.stop()
            raise MediaStreamError from None


class AudioSender(BaseSubscriptionConsumer):
    """One outgoing audio track: a consumer of audio blocks (``put_nowait`` /
    ``putSubscription``) of any length.

    Blocks are numpy arrays ``(samples,)`` (mono) or ``(samples, channels)`` (1 or 2
    channels), float in [-1, 1] or int16, at ``sampleRate`` Hz; anything else is refused with
    an error naming it. ``canSkip`` (default True, live audio): audio that waited more than
    0.5 s to be sent is dropped and a stalled source's gap is skipped, so delay never
    accumulates. False: every sample that reaches the sender is sent (a backlog plays late);
    the sender's input is still bounded (500 blocks): a source faster than real time loses its
    oldest blocks, counted as ``blocks_dropped``. ``audioStreamTrack`` is
    the aiortc track."""

    def __init__(
        self, sampleRate: int = 48000, canSkip: bool = True, name: str | None = None
    ) -> None:
        super().__init__(
            directPutSubscriptionType=functools.partial(
                QueueSubscription, 500, overflow="drop_oldest"
            ),
            logger=_log,
        )
        self.sampleRate = int(sampleRate)
        self.canSkip = bool(canSkip)
        self._clock = AudioClock(self.sampleRate, can_skip=self.canSkip)
        self._block = self.sampleRate // 50  # 20 ms
        self._buffer = np.zeros((0, 2), dtype=np.int16)
        self._time_base = fractions.Fraction(1, self.sampleRate)
        self.audioStreamTrack = _AudioSenderTrack(self)
        self.name = _check_name(name)
        self.samples_sent = 0
        self.samples_dropped = 0
        self.blocks_invalid = 0

    def put_nowait(self, data: Any) -> None:
        """Queue audio (see the class docstring). Raises ``TypeError``/``ValueError`` naming
        data that cannot be sent; nothing else is affected."""
        super().put_nowait(_audio_chunk(data))

    def _convert(self, item: Any) -> np.ndarray | None:
        if isinstance(item, _AudioChunk):
            if self.canSkip and time.monotonic() - item.time > AUDIO_MAX_AGE:
                self.samples_dropped += len(item.samples)
                return None
            samples = item.samples
        else:
            try:
                samples = to_int16_samples(item)
            except (TypeError, ValueError) as exc:
                self.blocks_invalid += 1
                if self.blocks_invalid in (1, 10, 100) or self.blocks_invalid % 1000 == 0:
                    self._log.error(
                        "audio not sent (%d blocks so far): %s", self.blocks_invalid, exc
                    )
                return None
        if samples.shape[1] == 1:
            samples = np.repeat(samples, 2, axis=1)
        return samples

    async def _next_frame(self) -> Any:
        import av

        block = self._block
        while len(self._buffer) < block:
            try:
                item = await self._get()
            except SubscriptionClosed:
                if self._shouldClose:
                    raise
                continue
            samples = self._convert(item)
            if samples is not None and len(samples):
                self._buffer = np.concatenate((self._buffer, samples))
        data, self._buffer = self._buffer[:block], self._buffer[block:]
        if not self.ready:
            self._setReady(True)
        decision = self._clock.stamp(block, time.monotonic())
        if decision.skipped:
            self._log.info(
                "audio source fell behind: skipped %.2f s (%d times so far)",
                decision.skipped / self.sampleRate,
                self._clock.skips,
            )
        if decision.wait > 0:
            await asyncio.sleep(decision.wait)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(data).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = self.sampleRate
        frame.pts = decision.pts
        frame.time_base = self._time_base
        self.samples_sent += block
        return frame

    def _track(self) -> _AudioSenderTrack:
        return self.audioStreamTrack

    def _renewTrack(self) -> None:
        """A resumed session: the next transport gets a fresh aiortc track."""
        old = self.audioStreamTrack
        self.audioStreamTrack = _AudioSenderTrack(self)
        old.stop()

    def _rtpSender(self) -> Any:
        transceiver = self.audioStreamTrack.transceiver
        return None if transceiver is None else transceiver.sender

    def close(self) -> None:
        """Stop sending: the track ends (the peer sees its remote track end). The connection
        stays open."""
        if self._closedFlag:
            return
        super().close()
        _stop_rtp_sender(self)

    def _statistics(self) -> dict[str, Any]:
        direct = self._directPutSubscription.statistics()
        return {
            "sample_rate": self.sampleRate,
            "samples_sent": self.samples_sent,
            "samples_dropped": self.samples_dropped,
            "blocks_dropped": direct.dropped,
            "blocks_invalid": self.blocks_invalid,
            "skips": self._clock.skips,
        }


class AudioReceiver(_TrackReader, BaseSubscriptionProducer):
    """One incoming audio track: a producer of ``float32`` arrays ``(samples, channels)`` at
    48 kHz (20 ms blocks from Opus: ``(960, 2)``). Each reader keeps a bounded backlog (2 s),
    dropping the oldest. Closes when the remote track ends. Create it on the event loop."""

    def __init__(self, track: Any) -> None:
        super().__init__(defaultSubscriptionClass=_audio_queue, logger=_log)
        self.track = track
        self.receiver: Any = None
        #: The name the peer gave the track (its stream id), or None if unnamed.
        self.name: str | None = None
        self.blocks_received = 0
        self._resampler: Any = None
        self._spawn(self._run(), name="rtcbot audio receiver")

    async def _run(self) -> None:
        while True:
            try:
                frame = await self._recvFrame()
            except MediaStreamError:
                break
            samples, self._resampler = audio_frame_to_float(frame, self._resampler)
            if not len(samples):
                continue
            self.blocks_received += 1
            if self.blocks_received == 1:
                self._setReady(True)
            self._put_nowait(samples)
        self._log.info("remote audio track %s ended", self.track.id)
        self.close()

    async def _statistics(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "blocks_received": self.blocks_received,
            "blocks_dropped": _subscription_drops(self),
            "ended": self.closed,
        }
        out.update(await _rtp_stats(self.receiver))
        return out

    def close(self) -> None:
        """Stop reading the track (readers get :class:`~rtcbot.SubscriptionClosed`)."""
        if self._closedFlag:
            return
        super().close()


class ConnectionAudioHandler(_MediaHandler):
    """``conn.audio``: send and receive audio (RTCBot 0.2.5 API).

    Send: ``put_nowait(samples)`` / ``putSubscription(microphone)``: numpy arrays
    ``(samples,)`` or ``(samples, channels)``, 1 or 2 channels, float in [-1, 1] or int16, at
    48 kHz (``addTrack(sampleRate=...)`` for other rates). Receive: ``subscribe()`` / ``get()``
    give ``float32`` ``(samples, channels)`` blocks at 48 kHz from the first incoming track;
    each reader keeps 2 s at most (the oldest is dropped).
    """

    kind = "audio"

    def __init__(self, connection: Any = None) -> None:
        super().__init__(connection, _audio_queue)

    def _newSender(
        self, sampleRate: int = 48000, canSkip: bool = True, name: str | None = None
    ) -> AudioSender:
        return AudioSender(sampleRate=sampleRate, canSkip=canSkip, name=name)

    def addTrack(
        self,
        subscription: Any = None,
        sampleRate: int = 48000,
        canSkip: bool = True,
        name: str | None = None,
    ) -> AudioSender:
        """Add one outgoing audio track and return its :class:`AudioSender` (see
        :meth:`ConnectionVideoHandler.addTrack` for the default-track rule). ``name``: as for
        video; an audio and a video track with the same name reach a browser in one
        MediaStream (a camera and its microphone). Must be called before the connection is
        negotiated."""
        return self._addTrack(subscription, sampleRate=sampleRate, canSkip=canSkip, name=name)

    def put_nowait(self, data: Any) -> None:
        """Send audio on the default track (see the class docstring for the format). Raises
        ``TypeError``/``ValueError`` naming data that cannot be sent; nothing else is
        affected."""
        chunk = _audio_chunk(data)
        super().put_nowait(chunk)
        self._ensureDefaultSender()

    def _prepareTransceiver(self, sender: Any, transceiver: Any, offerer: bool) -> None:
        sender.audioStreamTrack.transceiver = transceiver

    def _newReceiver(self, track: Any) -> AudioReceiver:
        return AudioReceiver(track)
