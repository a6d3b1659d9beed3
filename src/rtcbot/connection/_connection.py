"""RTCConnection: a WebRTC peer connection as an rtcbot producer and consumer."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import math
from collections.abc import Callable, Generator, Iterable
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidAccessError, InvalidStateError

from ..base._compat import TIMEOUT_ERRORS
from ..base._compat import timeout as aio_timeout
from ..base.base import SubscriptionProducer, SubscriptionProducerConsumer
from ..base.errors import RTCBotError
from ..base.subscriptions import describe
from ._datachannel import DataChannel
from ._heartbeat import (
    HEARTBEAT_CHANNEL_ID,
    HEARTBEAT_LABEL,
    PEER_TIMEOUT,
    PING_INTERVAL,
    Heartbeat,
)
from ._ice_hooks import add_deferred_candidates, defer_mdns_candidates, mdns_deferral_supported
from ._media import ConnectionAudioHandler, ConnectionVideoHandler
from ._resume import DEFAULT_RESUME_WINDOW, ResumePolicy, ResumeStatistics

__all__ = [
    "ConnectionLost",
    "InvalidDescription",
    "PeerVanished",
    "RTCConnection",
    "SessionGone",
    "SignalingError",
]

_log = logging.getLogger("rtcbot.connection")

DEFAULT_CHANNEL = "default"
_RESERVED = {DEFAULT_CHANNEL, HEARTBEAT_LABEL}


# ---------------------------------------------------------------------------------- errors


class ConnectionLost(RTCBotError, ConnectionError):
    """The connection to the peer broke (ICE or DTLS failed, or the peer vanished)."""


class PeerVanished(ConnectionLost):
    """The peer stopped answering the heartbeat: its process was killed, its tab closed, or the
    network between us was cut."""


class SessionGone(ConnectionLost):
    """The peer no longer knows the session a resume offer names (it closed it, its resume
    window expired, or it restarted): the session cannot resume. A resume signalling function
    raises it to stop the attempts; the connection then closes with it as its error."""


class SignalingError(RTCBotError):
    """A signalling call that does not fit the connection's state (a second offer to a
    connection that already answered one, an answer without an offer, a closed connection)."""


class InvalidDescription(RTCBotError, ValueError):
    """A session description that is not ``{"sdp": str, "type": "offer" | "answer"}``, or whose
    SDP was rejected."""


# ---------------------------------------------------------------------------------- input rules


#: Limits on a remote session description, checked before any parsing. A robot with several
#: cameras, a microphone and data channels offers under 10 media sections and a few dozen
#: candidates in a few kilobytes; a stranger's 180-section offer blocked the loop for seconds.
MAX_SDP_SIZE = 64 * 1024
MAX_MEDIA_SECTIONS = 32
MAX_CANDIDATES = 256


def validate_description(
    description: Any,
    *,
    max_size: int = MAX_SDP_SIZE,
    max_media: int = MAX_MEDIA_SECTIONS,
    max_candidates: int = MAX_CANDIDATES,
) -> RTCSessionDescription:
    """Check a session description received from signalling and return it as aiortc's type.

    ``description`` must be a dict (or an object with ``sdp`` and ``type`` attributes, such as
    an ``RTCSessionDescription``) with ``"sdp"``: a str starting with ``v=`` and ``"type"``:
    ``"offer"`` or ``"answer"``, of at most ``max_size`` characters, ``max_media`` media
    sections (``m=`` lines) and ``max_candidates`` ICE candidates. The limits are checked by
    counting, before anything is parsed, so a huge offer costs microseconds. Raises
    :class:`InvalidDescription` (a ``ValueError``) naming what is wrong.
    """
    if isinstance(description, dict):
        sdp, kind = description.get("sdp"), description.get("type")
        missing = [k for k in ("sdp", "type") if k not in description]
        if missing:
            raise InvalidDescription(
                f"session description lacks {' and '.join(repr(k) for k in missing)}: "
                f"expected {{'sdp': str, 'type': 'offer' | 'answer'}}, got keys "
                f"{sorted(map(str, description))}"
            )
    elif hasattr(description, "sdp") and hasattr(description, "type"):
        sdp, kind = description.sdp, description.type
    else:
        raise InvalidDescription(
            f"a session description must be a dict {{'sdp': str, 'type': 'offer' | 'answer'}}, "
            f"got {describe(description)}"
        )
    if kind not in ("offer", "answer"):
        raise InvalidDescription(
            f"session description 'type' must be 'offer' or 'answer', got {kind!r}"
        )
    if not isinstance(sdp, str):
        raise InvalidDescription(f"session description 'sdp' must be a str, got {describe(sdp)}")
    if len(sdp) > max_size:
        raise InvalidDescription(
            f"session description 'sdp' is too long: {len(sdp)} characters (at most {max_size})"
        )
    if not sdp.lstrip().startswith("v="):
        raise InvalidDescription(
            f"session description 'sdp' is not SDP (it must start with 'v=0'): {describe(sdp)}"
        )
    media = sdp.count("\nm=")
    if media > max_media:
        raise InvalidDescription(
            f"session description has {media} media sections (at most {max_media})"
        )
    candidates = sdp.count("a=candidate:")
    if candidates > max_candidates:
        raise InvalidDescription(
            f"session description has {candidates} ICE candidates (at most {max_candidates})"
        )
    if "\nm=" not in sdp:
        raise InvalidDescription(
            "session description 'sdp' has no media section (no 'm=' line: no data channel, "
            "audio or video to connect)"
        )
    return RTCSessionDescription(sdp=sdp, type=kind)


_SERVER_KEYS = {"urls", "url", "username", "credential", "credentialType"}


def _ice_server(value: Any, index: int) -> RTCIceServer:
    if isinstance(value, RTCIceServer):
        return dataclasses.replace(value)
    if isinstance(value, str):
        return RTCIceServer(urls=value)
    if not isinstance(value, dict):
        raise TypeError(
            f"ICE server {index} must be a dict like {{'urls': 'stun:host:port'}} or an "
            f"RTCIceServer, got {describe(value)}"
        )
    unknown = set(value) - _SERVER_KEYS
    if unknown:
        raise ValueError(f"ICE server {index} has unknown keys {sorted(unknown)}: {value!r}")
    urls = value.get("urls", value.get("url"))
    if isinstance(urls, (list, tuple)) and urls and all(isinstance(u, str) for u in urls):
        urls = list(urls)
    elif not isinstance(urls, str):
        raise ValueError(f"ICE server {index} needs 'urls' (a str or list of str): {value!r}")
    return RTCIceServer(
        urls=urls,
        username=value.get("username"),
        credential=value.get("credential"),
        credentialType=value.get("credentialType", "password"),
    )


def make_configuration(value: Any) -> RTCConfiguration:
    """A fresh ``RTCConfiguration`` from what ``RTCConnection(rtcConfiguration=...)`` accepts.

    * ``None`` -- no ICE servers: only the machine's own addresses are offered (works on a
      local network, and through a NAT only if the other side can reach us). Nothing contacts
      a third-party server unless you configure one.
    * a list of ICE servers, each a dict as in the browser (``{"urls": "stun:...", "username":
      ..., "credential": ...}``), a URL string, or an ``RTCIceServer``;
    * a dict ``{"iceServers": [...]}`` (the browser's configuration object);
    * an aiortc ``RTCConfiguration`` (copied, never shared).
    """
    if value is None:
        return RTCConfiguration(iceServers=[])
    if isinstance(value, RTCConfiguration):
        servers = [_ice_server(s, i) for i, s in enumerate(value.iceServers or [])]
        return dataclasses.replace(value, iceServers=servers)
    if isinstance(value, dict):
        unknown = set(value) - {"iceServers"}
        if unknown:
            raise ValueError(
                f"rtcConfiguration dict supports only 'iceServers', got keys {sorted(unknown)}"
            )
        value = value.get("iceServers") or []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(
            f"rtcConfiguration must be None, a list of ICE servers (dicts like "
            f"{{'urls': 'stun:stun.example.org:3478'}}), or an RTCConfiguration, got "
            f"{describe(value)}"
        )
    return RTCConfiguration(iceServers=[_ice_server(s, i) for i, s in enumerate(value)])


def _as_dict(description: RTCSessionDescription) -> dict[str, str]:
    return {"sdp": description.sdp, "type": description.type}


class _Closing:
    """What ``RTCConnection.close()`` returns: awaiting it waits until the peer connection is
    closed (calling ``close()`` without awaiting closes just the same). Cancelling the await
    does not stop the close."""

    __slots__ = ("_task",)

    def __init__(self, task: asyncio.Future[Any] | None) -> None:
        self._task = task

    def __await__(self) -> Generator[Any, None, None]:
        task = self._task
        if task is None or task.done():
            return
        yield from asyncio.shield(task).__await__()


# ---------------------------------------------------------------------------------- connection


class RTCConnection(SubscriptionProducerConsumer):
    """A WebRTC connection to a browser or another Python program.

    Messages on the default data channel: ``put_nowait(msg)``/``send(msg)``/``await put(msg)``/
    ``putSubscription(s)`` send them; ``subscribe()``/``get()`` receive them (see
    :class:`DataChannel` for the message rule). ``conn.video`` and ``conn.audio`` send and
    receive media. Signalling is a pair of session-description dicts: the offerer calls
    ``offer = await conn.getLocalDescription()`` and later ``await
    conn.setRemoteDescription(answer)``; the answerer calls ``answer = await
    conn.getLocalDescription(offer)``. ICE candidates are gathered before the description is
    returned (no trickle ICE).

    One connection serves one peer for one session: for each new client (a page reload is a new
    client) create a new ``RTCConnection``.

    Events: ``onReady`` when the default data channel opens; ``onClose`` when closed here, when
    the peer closes, or when the peer vanishes (heartbeat timeout, about 2.5 s); ``onError``
    with a :class:`ConnectionLost` when the connection breaks. Use :meth:`set_control_timeout`
    to stop a robot when its operator's commands stop.

    ``rtcConfiguration``: ICE servers (see :func:`make_configuration`); by default none, so no
    third-party server is contacted; pass a STUN/TURN server for use across NATs.
    ``loop`` is accepted for RTCBot 0.2.5 compatibility; the connection otherwise binds to the
    loop that first uses it. Nothing touches a loop or aiortc until the first signalling call,
    so a connection can be created at module level.

    ``connect_timeout``: seconds, from the moment both descriptions are set, for the peers to
    connect; past it the connection fails with :class:`ConnectionLost` and closes (aiortc
    alone keeps trying for minutes when the peers cannot reach each other). None: no limit.

    **Resumable sessions.** A session outlives its transport: when the link is lost (the
    heartbeat goes quiet, ICE or DTLS fails, the transport closes without the peer saying
    goodbye), the side that offered brings up a new transport through its signalling path
    (:meth:`set_resume_signaling`; ``rtcbot.web.connect`` and the relay set it), with
    back-off, for up to ``resume_window`` seconds (None: forever; 0: never resume, close at
    once as before). The answering side waits as long for the resume offer
    (:meth:`accept_resume`). The same object carries on: subscriptions, data channels,
    tracks, encoders and the control timeout (which still fires during the gap). During the
    gap, messages put on a reliable channel wait (bounded) and are sent after the resume.
    :meth:`on_link_lost` and :meth:`on_link_restored` say when; ``onClose`` fires only when
    either side closes or the window expires (then with a :class:`PeerVanished` error).

    ``heartbeat_interval`` / ``heartbeat_timeout``: seconds between pings, and of silence
    after which the link counts as lost (defaults 0.5 s and 2.5 s).
    """

    def __init__(
        self,
        defaultChannelOrdered: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
        rtcConfiguration: Any = None,
        *,
        connect_timeout: float | None = 20.0,
        resume_window: float | None = DEFAULT_RESUME_WINDOW,
        heartbeat_interval: float = PING_INTERVAL,
        heartbeat_timeout: float = PEER_TIMEOUT,
    ) -> None:
        super().__init__(logger=_log)
        if connect_timeout is not None and not connect_timeout > 0:
            raise ValueError(f"connect_timeout must be positive seconds or None, got "
                             f"{connect_timeout!r}")
        self._connectTimeout = connect_timeout
        self._connectTimer: asyncio.TimerHandle | None = None
        self._configuration = make_configuration(rtcConfiguration)
        self._defaultChannelOrdered = bool(defaultChannelOrdered)
        if loop is not None:
            self._bindLoop(loop)
        self._pc: RTCPeerConnection | None = None
        self._role: str | None = None
        self._signalLock: asyncio.Lock | None = None
        self._default = DataChannel(name=DEFAULT_CHANNEL, ordered=self._defaultChannelOrdered,
                                    logger=_log)
        self._default.onReady(self._onDefaultOpen)
        self._default.onClose(self._onDefaultClosed)
        self._default._transportClosed = self._channelTransportClosed
        self._default._opened = self._transportUp
        self._channels: dict[str, DataChannel] = {}
        self._unattached: list[DataChannel] = []
        self._remoteChannels = SubscriptionProducer(logger=_log)
        self._heartbeat = Heartbeat(heartbeat_interval, heartbeat_timeout)
        self._resume = ResumePolicy(resume_window)
        self._resumeSignal: Callable[[dict[str, str]], Any] | None = None
        self._resumeTask: asyncio.Task[None] | None = None
        self._windowTimer: asyncio.TimerHandle | None = None
        self._linkUp: asyncio.Future[None] | None = None
        self._oldPcTasks: set[asyncio.Task[None]] = set()
        self._eventSubscribers["link_lost"] = []
        self._eventSubscribers["link_restored"] = []
        self._mediaOnly = False
        self._heartbeatChannel: Any = None
        self._heartbeatTimer: asyncio.TimerHandle | None = None
        self._pcCloseTask: asyncio.Task[None] | None = None
        #: per peer connection, the task adding the peer's .local (mDNS) candidates
        self._mdnsTasks: dict[RTCPeerConnection, asyncio.Task[Any]] = {}
        self._closing = False
        self._closedChannels: list[DataChannel] = []
        self._addFinisher(self._default._waitClosed)
        self._addFinisher(self._waitPcClosed)
        self.video = ConnectionVideoHandler(self)
        self.audio = ConnectionAudioHandler(self)
        self._addFinisher(self.video._waitClosed)  # await conn: media tasks have ended too
        self._addFinisher(self.audio._waitClosed)

    # ------------------------------------------------------------------ signalling

    def _ensurePc(self) -> RTCPeerConnection:
        self._ensureLoop()
        if self._closedFlag:
            raise SignalingError("the connection is closed; create a new RTCConnection")
        pc = self._pc
        if pc is None:
            pc = RTCPeerConnection(self._configuration)
            pc.on("connectionstatechange", functools.partial(self._onConnectionState, pc))
            pc.on("datachannel", functools.partial(self._onRemoteChannel, pc))
            pc.on("track", functools.partial(self._onTrack, pc))
            self._pc = pc
        return pc

    def _lock(self) -> asyncio.Lock:
        if self._signalLock is None:
            self._signalLock = asyncio.Lock()
        return self._signalLock

    async def getLocalDescription(self, description: Any = None) -> dict[str, str]:
        """Our session description, as ``{"sdp": str, "type": "offer" | "answer"}``.

        With no ``description`` and no remote description yet, we are the **offerer**: the
        default data channel, the heartbeat channel, the channels added with
        :meth:`addDataChannel` and the media configured on ``video``/``audio`` are put in an
        offer (asking again returns the same offer). With ``description`` (the peer's offer),
        we are the **answerer**: it is set as the remote description and the answer returned.
        Returns once ICE gathering is complete. Raises :class:`InvalidDescription` for a
        malformed description and :class:`SignalingError` for an offer to a connection that
        already has a session. Cancelling the call leaves the connection unusable; close it.
        """
        checked = None if description is None else validate_description(description)
        async with self._lock():
            pc = self._ensurePc()
            if checked is not None:
                await self._setRemote(pc, checked)
            if pc.remoteDescription is None:
                return await self._offer(pc)
            if pc.signalingState == "have-remote-offer":
                answer = await pc.createAnswer()
                await pc.setLocalDescription(answer)
                self._armConnectTimer()
                return _as_dict(pc.localDescription)
            # already negotiated: the description we gave (asking again is harmless)
            return _as_dict(pc.localDescription)

    async def _offer(self, pc: RTCPeerConnection) -> dict[str, str]:
        if pc.signalingState == "have-local-offer":
            return _as_dict(pc.localDescription)
        self._role = "offerer"
        self._default._attach(
            pc.createDataChannel(DEFAULT_CHANNEL, ordered=self._defaultChannelOrdered)
        )
        self._createHeartbeat(pc)
        self._createPendingChannels(pc)
        self.video._addTransceivers(pc, True)
        self.audio._addTransceivers(pc, True)
        offer = await pc.createOffer()
        await pc.setLocalDescription(offer)
        return _as_dict(pc.localDescription)

    async def setRemoteDescription(self, description: Any) -> None:
        """Set the peer's session description (its answer to our offer, or its offer).

        Raises :class:`InvalidDescription` (a ``ValueError``) for a malformed description,
        :class:`SignalingError` for one that does not fit (an answer when we made no offer, a
        second offer). For an offer, call :meth:`getLocalDescription` next to get the answer.
        Cancelling the call may leave the connection half-configured: close it.
        """
        checked = validate_description(description)
        async with self._lock():
            await self._setRemote(self._ensurePc(), checked)

    async def _setRemote(self, pc: RTCPeerConnection, description: RTCSessionDescription) -> None:
        if description.type == "offer":
            if pc.remoteDescription is not None or pc.localDescription is not None:
                raise SignalingError(
                    "this RTCConnection already has a session (it "
                    f"{'answered' if self._role == 'answerer' else 'made'} an offer); a "
                    "connection serves one client once: create a new RTCConnection for each "
                    "client or page reload"
                )
        elif pc.signalingState != "have-local-offer":
            if self._role == "offerer":
                why = "already has one (a connection serves one session)"
            elif self._role == "answerer":
                why = "made no offer (it answered the peer's offer)"
            else:
                why = "made no offer: call getLocalDescription() first"
            raise SignalingError(f"got an answer, but this RTCConnection {why}")
        try:
            await self._setRemoteWithoutMdns(pc, description)
        except ValueError as exc:
            raise InvalidDescription(f"the remote {description.type} was rejected: {exc}") from exc
        except (InvalidStateError, InvalidAccessError) as exc:
            raise SignalingError(f"the remote {description.type} does not fit: {exc}") from exc
        if description.type == "answer":
            self._armConnectTimer()
        if description.type == "offer":
            self._role = "answerer"
            if pc.sctp is not None:
                self._createHeartbeat(pc)
                self._createPendingChannels(pc)
            else:  # a media-only peer: no data channel will ever open
                self._mediaOnly = True
                self._default.close()
            self.video._addTransceivers(pc, False)
            self.audio._addTransceivers(pc, False)

    async def _setRemoteWithoutMdns(
        self, pc: RTCPeerConnection, description: RTCSessionDescription
    ) -> None:
        # The peer's .local (mDNS) candidates are looked up after the description is set, off
        # the path to the answer and the first frame (see _ice_hooks).
        deferred = None
        if mdns_deferral_supported():
            sdp, deferred = defer_mdns_candidates(description.sdp)
            if deferred:
                description = RTCSessionDescription(sdp=sdp, type=description.type)
        await pc.setRemoteDescription(description)
        if deferred and pc not in self._mdnsTasks:
            self._mdnsTasks[pc] = asyncio.get_running_loop().create_task(
                add_deferred_candidates(pc, deferred)
            )

    def _armConnectTimer(self) -> None:
        if (
            self._connectTimeout is None
            or self._connectTimer is not None
            or self._resume.state != "new"  # a resume: the resume window bounds it
        ):
            return
        self._connectTimer = asyncio.get_running_loop().call_later(
            self._connectTimeout, self._connectTimedOut
        )

    def _connectTimedOut(self) -> None:
        self._connectTimer = None
        pc = self._pc
        if pc is None or self._closedFlag or self._closing or pc.connectionState == "connected":
            return
        self._setError(
            ConnectionLost(
                f"could not connect within {self._connectTimeout:g} s (ICE state "
                f"{pc.iceConnectionState!r}): the peers cannot reach each other, or the peer "
                "went away; across NATs, configure a STUN or TURN server"
            )
        )

    # ------------------------------------------------------------------ events from aiortc

    def _onConnectionState(self, pc: RTCPeerConnection) -> None:
        if pc is not self._pc:
            return  # a transport we already let go of
        state = pc.connectionState
        self._log.debug("connection state %s", state)
        if state == "connected":
            timer, self._connectTimer = self._connectTimer, None
            if timer is not None:
                timer.cancel()
            for handler in (self.video, self.audio):
                try:
                    handler._onConnected(pc)
                except Exception as exc:
                    self._log.exception("%r failed to start", handler)
                    self._setError(exc)
                    return
            if pc.sctp is None:
                self._setReady(True)
                self._transportUp()
        elif state == "failed":
            self._linkLost(
                ConnectionLost("the WebRTC connection failed (ICE or DTLS): the peer is "
                               "unreachable or stopped answering")
            )
        elif state == "closed" and not (self._closedFlag or self._closing):
            if self._mayResume():
                self._linkLost(ConnectionLost("the transport closed without the peer saying "
                                              "goodbye"))
            else:
                self._log.info("the peer closed the connection")
                self.close()

    def _onDefaultOpen(self) -> None:
        self._setReady(True)

    def _onDefaultClosed(self) -> None:
        if self._mediaOnly:
            return  # closed on purpose: this peer has no data channel at all
        if not (self._closedFlag or self._closing) and self._pc is not None:
            if self._pc.sctp is not None:
                self._log.info("the peer closed the default data channel")
            self.close()

    def _onRemoteChannel(self, pc: RTCPeerConnection, rtc: Any) -> None:
        if pc is not self._pc:
            return
        label = rtc.label
        existing = self._channels.get(label)
        if (
            existing is not None
            and not existing._local
            and existing._rtc is None
            and not existing.closed
        ):  # a resumed session: the peer's channel of the next transport
            existing._attach(rtc)
            return
        if label == DEFAULT_CHANNEL:
            if self._default._rtc is None:
                self._default._attach(rtc)
                return
            self._log.warning("the peer opened a second 'default' channel; closing it")
            rtc.close()
            return
        channel = DataChannel(rtc, logger=_log)
        if label in self._channels and not self._channels[label].closed:
            self._log.warning(
                "the peer opened a second data channel named %r; getDataChannel(%r) keeps "
                "returning the first one (the new one is delivered to onDataChannel)",
                label,
                label,
            )
        else:
            self._addChannel(channel)
        try:
            self._remoteChannels.put_nowait(channel)
        except Exception:
            self._log.exception("onDataChannel delivery failed")

    def _onTrack(self, pc: RTCPeerConnection, track: Any) -> None:
        if pc is not self._pc:
            return
        kind = getattr(track, "kind", None)
        handler = self.video if kind == "video" else self.audio if kind == "audio" else None
        if handler is None:
            self._log.warning("ignoring a remote track of kind %r", kind)
            return
        handler._onRemoteTrack(track)

    # ------------------------------------------------------------------ heartbeat

    def _createHeartbeat(self, pc: RTCPeerConnection) -> None:
        if self._heartbeatChannel is not None:
            return
        channel = pc.createDataChannel(
            HEARTBEAT_LABEL,
            negotiated=True,
            id=HEARTBEAT_CHANNEL_ID,
            ordered=False,
            maxRetransmits=0,
        )
        channel.on("open", self._onHeartbeatOpen)
        channel.on("message", self._onHeartbeatMessage)
        self._heartbeatChannel = channel
        self._heartbeat.advertise_resume = (
            self._role == "offerer" and self._resumeSignal is not None and self._resume.enabled
        )

    def _now(self) -> float:
        loop = self._loop
        return loop.time() if loop is not None else 0.0

    def _onHeartbeatOpen(self) -> None:
        if self._closedFlag:
            return
        self._heartbeat.start(self._now())
        self._onHeartbeatTimer()

    def _onHeartbeatMessage(self, message: Any) -> None:
        reply = self._heartbeat.receive(message, self._now())
        if reply is not None:
            self._sendHeartbeat(reply)
        elif self._heartbeat.peer_said_bye and not (self._closedFlag or self._closing):
            self._log.info("the peer closed the connection (it said goodbye)")
            self.close()

    def _sendHeartbeat(self, text: str) -> None:
        channel = self._heartbeatChannel
        if channel is None or channel.readyState != "open":
            return
        try:
            channel.send(text)
        except Exception as exc:
            self._log.debug("heartbeat not sent: %r", exc)

    def _onHeartbeatTimer(self) -> None:
        self._heartbeatTimer = None
        loop = self._loop
        if self._closedFlag or loop is None:
            return
        heartbeat = self._heartbeat
        now = loop.time()
        for channel in (self._default, *self._channels.values()):
            if channel.last_received is not None:
                heartbeat.heard(channel.last_received)
        if heartbeat.expired(now):
            silence = heartbeat.silence(now) or 0.0
            self._linkLost(
                PeerVanished(
                    f"the peer vanished: nothing received for {silence:.1f} s (heartbeat "
                    f"timeout {heartbeat.timeout:g} s); its process was killed, its tab "
                    "closed or the network cut"
                )
            )
            return
        if heartbeat.ping_due(now):
            self._sendHeartbeat(heartbeat.make_ping(now))
        wakeup = heartbeat.next_wakeup()
        if wakeup is not None:
            self._heartbeatTimer = loop.call_at(wakeup, self._onHeartbeatTimer)

    # ------------------------------------------------------------------ resumable sessions

    def set_resume_signaling(self, send_offer: Callable[[dict[str, str]], Any] | None) -> None:
        """How this (offering) side re-establishes a lost link: ``await send_offer(offer)``
        takes our new offer (``{"sdp", "type": "offer"}``) to the peer through the same path as
        the first one and returns its answer (the peer calls :meth:`accept_resume`). It may
        raise :class:`SessionGone` when the peer refuses the session (attempts stop and the
        connection closes); any other exception, or taking longer than the attempt timeout
        (3 s), fails one attempt, and the next follows after a back-off (0.2 s doubling up to
        1 s) until the resume window expires. It is cancelled when an attempt times out or the
        connection closes. None: do not resume (a lost link closes the connection).
        ``rtcbot.web.connect`` and the relay set it for you. Call it before connecting, so the
        peer learns (in the heartbeat) that it should wait for the resume.
        """
        if send_offer is not None and not callable(send_offer):
            raise TypeError(f"send_offer must be a coroutine function or None, got "
                            f"{send_offer!r}")
        self._resumeSignal = send_offer
        self._heartbeat.advertise_resume = (
            self._role == "offerer" and send_offer is not None and self._resume.enabled
        )

    async def accept_resume(self, description: Any) -> dict[str, str]:
        """Answer the peer's resume offer (on the answering side): the session goes on over a
        new transport, with the same channels, subscriptions and tracks. Returns our answer,
        once ICE gathering is complete. Raises :class:`InvalidDescription` for a malformed
        offer and :class:`SignalingError` when this connection cannot resume (it is closed,
        never connected, made the offer itself, or has ``resume_window=0``). Cancelling it
        leaves the link lost; the peer's next attempt starts over."""
        checked = validate_description(description)
        if checked.type != "offer":
            raise InvalidDescription(f"a resume needs an offer, got an {checked.type!r}")
        async with self._lock():
            if self._closedFlag or self._closing:
                raise SignalingError("the connection is closed: the session cannot resume")
            if self._role != "answerer":
                raise SignalingError("only the answering side accepts a resume offer")
            if not self._resume.enabled:
                raise SignalingError("this connection does not resume (resume_window=0)")
            if self._resume.state == "new":
                raise SignalingError("this connection was never connected: nothing to resume")
            self._heartbeat.peer_resumes = True
            if self._resume.up:  # the peer noticed the loss before we did
                self._linkLost(ConnectionLost("the peer re-established the link"))
            else:
                self._dropTransport()  # an earlier attempt's transport, if any
            pc = self._ensurePc()
            await self._setRemote(pc, checked)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
            return _as_dict(pc.localDescription)

    @property
    def link_up(self) -> bool:
        """True while the session has a working transport (False before it first connects,
        during a gap, and once closed)."""
        return self._resume.up and not self._closedFlag

    @property
    def resume_window(self) -> float | None:
        """Seconds a lost link may take to come back (None: forever; 0: no resume)."""
        return self._resume.window

    def link_statistics(self) -> ResumeStatistics:
        """What the link went through: losses, restores, attempts, gap lengths (see
        :class:`~rtcbot.connection.ResumeStatistics`)."""
        return self._resume.statistics(self._now())

    def on_link_lost(self, callback: Any = None) -> Any:
        """Run ``callback`` each time the link is lost (the session goes on and tries to
        resume): a function or coroutine function gets the :class:`ConnectionLost` saying
        why; an object with ``put_nowait`` receives it. Returns ``callback`` (a decorator).
        With no argument, ``reason = await conn.on_link_lost()`` waits for the next loss
        (None if the connection closes first; cancelling the await is harmless). Stop the
        robot here if it must not wait for the control timeout."""
        return self._subscribeEvent("link_lost", callback)

    def on_link_restored(self, callback: Any = None) -> Any:
        """Run ``callback`` (no argument; ``put_nowait`` receives None) each time a lost link
        is back. With no argument, ``await conn.on_link_restored()`` waits for the next
        restore (None also if the connection closes first)."""
        return self._subscribeEvent("link_restored", callback)

    def _mayResume(self) -> bool:
        """Whether a lost link is resumed rather than closing the session."""
        if self._closedFlag or self._closing or not self._resume.enabled:
            return False
        if self._resume.state not in ("up", "lost") or self._heartbeat.peer_said_bye:
            return False
        if self._role == "offerer":
            return self._resumeSignal is not None
        return self._role == "answerer" and self._heartbeat.peer_resumes

    def _trackMayResume(self, receiver: Any) -> bool:
        """A remote track ended: True if with its transport, in a session that resumes (the
        receiver then waits for the next transport's track)."""
        if not self._mayResume():
            return False
        if self._resume.is_lost:
            return True
        rtp = getattr(receiver, "receiver", None)
        dtls = getattr(rtp, "transport", None)
        return getattr(dtls, "state", "closed") != "connected"

    def _channelTransportClosed(self, channel: DataChannel) -> bool:
        """An aiortc data channel closed: True if it closed with its transport in a session
        that resumes (the channel is kept for the next transport)."""
        if self._closedFlag or self._closing:
            return False
        if self._resume.is_lost:
            return True
        pc = self._pc
        sctp = None if pc is None else pc.sctp
        if sctp is not None and sctp.state == "connected":
            return False  # the peer closed this channel, on purpose
        if not self._mayResume():
            return False
        self._linkLost(ConnectionLost(
            "the transport closed without the peer saying goodbye"
        ))
        return True

    def _transportUp(self) -> None:
        """The transport works (the default channel opened; for a media-only peer, ICE and
        DTLS connected)."""
        if self._closedFlag or self._closing:
            return
        if self._resume.connected(self._now()):
            timer, self._windowTimer = self._windowTimer, None
            if timer is not None:
                timer.cancel()
            waiter, self._linkUp = self._linkUp, None
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            gap = self._resume.statistics().last_gap_s or 0.0
            self._log.info("link restored after %.2f s", gap)
            self._resolveWaiters("link_restored", None)
            self._fire("link_restored")

    def _linkLost(self, reason: ConnectionLost) -> None:
        """The link is lost: resume if the session may, else fail with ``reason``."""
        if self._closedFlag or self._closing:
            return
        if not self._mayResume():
            self._setError(reason)
            return
        if not self._resume.lost(self._now()):
            return  # already lost (an attempt's transport failed: the resume loop handles it)
        window = self._resume.window
        self._log.warning(
            "link lost (%s); the session waits %s for it to come back", reason,
            "forever" if window is None else f"{window:g} s",
        )
        self._dropTransport()
        loop = self._loop
        deadline = self._resume.deadline
        if loop is not None and deadline is not None:
            self._windowTimer = loop.call_at(deadline, self._windowExpired)
        if loop is not None:
            self._linkUp = loop.create_future()
        if self._role == "offerer" and loop is not None:
            self._resumeTask = self._spawn(
                self._resumeLoop(), critical=False, name="rtcbot resume session"
            )
        self._resolveWaiters("link_lost", reason)
        self._fire("link_lost", reason)

    def _dropTransport(self) -> None:
        """Let go of the current peer connection (closed in the background) and keep
        everything that lives above it for the next one."""
        pc, self._pc = self._pc, None
        for timer in (self._heartbeatTimer, self._connectTimer):
            if timer is not None:
                timer.cancel()
        self._heartbeatTimer = self._connectTimer = None
        heartbeat_channel, self._heartbeatChannel = self._heartbeatChannel, None
        if heartbeat_channel is not None:
            heartbeat_channel.remove_all_listeners()
        self._heartbeat.reset()
        requeue = []
        for channel in (self._default, *self._channels.values()):
            if channel.closed:
                continue
            channel._detach()
            if channel._local and channel is not self._default and channel not in (
                self._unattached
            ):
                requeue.append(channel)
        self._unattached = requeue + self._unattached
        self.video._releaseTransport()
        self.audio._releaseTransport()
        loop = self._loop
        if pc is not None:
            pc.remove_all_listeners()
            if loop is not None and not loop.is_closed():
                task = loop.create_task(self._closePc(pc))
                self._oldPcTasks.add(task)
                task.add_done_callback(self._oldPcTasks.discard)

    def _windowExpired(self) -> None:
        self._windowTimer = None
        if self._closedFlag or self._closing or not self._resume.expired(self._now()):
            return
        self._setError(PeerVanished(
            f"the link was lost and did not come back within the resume window "
            f"({self._resume.window:g} s)"
        ))

    async def _resumeLoop(self) -> None:
        policy = self._resume
        loop = asyncio.get_running_loop()
        while policy.is_lost and not (self._closedFlag or self._closing):
            start = policy.next_attempt()
            if start is None:
                return
            delay = start - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the back-off (a timer, not a synchronisation)
                continue
            policy.attempt_started(loop.time())
            try:
                async with aio_timeout(policy.attempt_timeout):
                    await self._attemptResume()
            except SessionGone as exc:
                self._log.warning("the session cannot resume: %s", exc)
                self._setError(exc)
                return
            except Exception as exc:  # includes the attempt's timeout
                self._log.info("resume attempt %d failed: %r", policy.statistics().attempts, exc)
                policy.attempt_failed(loop.time())
                if policy.is_lost:
                    self._dropTransport()
            else:
                return

    async def _attemptResume(self) -> None:
        signal = self._resumeSignal
        if signal is None:
            raise SessionGone("no resume signalling is set")
        async with self._lock():
            pc = self._ensurePc()
            offer = await self._offer(pc)
        answer = validate_description(await signal(offer))
        if answer.type != "answer":
            raise InvalidDescription(f"the resume offer got an {answer.type!r}, not an answer")
        async with self._lock():
            if pc is not self._pc:
                raise ConnectionLost("the attempt's transport was dropped")
            await self._setRemote(pc, answer)
        waiter = self._linkUp
        if waiter is not None and self._resume.is_lost:
            await asyncio.shield(waiter)

    # ------------------------------------------------------------------ messages (default channel)

    def put_nowait(self, message: Any) -> None:
        """Send ``message`` on the default data channel; see :meth:`DataChannel.put_nowait`
        (encoding errors name the value; :class:`SubscriptionFull` when too many messages wait
        for the channel to open)."""
        self._default.put_nowait(message)

    def send(self, message: Any) -> None:
        """Alias of :meth:`put_nowait` (RTCBot 0.2.5)."""
        self._default.put_nowait(message)

    async def put(self, message: Any) -> None:
        """Send ``message``, waiting for the channel to open and for room in its send buffer;
        see :meth:`DataChannel.put` (cancelling the wait means the message is not sent)."""
        await self._default.put(message)

    def putSubscription(self, subscription: Any) -> None:
        """Send every element of ``subscription`` on the default channel; see
        :meth:`DataChannel.putSubscription`."""
        self._default.putSubscription(subscription)

    def stopSubscription(self) -> None:
        """Stop sending from the ``putSubscription`` source."""
        self._default.stopSubscription()

    @property
    def subscription(self) -> Any:
        """The ``putSubscription`` source of the default channel, or None."""
        return self._default.subscription

    def subscribe(self, subscription: Any = None) -> Any:
        """Receive the messages of the default data channel; see
        :meth:`BaseSubscriptionProducer.subscribe`. Messages that arrived before the first
        subscriber are kept for it."""
        return self._default.subscribe(subscription)

    def unsubscribe(self, subscription: Any = None) -> None:
        """Stop delivering messages to ``subscription``."""
        self._default.unsubscribe(subscription)

    def unsubscribeAll(self) -> None:
        """Remove every message subscriber."""
        self._default.unsubscribeAll()

    async def get(self) -> Any:
        """The next message from the default data channel. Raises
        :class:`~rtcbot.SubscriptionClosed` once the connection is closed and the messages
        received so far are read. Cancelling the wait loses nothing."""
        return await self._default.get()

    def set_control_timeout(
        self, seconds: float | None, on_timeout: Callable[[], Any] | None = None
    ) -> None:
        """The dead-man switch: run ``on_timeout`` when no message has arrived on the default
        data channel for ``seconds``, and when the connection closes (peer gone, heartbeat
        timeout, ``close()``), unless it already ran for the current silence. Every message
        re-arms it. ``seconds=None`` removes it. See :meth:`DataChannel.set_control_timeout`.

        ::

            conn.set_control_timeout(0.5, motors.stop)
        """
        self._default.set_control_timeout(seconds, on_timeout)

    # ------------------------------------------------------------------ named data channels

    def addDataChannel(self, name: str, ordered: bool = True) -> DataChannel:
        """Create a data channel named ``name`` and return it.

        Channels added before signalling are part of the offer/answer; channels added later
        open as soon as the connection is up (data channels need no renegotiation). Raises
        ``KeyError`` for a name already in use or reserved (``"default"``,
        ``"rtcbot-heartbeat"``) and ``TypeError`` for a name that is not a str.
        """
        if not isinstance(name, str):
            raise TypeError(f"a data channel name must be a str, got {describe(name)}")
        if name in _RESERVED:
            raise KeyError(
                f"the data channel name {name!r} is reserved by rtcbot (the default channel is "
                "the connection itself: use conn.put_nowait/conn.subscribe)"
            )
        existing = self._channels.get(name)
        if existing is not None and not existing.closed:
            raise KeyError(f"a data channel named {name!r} already exists on this connection")
        if self._closedFlag:
            raise SignalingError(f"the connection is closed: cannot add data channel {name!r}")
        channel = DataChannel(name=name, ordered=ordered, logger=_log)
        self._addChannel(channel)
        pc = self._pc
        if pc is not None and self._role is not None and (
            pc.sctp is not None or self._role == "offerer"
        ) and pc.connectionState not in ("failed", "closed"):
            channel._attach(pc.createDataChannel(name, ordered=bool(ordered)))
        else:
            self._unattached.append(channel)
        return channel

    def _addChannel(self, channel: DataChannel) -> None:
        self._channels[channel.name] = channel
        channel._transportClosed = self._channelTransportClosed

        def forget() -> None:
            if self._channels.get(channel.name) is channel:
                del self._channels[channel.name]

        channel.onClose(forget)

    def _createPendingChannels(self, pc: RTCPeerConnection) -> None:
        pending, self._unattached = self._unattached, []
        for channel in pending:
            if not channel.closed:
                channel._attach(pc.createDataChannel(channel.name, ordered=channel.ordered))

    def getDataChannel(self, name: str) -> DataChannel:
        """The data channel named ``name`` (added here or opened by the peer). Raises
        ``KeyError`` naming an unknown channel."""
        if name == DEFAULT_CHANNEL:
            raise KeyError(
                "the default channel is the connection itself: use conn.put_nowait, "
                "conn.subscribe and conn.get"
            )
        try:
            return self._channels[name]
        except KeyError:
            known = sorted(self._channels)
            raise KeyError(
                f"no data channel named {name!r} on this connection (known: {known})"
            ) from None

    def onDataChannel(self, callback: Any = None) -> Any:
        """Receive each :class:`DataChannel` the peer opens (not the default one): ``callback``
        is anything ``subscribe`` accepts (a function, a coroutine function, a queue); with no
        argument a subscription is returned (``await sub.get()``). Channels opened before the
        first subscriber are kept for it."""
        return self._remoteChannels.subscribe(callback)

    # ------------------------------------------------------------------ statistics

    async def stats(self) -> dict[str, Any]:
        """Numbers about the connection, for a program to read::

            {
              "state": "new" | "connecting" | "connected" | "failed" | "lost" | "closed",
              "role": "offerer" | "answerer" | None,
              "rtt_ms": float | None,        # heartbeat round trip, averaged
              "heartbeat": {"rtt_ms", "rtt_min_ms", "rtt_avg_ms", "pings_sent",
                            "pongs_received", "peer_speaks_heartbeat"},
              "rtcp_rtt_ms": float | None,   # media round trip from RTCP reports (if sending)
              "link": {"state", "losses", "restores", "attempts", "failed_attempts",
                       "last_gap_s", "longest_gap_s", "gap_s"},   # see link_statistics()
              "channels": {name: {"sent", "received", "not_json", "refused", "failed",
                                  "pending", "buffered_bytes"}},   # "default" included
              "video": {...}, "audio": {...},  # per track, from conn.video / conn.audio
            }

        Times in milliseconds. Cancelling it has no effect on the connection.
        """
        pc = self._pc
        heartbeat = dataclasses.asdict(self._heartbeat.statistics())
        channels = {DEFAULT_CHANNEL: dataclasses.asdict(self._default.statistics())}
        for name, channel in self._channels.items():
            channels[name] = dataclasses.asdict(channel.statistics())
        result: dict[str, Any] = {
            "state": "closed" if self._closedFlag else (
                "lost" if self._resume.is_lost else (pc.connectionState if pc else "new")
            ),
            "role": self._role,
            "rtt_ms": heartbeat["rtt_avg_ms"],
            "heartbeat": heartbeat,
            "rtcp_rtt_ms": None,
            "channels": channels,
            "link": dataclasses.asdict(self.link_statistics()),
            "video": {},
            "audio": {},
        }
        if pc is None or self._closedFlag:
            return result
        try:
            report = await pc.getStats()
        except Exception as exc:  # closing under us
            self._log.debug("getStats failed: %r", exc)
        else:
            rtts = [
                s.roundTripTime * 1000.0
                for s in report.values()
                if s.type == "remote-inbound-rtp" and getattr(s, "roundTripTime", None)
                and math.isfinite(s.roundTripTime)
            ]
            if rtts:
                result["rtcp_rtt_ms"] = sum(rtts) / len(rtts)
        for key, handler in (("video", self.video), ("audio", self.audio)):
            try:
                result[key] = await handler._stats(pc)
            except Exception as exc:
                self._log.debug("%s stats failed: %r", key, exc)
        return result

    # ------------------------------------------------------------------ closing

    def close(self) -> _Closing:  # type: ignore[override]
        """Close the connection: both peers see it close, data channels and media end, readers
        get :class:`~rtcbot.SubscriptionClosed`, ``onClose`` fires, the control timeout action
        runs if due. Returns at once; ``await conn.close()`` also waits until the peer
        connection is shut down (milliseconds). Idempotent."""
        if self._closedFlag or self._closing:
            return _Closing(self._pcCloseTask)
        self._closing = True  # the close events below must not re-enter
        self._closedChannels = [*self._channels.values(), *self._unattached]
        self._resume.close()
        for timer in (self._heartbeatTimer, self._connectTimer, self._windowTimer):
            if timer is not None:
                timer.cancel()
        self._heartbeatTimer = self._connectTimer = self._windowTimer = None
        heartbeat_channel = self._heartbeatChannel
        sctp = None if self._pc is None else self._pc.sctp
        if (
            heartbeat_channel is not None
            and heartbeat_channel.readyState == "open"
            and sctp is not None
            and sctp.transport.state == "connected"  # DTLS still up: the goodbye can go
        ):
            for _ in range(3):  # unreliable channel: say it more than once
                self._sendHeartbeat(self._heartbeat.make_bye())
        waiter, self._linkUp = self._linkUp, None
        if waiter is not None and not waiter.done():
            waiter.cancel()
        self._resolveWaiters("link_lost", None)
        self._resolveWaiters("link_restored", None)
        for closer in (
            self._default.close,
            *(c.close for c in list(self._channels.values())),
            *(c.close for c in self._unattached),
            self._remoteChannels.close,
            self.video.close,
            self.audio.close,
        ):
            try:
                closer()
            except Exception:
                self._log.exception("error while closing %r", closer)
        pc = self._pc
        loop = self._loop
        if pc is not None and loop is not None and not loop.is_closed():
            try:
                self._pcCloseTask = loop.create_task(self._closePc(pc))
            except RuntimeError as exc:
                self._log.debug("peer connection not closed: %r", exc)
        super().close()
        return _Closing(self._pcCloseTask)

    async def _closePc(self, pc: RTCPeerConnection) -> None:
        mdns = self._mdnsTasks.pop(pc, None)
        if mdns is not None:
            mdns.cancel()
            await asyncio.wait([mdns])
        try:
            await pc.close()
        except Exception as exc:
            self._log.debug("closing the peer connection: %r", exc)

    async def _waitPcClosed(self) -> None:
        task = self._pcCloseTask
        if task is not None:
            await asyncio.shield(task)
        if self._oldPcTasks:
            await asyncio.gather(*list(self._oldPcTasks), return_exceptions=True)
        for channel in self._closedChannels:
            await channel._waitClosed()

    def __repr__(self) -> str:
        state = "closed" if self._closedFlag else ("ready" if self._readyFlag else "not ready")
        return f"<RTCConnection {self._role or 'unconnected'} {state}>"


async def close_all(connections: Any, timeout: float = 5.0) -> bool:
    """Close every connection of ``connections`` (an iterable of :class:`RTCConnection`) and wait,
    at most ``timeout`` seconds, until they have finished closing. Returns False (and logs a
    warning) if some had not finished by then. Cancelling the wait does not stop the closes."""
    connections = list(connections)
    for conn in connections:
        conn.close()
    if not connections:
        return True
    try:
        async with aio_timeout(timeout):
            await asyncio.gather(*connections, return_exceptions=True)
    except TIMEOUT_ERRORS:
        _log.warning("%d connections had not finished closing after %g s", len(connections),
                     timeout)
        return False
    return True
