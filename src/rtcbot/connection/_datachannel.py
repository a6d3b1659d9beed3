"""DataChannel: one WebRTC data channel as an rtcbot producer and consumer."""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..base.base import SubscriptionProducerConsumer
from ..base.errors import SubscriptionClosed, SubscriptionFull
from ..base.subscriptions import DEFAULT_QUEUE_SIZE, describe
from ._codec import MessageDecoder, encode_message
from ._heartbeat import ControlTimeout
from ._sctp_hooks import SctpPacer, sctp_pacer

if TYPE_CHECKING:
    from aiortc import RTCDataChannel

__all__ = ["DataChannel", "DataChannelStatistics"]

_log = logging.getLogger("rtcbot.connection")

#: Messages kept while the channel is not open yet (``put_nowait`` raises
#: :class:`SubscriptionFull` beyond this).
MAX_PENDING_MESSAGES = DEFAULT_QUEUE_SIZE
#: Bytes accepted and not yet sent (waiting for the channel to open, in rtcbot's send queue or
#: in aiortc's), beyond which ``put_nowait`` raises :class:`SubscriptionFull`
#: (``await put()`` waits instead).
MAX_BUFFERED_BYTES = 16 * 1024 * 1024
#: ``await put()`` and ``putSubscription`` wait while more than this many bytes are buffered...
HIGH_WATER_BYTES = 1024 * 1024
#: ...until it drops to this.
LOW_WATER_BYTES = 256 * 1024
#: Messages go to aiortc only while its SCTP transport holds fewer chunks than this; the rest
#: wait, in order, in the channel's own send queue and go as acknowledgements come back.
#: aiortc's cost per acknowledgement grows with the chunks outstanding, and a large burst
#: overflows the peer's socket buffer (see ``_sctp_hooks``).
PACE_CHUNKS = 128
#: Without the SCTP hook (an aiortc that does not fit), messages go to aiortc only while its
#: ``bufferedAmount`` is below this...
PACE_FALLBACK_BYTES = 64 * 1024
#: ...and the rest go when it drops to this (aiortc's ``bufferedamountlow`` event).
PACE_LOW_BYTES = 16 * 1024


def _payload_size(payload: str | bytes) -> int:
    """Bytes that ``payload`` takes on the wire (UTF-8 for text, as aiortc counts it)."""
    if isinstance(payload, str) and not payload.isascii():
        return len(payload.encode("utf-8", "surrogatepass"))
    return len(payload)


@dataclass(frozen=True)
class DataChannelStatistics:
    """Counters of one data channel.

    * ``sent`` -- messages handed to the transport.
    * ``received`` -- messages received (delivered to subscribers, or kept for the first one).
    * ``not_json`` -- received text messages that were not JSON (delivered as ``str``).
    * ``refused`` -- ``put_nowait`` calls refused with :class:`SubscriptionFull` (too many
      messages waiting for the channel to open, or too many bytes buffered).
    * ``failed`` -- messages from a ``putSubscription`` source that could not be encoded or
      sent (each logged with the value).
    * ``pending`` -- messages waiting for the channel to open.
    * ``buffered_bytes`` -- bytes accepted and not yet sent (in rtcbot's send queue or handed
      to the transport).
    * ``paced`` -- messages accepted on the open channel and waiting, in order, in rtcbot's
      send queue for the transport to have room (see :data:`PACE_CHUNKS`).
    * ``peak_paced`` -- the most messages that queue has held.
    """

    sent: int
    received: int
    not_json: int
    refused: int
    failed: int
    pending: int
    buffered_bytes: int
    paced: int = 0
    peak_paced: int = 0


class DataChannel(SubscriptionProducerConsumer):
    """A data channel: ``put_nowait``/``send``/``await put``/``putSubscription`` send messages,
    ``subscribe``/``get`` receive them.

    With ``json=True`` (always the case for channels made by :class:`RTCConnection`) messages
    follow rtcbot's rule: values are JSON-encoded on the caller's stack (an unencodable value
    raises naming it, and nothing else is affected), ``bytes`` travel as binary messages, text
    that is not JSON arrives as ``str``. With ``json=False`` only ``str`` and ``bytes`` are sent
    and messages arrive as they were sent.

    Messages put before the channel opens are kept (at most :data:`MAX_PENDING_MESSAGES`) and sent
    in order when it opens. Messages that arrive before anyone subscribed are kept for the first
    subscriber (bounded). The channel is ready when open, and closes when either side closes it
    or the connection ends.

    Channels are made by :meth:`RTCConnection.addDataChannel` or received through
    :meth:`RTCConnection.onDataChannel`; ``DataChannel(rtcDataChannel)`` wraps an aiortc channel
    directly (RTCBot 0.2.5 signature).
    """

    def __init__(
        self,
        rtcDataChannel: RTCDataChannel | None = None,
        json: bool = True,
        *,
        name: str | None = None,
        ordered: bool = True,
        logger: logging.Logger | None = None,
    ) -> None:
        if rtcDataChannel is None and name is None:
            raise TypeError("DataChannel needs an aiortc RTCDataChannel or a name")
        if name is None:
            name = rtcDataChannel.label  # type: ignore[union-attr]
        if not isinstance(name, str):
            raise TypeError(f"a data channel name must be a str, got {name!r}")
        super().__init__(logger=logger or _log)
        self._name = name
        self._ordered = bool(ordered if rtcDataChannel is None else rtcDataChannel.ordered)
        self._json = bool(json)
        self._decoder = MessageDecoder(name, self._json)
        self._rtc: Any = None
        self._open = False
        self._pending: collections.deque[str | bytes] = collections.deque()
        self._pendingBytes = 0
        # send queue of the open channel: (payload, size), sent in order as aiortc has room
        self._paced: collections.deque[tuple[str | bytes, int]] = collections.deque()
        self._pacedBytes = 0
        self._peakPaced = 0
        self._pacer: SctpPacer | None = None
        self._roomWaiters: list[asyncio.Future[None]] = []
        self._reader: asyncio.Task[None] | None = None
        self._sent = 0
        self._received = 0
        self._refused = 0
        self._failed = 0
        #: loop time of the last received message (None before the first one)
        self.last_received: float | None = None
        self._control: ControlTimeout | None = None
        self._controlAction: Callable[[], Any] | None = None
        self._controlTimer: asyncio.TimerHandle | None = None
        self._controlTasks: set[asyncio.Task[Any]] = set()
        #: Set by the connection: called when the aiortc channel closes; returns True when the
        #: connection keeps this channel for the next transport (a lost link) instead.
        self._transportClosed: Callable[[DataChannel], bool] | None = None
        #: Set by the connection: called each time an aiortc channel opens (also after a
        #: resume, when ``onReady`` does not fire again).
        self._opened: Callable[[], Any] | None = None
        #: True for a channel this side created (it recreates it on a new transport).
        self._local = rtcDataChannel is None
        self._addFinisher(self._waitControlTasks)
        if rtcDataChannel is not None:
            self._attach(rtcDataChannel)

    # ------------------------------------------------------------------ properties

    @property
    def name(self) -> str:
        """The channel's label."""
        return self._name

    @property
    def ordered(self) -> bool:
        """True if the channel delivers messages in order."""
        return self._ordered

    @property
    def bufferedAmount(self) -> int:
        """Bytes accepted on the open channel and not yet sent: those in rtcbot's send queue
        plus those handed to aiortc and not yet given to SCTP."""
        rtc = self._rtc
        return self._pacedBytes + (rtc.bufferedAmount if rtc is not None else 0)

    def statistics(self) -> DataChannelStatistics:
        """The counters of this channel (see :class:`DataChannelStatistics`)."""
        return DataChannelStatistics(
            sent=self._sent,
            received=self._received,
            not_json=self._decoder.not_json,
            refused=self._refused,
            failed=self._failed,
            pending=len(self._pending),
            buffered_bytes=self.bufferedAmount,
            paced=len(self._paced),
            peak_paced=self._peakPaced,
        )

    # ------------------------------------------------------------------ aiortc side

    def _attach(self, rtc: RTCDataChannel) -> None:
        """Bind to the aiortc channel (on the loop)."""
        if self._rtc is not None:
            raise RuntimeError(f"data channel {self._name!r} is already attached")
        self._ensureLoop()
        self._rtc = rtc
        self._ordered = rtc.ordered
        rtc.bufferedAmountLowThreshold = PACE_LOW_BYTES
        rtc.on("message", self._onMessage)
        rtc.on("open", self._onOpen)
        rtc.on("close", self._onRtcClose)
        rtc.on("bufferedamountlow", self._drain)
        if self._closedFlag:
            self._closeRtc()
        elif rtc.readyState == "open":
            self._onOpen()
        elif rtc.readyState == "closed":
            self.close()

    def _detach(self) -> None:
        """Let go of the aiortc channel (its transport is gone) but stay open: messages put
        from now on wait in the pending queue (bounded) and go out, in order, once
        :meth:`_attach` binds a channel of the next transport and it opens."""
        rtc, self._rtc = self._rtc, None
        self._open = False
        if rtc is None:
            return
        for event, handler in (
            ("message", self._onMessage),
            ("open", self._onOpen),
            ("close", self._onRtcClose),
            ("bufferedamountlow", self._wakeRoomWaiters),
        ):
            try:
                rtc.remove_listener(event, handler)
            except (KeyError, ValueError):
                pass

    def _onOpen(self) -> None:
        if self._closedFlag or self._open:
            return
        self._open = True
        rtc = self._rtc
        pacer = self._pacer = sctp_pacer(rtc.transport)
        if pacer is not None:
            pacer.add_listener(self._drain)
        # What waited for the channel to open joins the send queue, in order.
        paced = self._paced
        for payload in self._pending:
            size = _payload_size(payload)
            paced.append((payload, size))
            self._pacedBytes += size
        self._pending.clear()
        self._pendingBytes = 0
        self._peakPaced = max(self._peakPaced, len(paced))
        self._drain()
        self._setReady(True)
        self._wakeRoomWaiters()
        if self._control is not None:
            self._startControlTimeout()
        opened = self._opened
        if opened is not None:
            opened()

    def _onMessage(self, data: str | bytes) -> None:
        loop = self._loop
        now = loop.time() if loop is not None else 0.0
        self.last_received = now
        self._received += 1
        control = self._control
        if control is not None:
            control.feed(now)
            if self._controlTimer is None:
                self._scheduleControl()
        self._put_nowait(self._decoder.decode(data))

    def _onRtcClose(self) -> None:
        keep = self._transportClosed
        if keep is not None and not self._closedFlag and keep(self):
            return
        self.close()

    def _closeRtc(self) -> None:
        rtc = self._rtc
        if rtc is None or rtc.readyState in ("closing", "closed"):
            return
        try:
            rtc.close()
        except Exception as exc:  # the loop is gone: the transport is gone with it
            self._log.debug("closing aiortc channel %r: %r", self._name, exc)

    # ------------------------------------------------------------------ sending

    def _encode(self, message: Any) -> str | bytes:
        if self._json:
            return encode_message(message)
        if isinstance(message, (str, bytes)):
            return message
        if isinstance(message, (bytearray, memoryview)):
            return bytes(message)
        raise TypeError(
            f"cannot send {describe(message)} on the non-JSON data channel {self._name!r}: "
            "send str or bytes"
        )

    def put_nowait(self, message: Any) -> None:
        """Send ``message`` (see the class docstring for the encoding rule). Never blocks.

        Raises :class:`TypeError`/:class:`ValueError` naming a value that cannot be encoded
        (nothing is sent; the channel keeps working), :class:`SubscriptionFull` when
        :data:`MAX_PENDING_MESSAGES` messages already wait for the channel to open or more than
        :data:`MAX_BUFFERED_BYTES` are buffered (use ``await put()`` to wait instead), and
        :class:`SubscriptionClosed` once closed. If a ``putSubscription`` source was active,
        sending switches back to ``put_nowait`` messages.
        """
        if self._closedFlag:
            raise SubscriptionClosed(
                f"data channel {self._name!r} is closed: cannot send {describe(message)}"
            )
        payload = self._encode(message)
        if self._reader is not None:
            self._stopReader()
        self._sendPayload(payload)

    send = put_nowait

    def _sendPayload(self, payload: str | bytes) -> None:
        size = _payload_size(payload)
        if self._open and not self._pending:
            rtc = self._rtc
            buffered = self._pacedBytes + rtc.bufferedAmount
            if buffered + size > MAX_BUFFERED_BYTES:
                self._refused += 1
                raise SubscriptionFull(
                    f"data channel {self._name!r}: {buffered} bytes are waiting to be "
                    f"sent (the peer or the network is not keeping up); use await put() to wait"
                )
            if not self._paced and self._transportHasRoom():
                try:
                    rtc.send(payload)
                except ValueError as exc:
                    raise ValueError(f"data channel {self._name!r}: {exc}") from None
                except Exception as exc:  # InvalidStateError: closed under us
                    raise SubscriptionClosed(f"data channel {self._name!r} is closed") from exc
                self._sent += 1
                return
            limit = self._pacer.remote_max_message_size() if self._pacer is not None else 0
            if limit and size > limit:  # what aiortc would refuse, refused now
                raise ValueError(
                    f"data channel {self._name!r}: cannot send a message of {size} bytes, the "
                    f"peer only takes messages up to {limit} bytes"
                )
            paced = self._paced
            paced.append((payload, size))
            self._pacedBytes += size
            if len(paced) > self._peakPaced:
                self._peakPaced = len(paced)
            return
        if len(self._pending) >= MAX_PENDING_MESSAGES or (
            self._pendingBytes + size > MAX_BUFFERED_BYTES
        ):
            self._refused += 1
            raise SubscriptionFull(
                f"data channel {self._name!r} is not open yet and already holds "
                f"{len(self._pending)} messages ({self._pendingBytes} bytes); not sending "
                f"{describe(payload)}"
            )
        self._pending.append(payload)
        self._pendingBytes += size

    def _transportHasRoom(self) -> bool:
        """True if aiortc holds little enough that a message can go to it now."""
        pacer = self._pacer
        if pacer is not None:
            return pacer.outstanding() < PACE_CHUNKS
        return self._rtc.bufferedAmount < PACE_FALLBACK_BYTES

    def _drain(self) -> None:
        """Hand queued messages to aiortc, in order, while it has room (after each SACK, when
        its ``bufferedAmount`` drops, when the channel opens); then wake ``put()`` waiters if
        the backlog is low."""
        paced = self._paced
        if paced and self._open:
            rtc = self._rtc
            try:
                while paced and self._transportHasRoom():
                    payload, size = paced[0]
                    try:
                        rtc.send(payload)
                    except ValueError as exc:  # too large for the peer
                        self._failed += 1
                        self._log.error("data channel %r: message not sent: %s", self._name, exc)
                    else:
                        self._sent += 1
                    paced.popleft()
                    self._pacedBytes -= size
            except Exception as exc:  # the channel closed under us: close() counts the rest
                self._log.debug("sending on %r stopped: %r", self._name, exc)
        if self._roomWaiters and self.bufferedAmount <= LOW_WATER_BYTES:
            self._wakeRoomWaiters()

    def _hasRoom(self) -> bool:
        return self._open and not self._pending and self.bufferedAmount <= HIGH_WATER_BYTES

    async def put(self, message: Any) -> None:
        """Send ``message``, waiting while the channel is not open or more than
        :data:`HIGH_WATER_BYTES` wait to be sent (backpressure for bulk data).

        Encoding errors are raised at once, as by :meth:`put_nowait`. Raises
        :class:`SubscriptionClosed` if the channel closes first. Cancelling the wait means the
        message was not sent.
        """
        if self._closedFlag:
            raise SubscriptionClosed(
                f"data channel {self._name!r} is closed: cannot send {describe(message)}"
            )
        payload = self._encode(message)
        if not self._hasRoom():
            await self._waitRoom()
        self._sendPayload(payload)

    async def _waitRoom(self) -> None:
        while not self._closedFlag and not self._hasRoom():
            future = asyncio.get_running_loop().create_future()
            self._roomWaiters.append(future)
            try:
                await future
            finally:
                if future in self._roomWaiters:
                    self._roomWaiters.remove(future)
        if self._closedFlag:
            raise SubscriptionClosed(f"data channel {self._name!r} is closed")

    def _wakeRoomWaiters(self) -> None:
        waiters, self._roomWaiters = self._roomWaiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def putSubscription(self, subscription: Any) -> None:
        """Send every element of ``subscription`` (anything with ``async get()``: a producer,
        a subscription) from now on, replacing the previous source. Elements are read only
        while the channel can take them (it is open and at most :data:`HIGH_WATER_BYTES`
        wait to be sent), so a source's own buffering policy applies. An element that
        cannot be encoded is logged with its value and counted in ``statistics().failed``;
        the next one is sent. When the source ends, sending returns to ``put_nowait``."""
        if not callable(getattr(subscription, "get", None)):
            raise TypeError(
                f"putSubscription needs an object with an async get() method, got "
                f"{subscription!r}"
            )
        if self._closedFlag:
            raise SubscriptionClosed(f"data channel {self._name!r} is closed")
        self._stopReader()
        self._subscription = subscription
        self._reader = self._spawn(
            self._readSource(subscription), name=f"rtcbot data channel {self._name!r} sender"
        )

    def stopSubscription(self) -> None:
        """Stop sending from the ``putSubscription`` source."""
        self._stopReader()

    def _stopReader(self) -> None:
        reader, self._reader = self._reader, None
        self._subscription = self._directPutSubscription
        if reader is not None and not reader.done():
            reader.cancel()

    async def _readSource(self, source: Any) -> None:
        try:
            while True:
                await self._waitRoom()
                try:
                    element = await source.get()
                except SubscriptionClosed:
                    return
                try:
                    payload = self._encode(element)
                    await self._waitRoom()
                    self._sendPayload(payload)
                except (TypeError, ValueError, SubscriptionFull) as exc:
                    self._failed += 1
                    self._log.error("data channel %r: not sent: %s", self._name, exc)
        except SubscriptionClosed:
            return
        finally:
            if self._subscription is source:
                self._subscription = self._directPutSubscription
            if self._reader is asyncio.current_task():
                self._reader = None

    # ------------------------------------------------------------------ control timeout

    def set_control_timeout(
        self, seconds: float | None, on_timeout: Callable[[], Any] | None = None
    ) -> None:
        """Run ``on_timeout`` when no message has arrived on this channel for ``seconds``.

        The dead-man switch of a robot: ``on_timeout`` stops the motors. The clock starts when
        the channel opens (or now, if it is open), every received message restarts it, and
        ``on_timeout`` runs once per silence, then again only after a new message and a new
        silence. It also runs when the channel closes (the peer left, the connection failed or
        its heartbeat timed out, or ``close()``), unless it already ran for the current
        silence. ``on_timeout`` takes no argument and may be a function (called on the event
        loop; keep it short) or a coroutine function (run as a task that ``await channel``
        waits for; it is not cancelled by the close). ``seconds=None`` removes the timeout.
        """
        self._cancelControlTimer()
        if seconds is None:
            self._control = None
            self._controlAction = None
            return
        if on_timeout is None or not callable(on_timeout):
            raise TypeError(f"on_timeout must be a function or coroutine function, got "
                            f"{on_timeout!r}")
        control = ControlTimeout(seconds)
        self._control = control
        self._controlAction = on_timeout
        if self._closedFlag:
            return
        self._ensureLoop()
        if self._open:
            self._startControlTimeout()

    def _startControlTimeout(self) -> None:
        loop = self._loop
        if loop is None or self._control is None:
            return
        self._control.arm(loop.time())
        self._scheduleControl()

    def _scheduleControl(self) -> None:
        control = self._control
        loop = self._loop
        if control is None or loop is None or self._controlTimer is not None:
            return
        deadline = control.deadline
        if deadline is not None:
            self._controlTimer = loop.call_at(deadline, self._onControlTimer)

    def _onControlTimer(self) -> None:
        self._controlTimer = None
        control = self._control
        loop = self._loop
        if control is None or loop is None:
            return
        if control.poll(loop.time()):
            self._runControlAction()
        else:
            self._scheduleControl()

    def _cancelControlTimer(self) -> None:
        timer, self._controlTimer = self._controlTimer, None
        if timer is not None:
            timer.cancel()

    def _runControlAction(self) -> None:
        action = self._controlAction
        if action is None:
            return
        try:
            result = action()
            if inspect.isawaitable(result):
                loop = self._loop or asyncio.get_running_loop()
                task = loop.create_task(_awaitLogged(result, self._log, action))
                self._controlTasks.add(task)
                task.add_done_callback(self._controlTasks.discard)
        except Exception:
            self._log.exception("control timeout action %r raised", action)

    async def _waitControlTasks(self) -> None:
        if self._controlTasks:
            await asyncio.gather(*list(self._controlTasks), return_exceptions=True)

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Close the channel (both sides see it close). Readers get what was received, then
        :class:`SubscriptionClosed`; the control timeout action runs if it is due. Idempotent,
        never blocks."""
        if self._closedFlag:
            return
        self._open = False
        self._cancelControlTimer()
        if self._control is not None and self._control.disarm():
            self._runControlAction()
        self._flushPaced()
        unsent = len(self._pending) + len(self._paced)
        if unsent:  # accepted by put_nowait, but the channel closed before they could go
            self._failed += unsent
            self._log.warning("%d messages on %r were not sent: the channel closed first",
                              unsent, self._name)
        self._pending.clear()
        self._pendingBytes = 0
        self._paced.clear()
        self._pacedBytes = 0
        pacer, self._pacer = self._pacer, None
        if pacer is not None:
            pacer.remove_listener(self._drain)
        self._reader = None
        self._closeRtc()
        super().close()
        self._wakeRoomWaiters()

    def _flushPaced(self) -> None:
        """On close: hand the whole send queue to aiortc, which sends it before the channel's
        stream is reset (as for messages it already held). What it refuses stays queued and
        is counted as not sent."""
        paced = self._paced
        rtc = self._rtc
        if not paced or rtc is None or rtc.readyState != "open":
            return
        try:
            while paced:
                payload, size = paced[0]
                try:
                    rtc.send(payload)
                except ValueError as exc:  # too large for the peer
                    self._failed += 1
                    self._log.error("data channel %r: message not sent: %s", self._name, exc)
                else:
                    self._sent += 1
                paced.popleft()
                self._pacedBytes -= size
        except Exception as exc:  # closed under us
            self._log.debug("flush of %r on close stopped: %r", self._name, exc)

    def __repr__(self) -> str:
        state = "closed" if self._closedFlag else ("open" if self._open else "not open")
        return f"<DataChannel {self._name!r} {state}>"


async def _awaitLogged(awaitable: Any, log: logging.Logger, action: Any) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("control timeout action %r raised", action)
