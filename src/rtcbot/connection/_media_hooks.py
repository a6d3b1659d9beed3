"""The only places where rtcbot reaches into aiortc's private internals (media side).

aiortc (1.9 to 1.16) has no public API for three things rtcbot needs. Each is isolated in one
small function here, checks that the internals look as expected, and degrades to stock aiortc
behaviour (with one warning) if they do not; ``tests/test_media_hooks.py`` fails when an aiortc
upgrade changes them.

1. Keyframe requests and bandwidth estimates reaching a track that sends pre-encoded packets.
   ``RTCRtpSender._handle_rtcp_packet`` handles picture-loss (PLI/FIR) by setting a flag that only
   aiortc's own encoder reads, and bandwidth estimates (REMB) by setting that encoder's
   ``target_bitrate``. :func:`hook_sender_feedback` wraps the method on one sender instance to
   also tell rtcbot's encoder.
2. Receive latency. aiortc's video ``JitterBuffer`` releases a frame only when the next frame's
   first packet arrives (one frame interval late). :func:`install_jitter_buffer` replaces the
   private ``RTCRtpReceiver.__jitter_buffer`` of one receiver with rtcbot's
   :class:`~rtcbot.media.jitterbuffer.MarkerJitterBuffer` (same ``add`` interface).
3. The negotiated codec of a transceiver (``RTCRtpTransceiver._codecs``), which decides how
   aiortc packetizes our packets: :func:`negotiated_codec`.
4. The remote description as aiortc parsed it (``RTCPeerConnection.__remoteDescription``):
   :func:`remote_stream_id` reads the track names there once per description, where the
   public ``remoteDescription`` would print and reparse the whole SDP for every track.
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Callable
from typing import Any

_log = logging.getLogger("rtcbot.connection.media")

_JITTER_ATTR = "_RTCRtpReceiver__jitter_buffer"
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        _log.warning(message)


def hook_sender_feedback(
    sender: Any,
    on_keyframe_request: Callable[[], None],
    on_bitrate_estimate: Callable[[int], None],
) -> bool:
    """Make ``sender`` (an aiortc ``RTCRtpSender``) call ``on_keyframe_request()`` for every
    picture-loss or full-intra request and ``on_bitrate_estimate(bits_per_second)`` for every
    bandwidth estimate (REMB) about its stream, after aiortc's own handling. Returns False (and
    warns once) if this aiortc version does not fit; the track then gets keyframes only on its
    periodic schedule."""
    from aiortc import rtp

    original = getattr(sender, "_handle_rtcp_packet", None)
    needed = (
        "RtcpPsfbPacket",
        "RTCP_PSFB_PLI",
        "RTCP_PSFB_FIR",
        "RTCP_PSFB_APP",
        "unpack_remb_fci",
    )
    if (
        original is None
        or not inspect.iscoroutinefunction(original)
        or not all(hasattr(rtp, name) for name in needed)
    ):
        _warn_once(
            "sender",
            "this aiortc version does not expose RTCRtpSender._handle_rtcp_packet as expected: "
            "keyframe requests from viewers are ignored (keyframes still come periodically)",
        )
        return False
    if getattr(original, "_rtcbot_hook", False):
        return True
    keyframe_formats = (rtp.RTCP_PSFB_PLI, rtp.RTCP_PSFB_FIR)

    async def handle_rtcp_packet(packet: Any) -> None:
        await original(packet)
        if isinstance(packet, rtp.RtcpPsfbPacket):
            if packet.fmt in keyframe_formats:
                on_keyframe_request()
            elif packet.fmt == rtp.RTCP_PSFB_APP:
                try:
                    bitrate, ssrcs = rtp.unpack_remb_fci(packet.fci)
                except ValueError:
                    return
                if getattr(sender, "_ssrc", None) in ssrcs:
                    on_bitrate_estimate(bitrate)

    handle_rtcp_packet._rtcbot_hook = True  # type: ignore[attr-defined]
    sender._handle_rtcp_packet = handle_rtcp_packet
    return True


def install_jitter_buffer(receiver: Any, buffer: Any) -> bool:
    """Replace the video jitter buffer of ``receiver`` (an aiortc ``RTCRtpReceiver`` of kind
    video that has not received packets yet) with ``buffer``. Idempotent per receiver: returns
    True if ``receiver`` uses an rtcbot buffer afterwards, False (warning once) if this aiortc
    version does not fit, leaving aiortc's buffer in place."""
    from aiortc.jitterbuffer import JitterBuffer

    current = getattr(receiver, _JITTER_ATTR, None)
    if getattr(current, "_rtcbot", False):
        return True
    if not isinstance(current, JitterBuffer) or not current._is_video:
        _warn_once(
            "receiver",
            "this aiortc version does not keep RTCRtpReceiver.__jitter_buffer as expected: "
            "received video keeps aiortc's extra frame of latency",
        )
        return False
    buffer._rtcbot = True
    setattr(receiver, _JITTER_ATTR, buffer)
    return True


def installed_jitter_buffer(receiver: Any) -> Any:
    """The rtcbot jitter buffer installed in ``receiver``, or None."""
    current = getattr(receiver, _JITTER_ATTR, None)
    return current if getattr(current, "_rtcbot", False) else None


def negotiated_codec(transceiver: Any) -> str | None:
    """The name (``"VP8"``, ``"H264"``, ``"opus"``...) of the codec negotiated for
    ``transceiver``, or None before negotiation (or if this aiortc version hides it)."""
    codecs = getattr(transceiver, "_codecs", None)
    if not codecs:
        return None
    return getattr(codecs[0], "name", None)


def set_stream_id(sender: Any, stream_id: str) -> bool:
    """Make ``sender`` (an aiortc ``RTCRtpSender``) announce its track in the stream
    ``stream_id`` (the SDP ``a=msid`` line; the browser's ``event.streams[0].id``). aiortc puts
    every track of a connection in one stream with a random id and has no API to choose it.
    Call before the description is created. Returns False (warning once) if this aiortc
    version does not fit; the track is then unnamed for the peer."""
    if not isinstance(getattr(sender, "_stream_id", None), str):
        _warn_once(
            "stream_id",
            "this aiortc version does not keep RTCRtpSender._stream_id as expected: track "
            "names do not reach the peer",
        )
        return False
    sender._stream_id = stream_id
    return True


def prefer_codec_in_answer(transceiver: Any, codec: str) -> bool:
    """Put ``codec`` (``"VP8"``, ``"H264"``) first among the codecs of ``transceiver`` that the
    answer will list (call after setting the remote offer, before creating the answer), if the
    offer has it. aiortc applies ``setCodecPreferences`` only while it sets a remote
    description, so an answerer cannot use it. Returns True if ``codec`` is now first."""
    codecs = getattr(transceiver, "_codecs", None)
    if not isinstance(codecs, list) or not codecs:
        return False
    wanted = codec.lower()
    if not any(getattr(c, "name", "").lower() == wanted for c in codecs):
        return False
    codecs.sort(key=lambda c: getattr(c, "name", "").lower() != wanted)
    return True


def remote_stream_id(pc: Any, track: Any) -> str | None:
    """The stream id the peer announced for its ``track`` (an incoming aiortc track), from the
    ``a=msid`` line of its media section in the remote description; None if none. A track that
    rtcbot's peer named carries its name here.

    The remote description is read once for all its tracks (not once per track: that cost
    grew with the square of the number of media sections a peer may send)."""
    transceiver = next(
        (t for t in pc.getTransceivers() if getattr(t.receiver, "track", None) is track), None
    )
    if transceiver is None or transceiver.mid is None:
        return None
    return _remote_stream_ids(pc).get(transceiver.mid)


#: pc -> (the parsed remote description it was read from, {mid: stream id})
_stream_ids: weakref.WeakKeyDictionary[Any, tuple[Any, dict[str, str]]] = (
    weakref.WeakKeyDictionary()
)
_REMOTE_ATTR = "_RTCPeerConnection__remoteDescription"


def _parsed_remote_description(pc: Any) -> Any:
    """aiortc's own parsed remote description (``sdp.SessionDescription``) of ``pc``, or None.

    aiortc's public ``remoteDescription`` prints the whole SDP again at every access; its
    private ``__remoteDescription()`` returns the description it parsed. Falls back (warning
    once) to parsing the public text."""
    from aiortc import sdp

    private = getattr(pc, _REMOTE_ATTR, None)
    if callable(private):
        description = private()
        if description is None or isinstance(description, sdp.SessionDescription):
            return description
    _warn_once(
        "remote_description",
        "this aiortc version does not keep RTCPeerConnection.__remoteDescription as expected: "
        "the remote SDP is parsed once more to read track names",
    )
    remote = pc.remoteDescription
    if remote is None:
        return None
    try:
        return sdp.SessionDescription.parse(remote.sdp)
    except Exception:  # pragma: no cover - aiortc parsed it already
        return None


def _remote_stream_ids(pc: Any) -> dict[str, str]:
    description = _parsed_remote_description(pc)
    if description is None:
        return {}
    cached = _stream_ids.get(pc)
    if cached is not None and cached[0] is description:
        return cached[1]
    ids: dict[str, str] = {}
    for media in description.media:
        mid = getattr(media.rtp, "muxId", None)
        if mid and media.msid:
            stream_id = media.msid.split()[0]
            if stream_id != "-":
                ids[mid] = stream_id
    _stream_ids[pc] = (description, ids)
    return ids
