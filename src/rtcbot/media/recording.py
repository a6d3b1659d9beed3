"""Recording a robot session -- its cameras and its control messages -- and replaying it.

:class:`Recorder` writes

* the video tracks to one Matroska file (``.mkv``; ``.webm`` for VP8 only), as the encoded
  packets that the connections send: a camera that connections show is encoded once for them
  and the recording alike (see :mod:`rtcbot.media.fanout`), and nothing is encoded again to
  store it;
* every message, with its time, to a JSON-lines file beside it (``session.jsonl`` for
  ``session.mkv``): a header line, one line per track, one line per message.

Times are seconds since the recording started, on one clock (:func:`time.monotonic`) for video
and messages, so they replay in step. :class:`Recording` reads a recording back:
``recording.items()`` (a plain iterator, for training pipelines) or ``async for item in
recording.replay()`` (paced in real time, for a robot or a page), each item a
:class:`RecordedFrame` or a :class:`RecordedMessage`, in time order.

Writing happens in a worker thread: the event loop never waits for the disk.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import fractions
import heapq
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.base import BaseSubscriptionProducer
from ..base.errors import SubscriptionClosed, SubscriptionFull
from ..base.subscriptions import QueueSubscription
from ..base.thread import ThreadedSubscriptionConsumer
from .encoder import EncodedPacket, VideoEncoderSettings
from .fanout import SharedVideoEncoder, shared_video_encoder

__all__ = ["RecordedFrame", "RecordedMessage", "Recorder", "Recording", "messages_path"]

_log = logging.getLogger("rtcbot.media.recording")

FORMAT_VERSION = 1
_TIME_BASE = fractions.Fraction(1, 90000)
#: Records (packets and messages) that may wait for the disk before new ones are refused.
BACKLOG = 3000
#: Packets kept while waiting for every track's first keyframe before the file header.
HEADER_WAIT_PACKETS = 300


def messages_path(path: str | Path) -> Path:
    """The JSON-lines file that goes with the video file ``path`` (``x.mkv`` -> ``x.jsonl``)."""
    return Path(path).with_suffix(".jsonl")


def _json_message(message: Any) -> dict[str, Any]:
    if isinstance(message, (bytes, bytearray, memoryview)):
        return {"bytes": base64.b64encode(bytes(message)).decode("ascii")}
    try:
        json.dumps(message)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"a recorded message must be JSON (str, number, bool, None, list, dict) or bytes, "
            f"got {type(message).__name__}: {exc}"
        ) from None
    return {"message": message}


class _VideoTap:
    """What a recorded track subscribes to its encoder: starts at a keyframe, and when the
    recorder's backlog is full, waits for the next keyframe (asking the encoder for one)."""

    def __init__(self, recorder: Recorder, index: int, encoder: SharedVideoEncoder) -> None:
        self._recorder = recorder
        self._index = index
        self._encoder = encoder
        self._waiting = True
        self.frames = 0
        self.dropped = 0

    def put_nowait(self, packet: EncodedPacket) -> None:
        if self._waiting and not packet.keyframe:
            return
        captured = packet.captured if packet.captured is not None else time.monotonic()
        record = ("video", self._index, bytes(packet.packet), packet.keyframe, captured,
                  self._encoder.size)
        try:
            self._recorder._record(record)
        except SubscriptionFull:
            self.dropped += 1
            self._waiting = True
            self._encoder.request_keyframe()
            return
        except SubscriptionClosed:
            return
        self._waiting = False
        self.frames += 1


class Recorder(ThreadedSubscriptionConsumer):
    """Records video tracks and messages of a session to ``path`` (see the module docstring).

    ``path`` ends in ``.mkv`` (VP8 and H.264) or ``.webm`` (VP8 only); the messages go to
    :func:`messages_path` (``path`` with ``.jsonl``). ``settings`` (a
    :class:`~rtcbot.media.VideoEncoderSettings`) is how a recorded source is encoded when no
    connection already encodes it the same way (default: VP8, as connections).

    * :meth:`addVideo` -- record a camera (a producer of BGR frames, or a subscription of one).
    * :meth:`addMessages` -- record everything a producer emits (``conn``: the messages its
      peer sends; ``conn.getDataChannel(name)``...).
    * ``put_nowait(message)`` -- record one message yourself (channel ``"messages"``);
      ``putSubscription(producer)`` reads them from a producer.

    Call :meth:`addVideo` and :meth:`addMessages` on the event loop (inside your program's
    ``async`` code), every video before its frames start. ``close()`` stops recording and
    finishes the files (``await recorder`` waits until they are complete). Messages are JSON
    values or bytes; anything else raises ``TypeError`` at the call site.
    """

    def __init__(
        self, path: str | Path, *, settings: VideoEncoderSettings | None = None
    ) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".mkv", ".webm"):
            raise ValueError(
                f"record to a .mkv (VP8 or H.264) or .webm (VP8) file, got {str(path)!r}"
            )
        if settings is None:
            settings = VideoEncoderSettings()
        elif not isinstance(settings, VideoEncoderSettings):
            raise TypeError(f"settings must be a VideoEncoderSettings, got {settings!r}")
        if suffix == ".webm" and settings.codec != "VP8":
            raise ValueError(f"a .webm file holds VP8 video, not {settings.codec}: use .mkv")
        self.settings = settings
        self.messages_path = messages_path(self.path)
        self.start_time = time.monotonic()
        self.start_wall = time.time()
        self._tracks: list[dict[str, Any]] = []
        self._taps: list[tuple[SharedVideoEncoder, _VideoTap]] = []
        self._sources: list[tuple[BaseSubscriptionProducer, Any]] = []
        self.messages = 0
        super().__init__(
            QueueSubscription, logger=_log, backlog=BACKLOG, overflow="raise"
        )

    # ------------------------------------------------------------------ loop side

    def addVideo(self, source: Any, name: str | None = None, *, fps: float | None = None) -> None:
        """Record the frames of ``source`` (a camera or any producer of BGR frames, or a
        subscription of one) as the track ``name`` (default ``"video<n>"``), at most ``fps``
        frames per second. Shares the encoder of the connections that show ``source`` with
        the same codec and settings. Call on the event loop, before the first frame of any
        track is recorded (the file's tracks are fixed then): later, ``RuntimeError``."""
        if self._shouldClose:
            raise SubscriptionClosed("the Recorder is closed")
        asyncio.get_running_loop()  # RuntimeError here, not later in a callback
        if any(tap.frames for _, tap in self._taps):
            raise RuntimeError(
                "add every video track before recording starts: frames are already being "
                "written and the file's tracks cannot change"
            )
        index = len(self._tracks)
        name = f"video{index}" if name is None else str(name)
        if any(t["name"] == name for t in self._tracks):
            raise ValueError(f"the recording already has a track named {name!r}")
        codec = self.settings.codec
        encoder = shared_video_encoder(source, self.settings, codec=codec, fps=fps)
        if encoder is None:
            encoder = SharedVideoEncoder(
                source, self.settings, codec=codec, fps=fps, close_when_unused=True
            )
        track = {"index": index, "name": name, "codec": codec}
        self._tracks.append(track)
        super().put_nowait(("track", track, time.monotonic()))
        tap = _VideoTap(self, index, encoder)
        self._taps.append((encoder, tap))
        encoder.subscribe(tap)

    def addMessages(self, producer: Any, channel: str = "default") -> None:
        """Record every element ``producer`` emits (a connection: the messages its peer
        sends) under ``channel``. Elements that are not JSON or bytes are recorded as their
        ``repr``. Call on the event loop."""
        if self._shouldClose:
            raise SubscriptionClosed("the Recorder is closed")
        channel = str(channel)

        def record(message: Any) -> None:
            self._recordMessage(channel, message, lenient=True)

        producer.subscribe(record)
        self._sources.append((producer, record))

    def put_nowait(self, message: Any) -> None:
        """Record ``message`` (a JSON value or bytes) now, under the channel ``"messages"``.
        Raises ``TypeError`` for anything else, :class:`~rtcbot.SubscriptionFull` if the disk
        is far behind, :class:`~rtcbot.SubscriptionClosed` after close."""
        self._recordMessage("messages", message, lenient=False)

    def putSubscription(self, subscription: Any) -> None:
        """Record every message ``subscription`` (anything with ``async get()``) gives, under
        the channel ``"messages"``, until it ends. Call on the event loop."""
        self._checkSource(subscription)
        self._spawn(self._readMessages(subscription), name="rtcbot recorder messages")

    async def _readMessages(self, subscription: Any) -> None:
        while True:
            try:
                message = await subscription.get()
            except SubscriptionClosed:
                return
            self._recordMessage("messages", message, lenient=True)

    def _recordMessage(self, channel: str, message: Any, lenient: bool) -> None:
        try:
            body = _json_message(message)
        except TypeError:
            if not lenient:
                raise
            body = {"repr": repr(message)}
        self._record(("message", channel, body, time.monotonic()))
        self.messages += 1

    def _record(self, record: tuple[Any, ...]) -> None:
        super().put_nowait(record)

    def statistics(self) -> dict[str, Any]:
        """``{"backlog", "dropped", "messages", "frames": {name: count},
        "frames_dropped": {name: count}}``."""
        out: dict[str, Any] = dict(super().statistics())
        out["messages"] = self.messages
        out["frames"] = {t["name"]: tap.frames for t, (_, tap) in zip(self._tracks, self._taps,
                                                                        strict=True)}
        out["frames_dropped"] = {
            t["name"]: tap.dropped for t, (_, tap) in zip(self._tracks, self._taps, strict=True)
        }
        return out

    def close(self) -> None:
        """Stop recording: what was recorded so far is written and the files are finished
        (``await recorder`` waits for that). Returns at once."""
        if self._closedFlag:
            return
        for encoder, tap in self._taps:
            if not encoder.closed:
                try:
                    encoder.unsubscribe(tap)
                except KeyError:
                    pass
        for producer, record in self._sources:
            try:
                producer.unsubscribe(record)
            except KeyError:
                pass
        super().close()

    # ------------------------------------------------------------------ worker thread

    def _consumer(self) -> None:
        writer = _Writer(self)
        self._setReady(True)
        try:
            while True:
                records, marker = self._getBatch(200)
                for record in records:
                    writer.write(record)
                writer.flush()
                if marker is not None:
                    break
        finally:
            writer.close()


class _Writer:
    """The files of one recording (worker thread only)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.t0 = recorder.start_time
        self.lines = recorder.messages_path.open("w", encoding="utf-8")
        header = {
            "rtcbot_recording": FORMAT_VERSION,
            "video": recorder.path.name,
            "start_wall": recorder.start_wall,
        }
        self.lines.write(json.dumps(header) + "\n")
        self.tracks: list[dict[str, Any]] = []
        self.container: Any = None
        self.streams: dict[int, Any] = {}
        self.sizes: dict[int, tuple[int, int]] = {}
        self.waiting: list[tuple[Any, ...]] = []
        self.last_pts: dict[int, int] = {}

    def write(self, record: tuple[Any, ...]) -> None:
        kind = record[0]
        if kind == "message":
            _, channel, body, when = record
            line = {"t": round(when - self.t0, 6), "channel": channel, **body}
            self.lines.write(json.dumps(line) + "\n")
        elif kind == "track":
            _, track, when = record
            self.tracks.append(track)
            self.lines.write(json.dumps({"t": round(when - self.t0, 6), "track": track}) + "\n")
        elif kind == "video":
            if self.container is None:
                self.waiting.append(record)
                index, size = record[1], record[5]
                if size is not None:
                    self.sizes.setdefault(index, size)
                if len(self.sizes) == len(self.tracks) or len(self.waiting) > HEADER_WAIT_PACKETS:
                    self._open()
            else:
                self._mux(record)

    def _open(self) -> None:
        import av

        path = self.recorder.path
        self.container = av.open(str(path), "w", format="webm" if path.suffix == ".webm"
                                 else "matroska")
        for track in self.tracks:
            index = track["index"]
            size = self.sizes.get(index)
            if size is None:
                _log.warning("recording: track %r had no frames in time; not recorded",
                             track["name"])
                continue
            codec = "vp8" if track["codec"] == "VP8" else "h264"
            stream = self.container.add_stream(codec)  # never encodes: packets are muxed
            stream.width, stream.height = size
            stream.time_base = _TIME_BASE
            stream.metadata["title"] = track["name"]
            self.streams[index] = stream
        waiting, self.waiting = self.waiting, []
        for record in waiting:
            self._mux(record)

    def _mux(self, record: tuple[Any, ...]) -> None:
        import av

        _, index, data, keyframe, captured, _size = record
        stream = self.streams.get(index)
        if stream is None:
            return
        pts = max(round((captured - self.t0) * 90000), self.last_pts.get(index, -1) + 1, 0)
        self.last_pts[index] = pts
        packet = av.Packet(data)
        packet.stream = stream
        packet.time_base = _TIME_BASE
        packet.pts = packet.dts = pts
        packet.is_keyframe = keyframe
        self.container.mux(packet)

    def flush(self) -> None:
        self.lines.flush()

    def close(self) -> None:
        try:
            if self.container is None and self.waiting:
                self._open()
            if self.container is not None:
                self.container.close()
        finally:
            self.lines.close()


# ====================================================================================== reading


@dataclass(frozen=True)
class RecordedFrame:
    """A video frame of a recording: ``time`` (seconds since the recording started), the
    track ``name``, and ``image`` (a BGR ``uint8`` array ``(height, width, 3)``, or the
    encoded ``av.Packet`` when reading without decoding)."""

    time: float
    name: str
    image: Any


@dataclass(frozen=True)
class RecordedMessage:
    """A message of a recording: ``time`` (seconds since the recording started), the
    ``channel`` it was recorded under, and the ``message`` (a JSON value or bytes)."""

    time: float
    channel: str
    message: Any


class Recording:
    """A recording made by :class:`Recorder`, read back. ``path`` is its video file (the
    ``.jsonl`` beside it is found) or the ``.jsonl`` itself.

    ``tracks`` (names, in order), ``messages`` (all :class:`RecordedMessage`), ``duration``
    (seconds, up to the last frame or message), ``frame_count(name)``; :meth:`items` and
    :meth:`replay` give frames and messages in time order.
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        lines_path = path if path.suffix == ".jsonl" else messages_path(path)
        self.messages: list[RecordedMessage] = []
        self._tracks: list[dict[str, Any]] = []
        with lines_path.open(encoding="utf-8") as lines:
            header = json.loads(lines.readline() or "{}")
            if header.get("rtcbot_recording") != FORMAT_VERSION:
                raise ValueError(f"{str(lines_path)!r} is not an rtcbot recording")
            for line in lines:
                if not line.strip():
                    continue
                entry = json.loads(line)
                if "track" in entry:
                    self._tracks.append(entry["track"])
                    continue
                if "bytes" in entry:
                    message = base64.b64decode(entry["bytes"])
                elif "message" in entry:
                    message = entry["message"]
                else:
                    message = entry.get("repr")
                self.messages.append(RecordedMessage(entry["t"], entry["channel"], message))
        self.start_wall: float = header.get("start_wall", 0.0)
        self.video_path = lines_path.parent / header.get("video", path.name)
        self._counts: dict[str, int] | None = None
        self._last_frame = 0.0

    @property
    def tracks(self) -> list[str]:
        """The names of the recorded video tracks."""
        return [t["name"] for t in self._tracks]

    def _scan(self) -> None:
        counts = dict.fromkeys(self.tracks, 0)
        last = 0.0
        for item in self._frames(decode=False):
            counts[item.name] = counts.get(item.name, 0) + 1
            last = max(last, item.time)
        self._counts, self._last_frame = counts, last

    def frame_count(self, name: str) -> int:
        """How many frames the track ``name`` holds."""
        if self._counts is None:
            self._scan()
        assert self._counts is not None
        if name not in self._counts:
            raise KeyError(f"no track named {name!r}; the recording has {self.tracks}")
        return self._counts[name]

    @property
    def duration(self) -> float:
        """Seconds from the start of the recording to its last frame or message."""
        if self._counts is None:
            self._scan()
        last_message = self.messages[-1].time if self.messages else 0.0
        return max(self._last_frame, last_message)

    def _frames(self, decode: bool) -> Iterator[RecordedFrame]:
        import av

        if not self._tracks or not self.video_path.exists():
            return
        with av.open(str(self.video_path)) as container:
            names = {s.index: s.metadata.get("title", f"video{s.index}")
                     for s in container.streams.video}
            for packet in container.demux(video=list(range(len(container.streams.video)))):
                if packet.pts is None:
                    continue  # the demuxer's end-of-stream marker
                name = names[packet.stream.index]
                when = float(packet.pts * packet.time_base)
                if not decode:
                    yield RecordedFrame(when, name, packet)
                    continue
                for frame in packet.decode():
                    yield RecordedFrame(when, name, frame.to_ndarray(format="bgr24"))

    def items(self, decode: bool = True) -> Iterator[RecordedFrame | RecordedMessage]:
        """Frames and messages in time order, as fast as they can be read (a plain iterator;
        ``decode=False`` gives the frames' encoded packets instead of images)."""
        frames = ((f.time, 0, i, f) for i, f in enumerate(self._frames(decode)))
        messages = ((m.time, 1, i, m) for i, m in enumerate(self.messages))
        for *_, item in heapq.merge(frames, messages, key=lambda x: (x[0], x[1], x[2])):
            yield item

    async def replay(
        self, speed: float = 1.0, decode: bool = True
    ) -> AsyncIterator[RecordedFrame | RecordedMessage]:
        """``async for item in recording.replay()``: frames and messages in time order, each
        given when its time comes (``speed`` 2.0 plays twice as fast; ``0`` or ``inf`` does not
        wait). Reading and decoding run in a worker thread. Cancelling (or leaving the loop)
        stops the replay; nothing else is affected."""
        if not speed >= 0:
            raise ValueError(f"speed must be >= 0, got {speed!r}")
        loop = asyncio.get_running_loop()
        executor = concurrent.futures.ThreadPoolExecutor(1, "rtcbot-replay")
        iterator = self.items(decode)
        done = object()
        start = loop.time()
        try:
            while True:
                item = await loop.run_in_executor(executor, next, iterator, done)
                if item is done:
                    return
                if speed and speed != float("inf"):
                    delay = start + item.time / speed - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                yield item
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
