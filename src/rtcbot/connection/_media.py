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
import time
from collections import deque
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
from ..media.encoder import EncodedPacket, VideoEncoderSettings, VideoEncodeStage
from ..media.jitterbuffer import MarkerJitterBuffer
from ..media.video import (
    FramePacer,
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
    """The aiortc track of one :class:`VideoSender` on one connection.

    ``recv()`` returns ``av.Packet`` objects already encoded by the sender's
    :class:`~rtcbot.media.VideoEncodeStage`; aiortc's RTP sender packetizes them for the
    negotiated codec without encoding again. Delta frames are held back until the first
    keyframe, so a viewer never starts on an undecodable picture.
    """

    kind = "video"

    def __init__(self, sender: VideoSender) -> None:
        super().__init__()
        self._sender = sender
        self._pending: deque[EncodedPacket] = deque()
        self._waiting_keyframe = True
        self._started = False
        # The next frame's encode, started as soon as the previous frame was handed to aiortc:
        # encoding a frame overlaps with aiortc packetizing and sending the previous one, and
        # starts when the frame arrives rather than when aiortc asks for it.
        self._prefetch: asyncio.Future[list[EncodedPacket]] | None = None
        self.transceiver: Any = None
        # statistics
        self.frames_sent = 0
        self.bytes_sent = 0
        self.held_back = 0
        self.keyframe_requests = 0
        self.bitrate_estimate: int | None = None

    def _attach(self, transceiver: Any) -> None:
        """Called when the track is added to a peer connection."""
        self.transceiver = transceiver
        hook_sender_feedback(transceiver.sender, self._on_keyframe_request, self._on_estimate)

    def _on_keyframe_request(self) -> None:
        self.keyframe_requests += 1
        self._sender._stage.request_keyframe()

    def _on_estimate(self, bitrate: int) -> None:
        self.bitrate_estimate = bitrate
        self._sender._stage.estimate_bitrate(bitrate)

    def _start(self) -> None:
        self._started = True
        stage = self._sender._stage
        codec = negotiated_codec(self.transceiver) if self.transceiver is not None else None
        if codec is not None:
            try:
                stage.set_codec(codec)
            except ValueError as exc:
                error = MediaError(f"video track: {exc}")
                self._sender._setError(error)
                raise MediaStreamError(str(error)) from exc
        # A new viewer: it needs a keyframe now, not at the next periodic one.
        stage.request_keyframe()
        self._sender._setReady(True)

    async def recv(self) -> Any:
        """The next encoded frame (an ``av.Packet``, pts in 1/90000 s). Raises aiortc's
        ``MediaStreamError`` once the sender is closed (the track ends)."""
        if self.readyState != "live":
            raise MediaStreamError
        if not self._started:
            self._start()
        pending = self._pending
        while not pending:
            task, self._prefetch = self._prefetch, None
            try:
                if task is None:
                    packets = await self._sender._next_packets()
                else:
                    packets = await task
            except SubscriptionClosed:
                self.stop()
                raise MediaStreamError from None
            for packet in packets:
                if self._waiting_keyframe and not packet.keyframe:
                    self.held_back += 1
                    continue
                self._waiting_keyframe = False
                pending.append(packet)
        packet = pending.popleft()
        self.frames_sent += 1
        self.bytes_sent += packet.size
        if not pending and self._prefetch is None and self.readyState == "live":
            self._prefetch = asyncio.ensure_future(self._sender._next_packets())
        return packet.packet

    def _drop_prefetch(self) -> None:
        task, self._prefetch = self._prefetch, None
        if task is not None:
            task.cancel()
            # retrieve its outcome, so an ended stream is not reported as a lost exception
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def stop(self) -> None:
        """End the track (aiortc calls this when its sender stops)."""
        self._drop_prefetch()
        super().stop()


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

    Frame timestamps come from the frame's capture time when it has one
    (:func:`rtcbot.media.timestamped`), else from when it was put. ``videoStreamTrack`` is the
    aiortc track (it returns encoded packets). Ready once the connection starts pulling frames.
    """

    def __init__(
        self,
        fps: float | None = None,
        canSkip: bool = True,
        settings: VideoEncoderSettings | None = None,
    ) -> None:
        if settings is None:
            settings = VideoEncoderSettings()
        elif not isinstance(settings, VideoEncoderSettings):
            raise TypeError(f"settings must be a VideoEncoderSettings, got {settings!r}")
        limit = settings.max_framerate if fps is None else min(float(fps), settings.max_framerate)
        buffer = (
            MostRecentSubscription
            if canSkip
            else functools.partial(QueueSubscription, 300, overflow="raise")
        )
        super().__init__(directPutSubscriptionType=buffer, logger=_log)
        self.settings = settings
        self.canSkip = bool(canSkip)
        self._pacer = FramePacer(limit, can_skip=self.canSkip)
        self._stage = VideoEncodeStage(settings)
        self.videoStreamTrack = EncodedVideoTrack(self)
        self.frames_invalid = 0
        self._rate = _Rate()
        self.size: tuple[int, int] | None = None

    def put_nowait(self, frame: Any) -> None:
        """Queue a frame: a numpy ``uint8`` array ``(height, width, 3)`` in BGR order, or an
        ``av.VideoFrame``. Raises ``TypeError``/``ValueError`` naming a frame that cannot be
        sent (nothing else is affected)."""
        super().put_nowait(_stamp_frame(frame))

    async def _next_packets(self) -> list[EncodedPacket]:
        """The packets of the next frame to send (waits for a frame, paces, encodes)."""
        while True:
            try:
                frame = await self._get()
            except SubscriptionClosed:
                if self._shouldClose:
                    raise
                continue  # the source ended: keep reading put_nowait frames
            try:
                check_bgr_frame(frame)
            except (TypeError, ValueError) as exc:
                self.frames_invalid += 1
                if self.frames_invalid in (1, 10, 100) or self.frames_invalid % 1000 == 0:
                    self._log.error(
                        "video frame not sent (%d so far): %s", self.frames_invalid, exc
                    )
                continue
            decision = self._pacer.decide(time.monotonic(), capture_time(frame))
            if not decision.send:
                continue
            if decision.wait > 0:
                await asyncio.sleep(decision.wait)
            packets = await self._stage.encode(frame, decision.time)
            if isinstance(frame, np.ndarray):
                self.size = (frame.shape[1], frame.shape[0])
            if packets:
                return packets

    def _track(self) -> EncodedVideoTrack:
        return self.videoStreamTrack

    def _rtpSender(self) -> Any:
        transceiver = self.videoStreamTrack.transceiver
        return None if transceiver is None else transceiver.sender

    def _statistics(self) -> dict[str, Any]:
        stage = self._stage
        track = self.videoStreamTrack
        replaced = self._directPutSubscription.statistics().dropped
        source = self._subscription
        if isinstance(source, _HandlerSource):  # the default track: conn.video's own buffer
            replaced += source._handler._directPutSubscription.statistics().dropped
        return {
            "codec": stage.codec,
            "size": self.size,
            "frames_offered": self._pacer.sent + self._pacer.skipped + replaced,
            "frames_skipped": self._pacer.skipped + replaced,
            "frames_encoded": stage.frames_encoded,
            "frames_sent": track.frames_sent,
            "frames_invalid": self.frames_invalid,
            "keyframes": stage.keyframes_sent,
            "keyframe_requests": track.keyframe_requests,
            "forced_keyframes": stage.keyframes.forced,
            "target_bitrate": stage.target_bitrate,
            "bitrate_estimate": track.bitrate_estimate,
            "bitrate": self._rate.update(track.bytes_sent, time.monotonic()),
            "bytes_sent": track.bytes_sent,
            "encode_ms_avg": (
                stage.encode_seconds * 1000.0 / stage.frames_encoded
                if stage.frames_encoded
                else None
            ),
        }

    def close(self) -> None:
        """Stop sending: the track ends (the peer sees its remote track end) and the encoder
        thread is released. The connection stays open."""
        if self._closedFlag:
            return
        super().close()
        self.videoStreamTrack._drop_prefetch()
        self._stage.close()
        _stop_rtp_sender(self)


class VideoReceiver(BaseSubscriptionProducer):
    """One incoming video track: a producer of C-contiguous BGR ``uint8`` frames
    ``(height, width, 3)``; each reader keeps only the newest frame. Ready at the first frame;
    closes (its readers get :class:`~rtcbot.SubscriptionClosed`) when the remote track ends.
    Create it on the event loop (the connection does)."""

    def __init__(self, track: Any) -> None:
        super().__init__(defaultSubscriptionClass=MostRecentSubscription, logger=_log)
        self.track = track
        self.frames_received = 0
        self.receiver: Any = None  # the aiortc RTCRtpReceiver, when known
        self._rate = _Rate()
        self.size: tuple[int, int] | None = None
        self._spawn(self._run(), name="rtcbot video receiver")

    async def _run(self) -> None:
        track = self.track
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                break
            array = to_bgr_array(frame)
            self.frames_received += 1
            if self.frames_received == 1:
                self._setReady(True)
            self.size = (array.shape[1], array.shape[0])
            self._put_nowait(array)
        self._log.info("remote video track %s ended", track.id)
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


class _HandlerSource:
    """What the default sender reads: the handler's own input (its ``put_nowait`` data or its
    ``putSubscription`` source). A source that ends does not end the track."""

    def __init__(self, handler: _MediaHandler) -> None:
        self._handler = handler

    async def get(self) -> Any:
        handler = self._handler
        while True:
            try:
                return await handler._get()
            except SubscriptionClosed:
                if handler._shouldClose:
                    raise


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
        sender = self._newSender(*args, **kwargs)
        if source is not None:
            sender.putSubscription(source)
        elif self._defaultSender is None:
            sender.putSubscription(_HandlerSource(self))
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

    def _onRemoteTrack(self, track: Any) -> None:
        """A remote track of our kind arrived (called by the connection)."""
        if self._shouldClose:
            return
        receiver = self._newReceiver(track)
        if self._pc is not None:
            receiver.receiver = next((r for r in self._pc.getReceivers() if r.track is track), None)
        self._receivers.append(receiver)
        receiver.onClose(functools.partial(self._receiverClosed, receiver))
        if self._defaultReceiver is None:
            self._useDefault(receiver)
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
    """

    kind = "video"

    def __init__(self, connection: Any = None) -> None:
        super().__init__(connection, MostRecentSubscription)
        self.settings = VideoEncoderSettings()

    def _newSender(
        self,
        fps: float | None = None,
        canSkip: bool = True,
        settings: VideoEncoderSettings | None = None,
    ) -> VideoSender:
        return VideoSender(fps=fps, canSkip=canSkip, settings=settings or self.settings)

    def addTrack(
        self,
        frameSubscription: Any = None,
        fps: float | None = None,
        canSkip: bool = True,
        settings: VideoEncoderSettings | None = None,
    ) -> VideoSender:
        """Add one outgoing video track and return its :class:`VideoSender`.

        ``frameSubscription`` (anything with ``async get()``) feeds it; without one, the first
        track added is the default track fed by ``conn.video.put_nowait``/``putSubscription``,
        and later ones are fed through the returned sender. ``fps`` caps its frame rate,
        ``canSkip`` says whether frames may be skipped to stay live (see :class:`VideoSender`),
        ``settings`` overrides ``conn.video.settings`` for this track. Must be called before the
        connection is negotiated (``RuntimeError`` after)."""
        return self._addTrack(frameSubscription, fps=fps, canSkip=canSkip, settings=settings)

    def put_nowait(self, frame: Any) -> None:
        """Send a BGR frame (numpy ``uint8`` ``(height, width, 3)`` or ``av.VideoFrame``) on the
        default track; only the newest frame waits. Raises ``TypeError``/``ValueError`` naming a
        frame that cannot be sent; the stream is not affected."""
        frame = _stamp_frame(frame)
        super().put_nowait(frame)
        self._ensureDefaultSender()

    def _prepareTransceiver(self, sender: Any, transceiver: Any, offerer: bool) -> None:
        if offerer:
            preferred = sender.settings.codec
            codecs = RTCRtpSender.getCapabilities("video").codecs
            ordered = sorted(
                codecs,
                key=lambda c: (c.name == "rtx", c.name != preferred),
            )
            transceiver.setCodecPreferences(ordered)
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
    accumulates. False: every sample is sent (a backlog plays late). ``audioStreamTrack`` is
    the aiortc track."""

    def __init__(self, sampleRate: int = 48000, canSkip: bool = True) -> None:
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


class AudioReceiver(BaseSubscriptionProducer):
    """One incoming audio track: a producer of ``float32`` arrays ``(samples, channels)`` at
    48 kHz (20 ms blocks from Opus: ``(960, 2)``). Each reader keeps a bounded backlog (2 s),
    dropping the oldest. Closes when the remote track ends. Create it on the event loop."""

    def __init__(self, track: Any) -> None:
        super().__init__(defaultSubscriptionClass=_audio_queue, logger=_log)
        self.track = track
        self.receiver: Any = None
        self.blocks_received = 0
        self._resampler: Any = None
        self._spawn(self._run(), name="rtcbot audio receiver")

    async def _run(self) -> None:
        track = self.track
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                break
            samples, self._resampler = audio_frame_to_float(frame, self._resampler)
            if not len(samples):
                continue
            self.blocks_received += 1
            if self.blocks_received == 1:
                self._setReady(True)
            self._put_nowait(samples)
        self._log.info("remote audio track %s ended", track.id)
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

    def _newSender(self, sampleRate: int = 48000, canSkip: bool = True) -> AudioSender:
        return AudioSender(sampleRate=sampleRate, canSkip=canSkip)

    def addTrack(
        self, subscription: Any = None, sampleRate: int = 48000, canSkip: bool = True
    ) -> AudioSender:
        """Add one outgoing audio track and return its :class:`AudioSender` (see
        :meth:`ConnectionVideoHandler.addTrack` for the default-track rule). Must be called
        before the connection is negotiated."""
        return self._addTrack(subscription, sampleRate=sampleRate, canSkip=canSkip)

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
