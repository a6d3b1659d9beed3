"""RTCConnection: a WebRTC peer connection as an rtcbot producer and consumer."""

from __future__ import annotations

import asyncio
import dataclasses
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
from ._heartbeat import HEARTBEAT_CHANNEL_ID, HEARTBEAT_LABEL, Heartbeat
from ._media import ConnectionAudioHandler, ConnectionVideoHandler

__all__ = [
    "ConnectionLost",
    "InvalidDescription",
    "PeerVanished",
    "RTCConnection",
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
    """

    def __init__(
        self,
        defaultChannelOrdered: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
        rtcConfiguration: Any = None,
        *,
        connect_timeout: float | None = 20.0,
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
        self._channels: dict[str, DataChannel] = {}
        self._unattached: list[DataChannel] = []
        self._remoteChannels = SubscriptionProducer(logger=_log)
        self._heartbeat = Heartbeat()
        self._mediaOnly = False
        self._heartbeatChannel: Any = None
        self._heartbeatTimer: asyncio.TimerHandle | None = None
        self._pcCloseTask: asyncio.Task[None] | None = None
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
            pc.on("connectionstatechange", self._onConnectionState)
            pc.on("datachannel", self._onRemoteChannel)
            pc.on("track", self._onTrack)
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
            await pc.setRemoteDescription(description)
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

    def _armConnectTimer(self) -> None:
        if self._connectTimeout is None or self._connectTimer is not None:
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

    def _onConnectionState(self) -> None:
        pc = self._pc
        if pc is None:
            return
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
        elif state == "failed":
            self._setError(
                ConnectionLost("the WebRTC connection failed (ICE or DTLS): the peer is "
                               "unreachable or stopped answering")
            )
        elif state == "closed" and not (self._closedFlag or self._closing):
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

    def _onRemoteChannel(self, rtc: Any) -> None:
        label = rtc.label
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

    def _onTrack(self, track: Any) -> None:
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
            self._setError(
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
        ):
            channel._attach(pc.createDataChannel(name, ordered=bool(ordered)))
        else:
            self._unattached.append(channel)
        return channel

    def _addChannel(self, channel: DataChannel) -> None:
        self._channels[channel.name] = channel

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
              "state": "new" | "connecting" | "connected" | "failed" | "closed",
              "role": "offerer" | "answerer" | None,
              "rtt_ms": float | None,        # heartbeat round trip, averaged
              "heartbeat": {"rtt_ms", "rtt_min_ms", "rtt_avg_ms", "pings_sent",
                            "pongs_received", "peer_speaks_heartbeat"},
              "rtcp_rtt_ms": float | None,   # media round trip from RTCP reports (if sending)
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
            "state": "closed" if self._closedFlag else (pc.connectionState if pc else "new"),
            "role": self._role,
            "rtt_ms": heartbeat["rtt_avg_ms"],
            "heartbeat": heartbeat,
            "rtcp_rtt_ms": None,
            "channels": channels,
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
        for timer in (self._heartbeatTimer, self._connectTimer):
            if timer is not None:
                timer.cancel()
        self._heartbeatTimer = self._connectTimer = None
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
        try:
            await pc.close()
        except Exception as exc:
            self._log.debug("closing the peer connection: %r", exc)

    async def _waitPcClosed(self) -> None:
        task = self._pcCloseTask
        if task is not None:
            await asyncio.shield(task)
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
