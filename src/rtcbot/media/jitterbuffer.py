"""A video jitter buffer that releases a frame as soon as its last packet is in.

aiortc's receiver reassembles a video frame from its RTP packets and releases it only when the
first packet of the *next* frame arrives -- one frame interval (33 ms at 30 fps) after the frame
was complete. The sender marks the last packet of every frame (the RTP marker bit), so a frame
is complete as soon as every packet from its first to the marked one is in. This buffer uses
that, and keeps aiortc's rule (a packet of a newer frame completes the older one) for senders
that do not set the marker.

It also does not stall for seconds when a packet is lost for good (its retransmission lost
too): once ``stall_packets`` newer packets (default 96, about 3 s at 30 fps and 1 Mbit/s... fewer at
higher rates) have arrived behind a hole, the incomplete frames are
dropped, decoding resumes at the next frame that is complete, and a picture-loss indication is
asked for (the sender answers with a keyframe).

Plain code: it takes RTP packets (anything with ``sequence_number``, ``timestamp``, ``marker``
and the depayloaded bytes in ``_data``, as aiortc's receiver prepares them) and returns
:class:`EncodedFrame` objects (``data``, ``timestamp``), the interface of aiortc's
``JitterBuffer.add``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EncodedFrame", "MarkerJitterBuffer"]

#: Packets this far before the oldest one kept are taken for a restarted stream, not late ones.
MAX_MISORDER = 100


class EncodedFrame:
    """One reassembled encoded frame: its bytes and RTP timestamp."""

    __slots__ = ("data", "timestamp")

    def __init__(self, data: bytes, timestamp: int) -> None:
        self.data = data
        self.timestamp = timestamp


class MarkerJitterBuffer:
    """Reassembles video frames from RTP packets; see the module docstring.

    ``add(packet)`` returns ``(picture_lost, frame_or_None)``: ``picture_lost`` asks the caller
    to send a picture-loss indication. Counters: ``frames`` released, ``frames_by_marker``
    (released at their last packet), ``stalls`` (holes given up on), ``resets``, ``bytes``.
    """

    def __init__(self, capacity: int = 512, stall_packets: int | None = None) -> None:
        if capacity < 2 or capacity & (capacity - 1):
            raise ValueError(f"capacity must be a power of 2, got {capacity!r}")
        if stall_packets is None:
            stall_packets = min(96, capacity // 2)
        if not 0 < stall_packets < capacity:
            raise ValueError(f"stall_packets must be in (0, {capacity}), got {stall_packets!r}")
        self._capacity = capacity
        self._mask = capacity - 1
        self._slots: list[Any] = [None] * capacity
        self._origin: int | None = None  # sequence number of the oldest slot kept
        self._newest: int | None = None
        self.stall_packets = stall_packets
        self.frames = 0
        self.frames_by_marker = 0
        self.stalls = 0
        self.resets = 0
        self.bytes = 0

    @property
    def capacity(self) -> int:
        """Number of packets the buffer can hold."""
        return self._capacity

    def add(self, packet: Any) -> tuple[bool, EncodedFrame | None]:
        """Store ``packet``; return ``(picture_lost, frame)`` where ``frame`` is the oldest
        frame that became complete, if any."""
        seq = packet.sequence_number
        lost = False
        if self._origin is None:
            self._origin = seq
            self._newest = seq
        delta = (seq - self._origin) & 0xFFFF
        if delta >= 0x8000:  # before the oldest packet kept
            if 0x10000 - delta < MAX_MISORDER:
                return False, None  # late or duplicate: its frame is gone already
            self._reset(seq)
            lost = True
            delta = 0
        if delta >= self._capacity:
            self._drop_front((seq - self._capacity + 1) & 0xFFFF)
            lost = True
        self._slots[seq & self._mask] = packet
        self.bytes += len(getattr(packet, "_data", b"") or b"")
        if ((seq - self._newest) & 0xFFFF) < 0x8000:
            self._newest = seq
        frame = self._release()
        if frame is None and self._stalled():
            if self._skip_hole():
                lost = True
                frame = self._release()
        return lost, frame

    # ------------------------------------------------------------------ internals

    def _reset(self, seq: int) -> None:
        self._slots = [None] * self._capacity
        self._origin = seq
        self._newest = seq
        self.resets += 1

    def _advance(self, count: int) -> None:
        origin = self._origin
        slots = self._slots
        for i in range(count):
            slots[(origin + i) & self._mask] = None
        self._origin = (origin + count) & 0xFFFF

    def _drop_front(self, new_origin: int) -> None:
        """Drop packets before ``new_origin``, then the rest of the frame cut in two."""
        count = (new_origin - self._origin) & 0xFFFF
        last_ts = None
        for i in range(min(count, self._capacity)):
            packet = self._slots[(self._origin + i) & self._mask]
            if packet is not None:
                last_ts = packet.timestamp
        self._advance(count)
        while last_ts is not None:
            packet = self._slots[self._origin & self._mask]
            if packet is None or packet.timestamp != last_ts:
                break
            self._advance(1)

    def _release(self) -> EncodedFrame | None:
        slots = self._slots
        origin = self._origin
        first = slots[origin & self._mask]
        if first is None:
            return None
        timestamp = first.timestamp
        parts = []
        end = 0
        by_marker = False
        for i in range(self._capacity):
            packet = slots[(origin + i) & self._mask]
            if packet is None:
                return None
            if packet.timestamp != timestamp:
                end = i  # the next frame started: this one is complete
                break
            parts.append(packet._data)
            if packet.marker:
                end = i + 1
                by_marker = True
                break
        else:
            return None
        self._advance(end)
        self.frames += 1
        if by_marker:
            self.frames_by_marker += 1
        return EncodedFrame(b"".join(parts), timestamp)

    def _stalled(self) -> bool:
        return ((self._newest - self._origin) & 0xFFFF) >= self.stall_packets

    def _skip_hole(self) -> bool:
        """Give up on the incomplete frames at the front: move to the newest packet after the
        first hole that certainly starts a frame (its predecessor is the marked end of a frame,
        or belongs to another frame). The frames in between are dropped too: they depend on
        the lost one, and the decoder needs a keyframe anyway (the caller asks for one), so
        decoding resumes without a backlog. Returns False if there is no such packet yet."""
        slots = self._slots
        origin = self._origin
        mask = self._mask
        span = ((self._newest - origin) & 0xFFFF) + 1
        hole = None
        for i in range(span):
            if slots[(origin + i) & mask] is None:
                hole = i
                break
        if hole is None:
            return False
        for k in range(span - 1, hole, -1):
            packet = slots[(origin + k) & mask]
            before = slots[(origin + k - 1) & mask]
            if packet is not None and before is not None:
                if before.marker or before.timestamp != packet.timestamp:
                    self._advance(k)
                    self.stalls += 1
                    return True
        return False
