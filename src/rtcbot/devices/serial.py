"""Serial ports (an Arduino, a motor controller, a GPS) as a producer and consumer.

:class:`SerialConnection` reads messages from a serial port (``subscribe()``/``get()``) and
writes the messages it is given (``put_nowait()``/``putSubscription()``). What a message is
depends on the formats:

* text lines (``readFormat="\\n"``, the default): each line arrives as ``bytes`` without its
  line ending (``b"\\n"`` and a ``b"\\r"`` before it are removed, so Arduino's ``println`` gives
  clean lines; RTCBot 0.2.5 kept the ``\\r``);
* raw chunks (``readFormat=None``): ``bytes`` as they arrive;
* C structs (``readFormat="<BH"``, a :mod:`struct` format): tuples, or dicts with ``readKeys``.

The framing rules are a plain class, :class:`SerialCodec` (bytes in, messages out, no I/O), so
they can be tested and reused without a port. The port is read with the event loop's
``add_reader`` on its file descriptor when the loop supports it (Linux, macOS: no thread, no
polling) and by a reader thread otherwise (Windows, ``loop://`` and other pyserial URLs).

pyserial is imported when a connection is created: ``pip install "rtcbot[serial]"``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import struct
import threading
import warnings
from collections.abc import Sequence
from typing import Any

from ..base.base import SubscriptionProducerConsumer
from ..base.errors import RTCBotError, SubscriptionClosed
from ..base.subscriptions import describe

__all__ = ["SerialCodec", "SerialConnection", "SerialError"]

_log = logging.getLogger("rtcbot.devices.serial")

#: The longest text line kept while waiting for its end; a longer one is discarded and counted.
MAX_LINE = 65536
_READ_SIZE = 65536


class SerialError(RTCBotError, ConnectionError):
    """The serial port failed or disappeared (unplugged, closed by the other end). The error
    from the operating system or pyserial is its ``__cause__``."""


def import_serial() -> Any:
    """pyserial's ``serial`` module, or an ImportError naming the extra to install."""
    try:
        import serial
    except ImportError as exc:
        raise ImportError('SerialConnection needs pyserial: pip install "rtcbot[serial]"') from exc
    return serial


def _start_bytes(startByte: Any) -> bytes | None:
    if startByte is None:
        return None
    if isinstance(startByte, bool):
        raise TypeError(f"startByte must be an int 0-255 or bytes, got {startByte!r}")
    if isinstance(startByte, int):
        if not 0 <= startByte <= 255:
            raise ValueError(f"startByte must be an int 0-255 or bytes, got {startByte!r}")
        return bytes([startByte])
    if isinstance(startByte, str):
        raise TypeError(
            f"startByte must be an int 0-255 or bytes, got the str {startByte!r} "
            "(use a bytes literal such as b'\\xc0i')"
        )
    try:
        value = bytes(startByte)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"startByte must be an int 0-255 or bytes, got {startByte!r}") from exc
    if not value:
        raise ValueError("startByte must not be empty")
    return value


def _struct(fmt: Any, name: str) -> struct.Struct:
    if isinstance(fmt, bytes):
        fmt = fmt.decode("ascii")
    if not isinstance(fmt, str):
        raise TypeError(f"{name} must be a struct format string such as '<BH', got {fmt!r}")
    try:
        compiled = struct.Struct(fmt)
    except struct.error as exc:
        raise ValueError(f"{name} {fmt!r} is not a valid struct format: {exc}") from exc
    if compiled.size == 0:
        raise ValueError(f"{name} {fmt!r} describes an empty message")
    return compiled


def _field_count(compiled: struct.Struct) -> int:
    return len(compiled.unpack(bytes(compiled.size)))


def _keys(keys: Any, compiled: struct.Struct | None, name: str, fmtname: str) -> tuple | None:
    if keys is None:
        return None
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence):
        raise TypeError(f"{name} must be a list of keys, got {keys!r}")
    keys = tuple(keys)
    if compiled is None:
        raise ValueError(f"{name} {list(keys)!r} needs a struct {fmtname}")
    n = _field_count(compiled)
    if len(keys) != n:
        raise ValueError(
            f"{name} {list(keys)!r} has {len(keys)} keys but {fmtname} "
            f"{compiled.format!r} has {n} fields"
        )
    return keys


class SerialCodec:
    """The framing rules of a serial connection, without any I/O.

    ``feed(data)`` takes bytes as they arrive and returns the complete messages they finish;
    ``encode(message)`` turns one outgoing message into bytes (raising ``TypeError`` or
    ``ValueError`` naming the message when it can't). Parameters are those of
    :class:`SerialConnection`.

    ``startByte`` (bytes, or an int for one byte):

    * with a struct ``readFormat``, every incoming struct is preceded by the start bytes. The
      decoder scans for them before each message, so garbage bytes between messages are
      skipped (and counted). A frame that lost bytes is recognised when it contains the start
      of the next message and what follows it has arrived and is not a start sequence: it is
      dropped (counted in ``damaged_messages``) and the next message is decoded intact.
      Messages are never held back waiting for the next one; a damaged frame that is the last
      data received can't be told from a good one (use a checksum field if that matters).
    * with text lines or raw chunks, the start bytes are a one-time handshake (a sketch writes
      them once in ``setup()``): everything before them is discarded.

    ``synced`` is True once the handshake is done: at once for struct formats or without
    ``startByte``, else when the start bytes arrive.
    """

    def __init__(
        self,
        readFormat: Any = "\n",
        writeFormat: Any = None,
        readKeys: Any = None,
        writeKeys: Any = None,
        startByte: Any = None,
    ) -> None:
        if readFormat in ("\n", b"\n"):
            self._mode = "line"
            self._read: struct.Struct | None = None
        elif readFormat is None:
            self._mode = "raw"
            self._read = None
        else:
            self._mode = "struct"
            self._read = _struct(readFormat, "readFormat")
        self._write = None if writeFormat is None else _struct(writeFormat, "writeFormat")
        self._readKeys = _keys(readKeys, self._read, "readKeys", "readFormat")
        self._writeKeys = _keys(writeKeys, self._write, "writeKeys", "writeFormat")
        self._start = _start_bytes(startByte)
        # The text/raw handshake; struct framing needs none (it scans before every message).
        self.synced = self._start is None or self._mode == "struct"
        self._buffer = bytearray()
        self._received = 0
        self._skipped = 0
        self._discardedLines = 0
        self._damaged = 0

    @property
    def mode(self) -> str:
        """``"line"``, ``"raw"`` or ``"struct"``."""
        return self._mode

    # ---------------------------------------------------------------- reading

    def feed(self, data: bytes) -> list[Any]:
        """Add received bytes; return the messages they complete (possibly none)."""
        buf = self._buffer
        buf += data
        if self._mode == "struct":
            return self._structs(buf)
        if not self.synced:
            start = self._start
            assert start is not None
            at = buf.find(start)
            if at < 0:
                drop = max(0, len(buf) - (len(start) - 1))
                self._skipped += drop
                del buf[:drop]
                return []
            self._skipped += at
            del buf[: at + len(start)]
            self.synced = True
        if self._mode == "line":
            return self._lines(buf)
        if not buf:
            return []
        chunk = bytes(buf)
        buf.clear()
        self._received += 1
        return [chunk]

    def _lines(self, buf: bytearray) -> list[Any]:
        out: list[Any] = []
        begin = 0
        while True:
            end = buf.find(b"\n", begin)
            if end < 0:
                break
            stop = end - 1 if end > begin and buf[end - 1] == 0x0D else end
            out.append(bytes(buf[begin:stop]))
            begin = end + 1
        del buf[:begin]
        if len(buf) > MAX_LINE:
            self._discardedLines += 1
            _log.warning("discarded %d bytes of a line longer than %d bytes", len(buf), MAX_LINE)
            buf.clear()
        self._received += len(out)
        return out

    def _structs(self, buf: bytearray) -> list[Any]:
        out: list[Any] = []
        read = self._read
        assert read is not None
        size = read.size
        keys = self._readKeys
        start = self._start
        ls = len(start) if start is not None else 0
        n = len(buf)
        pos = 0
        while True:
            if start is not None:
                at = buf.find(start, pos)
                if at < 0:
                    # Keep a tail that may be the beginning of the next start sequence.
                    keep_from = max(pos, n - (ls - 1))
                    self._skipped += keep_from - pos
                    pos = keep_from
                    break
                self._skipped += at - pos
                pos = at
                body = at + ls
                end = body + size
                if end > n:
                    break  # wait for the rest of the message
                # A start sequence inside this frame may mean that this message lost bytes
                # and the inner one is the real next message: trust this frame unless what
                # follows it (when it has arrived) is not a start sequence.
                inner = buf.find(start, at + 1, min(n, end + ls - 1))
                if inner >= 0:
                    after = bytes(buf[end : end + ls])
                    if after and not start.startswith(after):
                        self._skipped += inner - at
                        self._damaged += 1
                        pos = inner
                        continue
            else:
                body = pos
                end = body + size
                if end > n:
                    break
            values = read.unpack_from(buf, body)
            out.append(dict(zip(keys, values, strict=True)) if keys is not None else values)
            pos = end
        del buf[:pos]
        self._received += len(out)
        return out

    # ---------------------------------------------------------------- writing

    def encode(self, message: Any) -> bytes:
        """The bytes to write for ``message``.

        Without ``writeFormat``: ``str`` (encoded as UTF-8) or bytes-like. With it: a tuple or
        list of the struct's fields, or a dict holding every key of ``writeKeys``; bytes-like
        messages are written as they are in every mode. Raises ``TypeError`` (wrong kind of
        message) or ``ValueError`` (missing key, value out of range) naming the message.
        """
        if isinstance(message, (bytes, bytearray, memoryview)):
            return bytes(message)
        write = self._write
        if write is None:
            if isinstance(message, str):
                return message.encode("utf-8")
            raise TypeError(
                f"cannot send {describe(message)}: without writeFormat a SerialConnection sends "
                "str or bytes (set writeFormat to send struct fields)"
            )
        if isinstance(message, dict):
            keys = self._writeKeys
            if keys is None:
                raise TypeError(
                    f"cannot send {describe(message)}: a dict needs writeKeys (the order of "
                    f"writeFormat {write.format!r}'s fields)"
                )
            try:
                values = [message[k] for k in keys]
            except KeyError as exc:
                raise ValueError(
                    f"cannot send {describe(message)}: it has no key {exc.args[0]!r} "
                    f"(writeKeys={list(keys)!r})"
                ) from None
        elif isinstance(message, (tuple, list)):
            values = message
        else:
            raise TypeError(
                f"cannot send {describe(message)}: with writeFormat {write.format!r} send a "
                "tuple or list of fields, a dict with writeKeys, or bytes"
            )
        try:
            return write.pack(*values)
        except struct.error as exc:
            raise ValueError(
                f"cannot send {describe(message)} as writeFormat {write.format!r}: {exc}"
            ) from exc

    def statistics(self) -> dict[str, int]:
        """``received``: messages decoded; ``skipped_bytes``: bytes discarded while looking
        for start bytes; ``discarded_lines``: over-long lines dropped; ``damaged_messages``:
        struct frames dropped because they lost bytes; ``buffered_bytes``: bytes of an
        unfinished message."""
        return {
            "received": self._received,
            "skipped_bytes": self._skipped,
            "discarded_lines": self._discardedLines,
            "damaged_messages": self._damaged,
            "buffered_bytes": len(self._buffer),
        }


class _Encoded:
    """An outgoing message already encoded by ``put_nowait`` (on the caller's stack)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class SerialConnection(SubscriptionProducerConsumer):
    """A serial port as a producer of received messages and a consumer of messages to send.

    ``url``: a device path (``"/dev/ttyACM0"``, ``"COM3"``) or any pyserial URL
    (``"loop://"``, ``"socket://host:port"``). The port is opened by the constructor (a missing
    port raises pyserial's ``SerialException`` at once); RTS is left low so that boards whose
    reset is wired to RTS (ESP32) are not held in reset; nothing fails on ptys.

    Reading (``subscribe()``/``get()``): with ``readFormat="\\n"``, each line as ``bytes``
    without ``\\r\\n``; with ``readFormat=None``, raw ``bytes`` chunks; with a struct format
    (use ``"<..."``: little-endian, no padding, like a packed Arduino struct), tuples, or dicts
    keyed by ``readKeys``.

    Writing (``put_nowait()``/``putSubscription()``): ``str`` or bytes, or with ``writeFormat``
    a tuple/list of fields or a dict keyed by ``writeKeys``. ``put_nowait`` encodes the message
    at once, so a bad message (missing key, value out of range, wrong type) raises
    ``ValueError``/``TypeError`` naming it at the call site, and the connection keeps working;
    bad messages from a ``putSubscription`` source are logged, counted in ``statistics()`` and
    skipped. Writes wait until the connection is ready and ``delayWriteStart`` seconds more
    (an Arduino resets when the port opens and needs about 2 s to boot).

    ``startByte``: see :class:`SerialCodec`. The connection is ready when the port is open,
    or, for text and raw reads with ``startByte``, once the start bytes arrive. Errors of the
    port (unplugged, the other end closed) reach ``onError`` as :class:`SerialError` and close
    the connection. ``close()`` closes the port
    at once. ``loop`` binds to that loop (RTCBot 0.2.5 compatibility); by default the
    connection uses the loop that first uses it.
    """

    def __init__(
        self,
        url: str = "/dev/ttyS0",
        readFormat: Any = "\n",
        writeFormat: Any = None,
        baudrate: int = 115200,
        writeKeys: Any = None,
        readKeys: Any = None,
        startByte: Any = None,
        delayWriteStart: float = 0,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        SubscriptionProducerConsumer.__init__(self)
        self._codec = SerialCodec(readFormat, writeFormat, readKeys, writeKeys, startByte)
        if (
            isinstance(delayWriteStart, bool)
            or not isinstance(delayWriteStart, (int, float))
            or not delayWriteStart >= 0
        ):
            raise ValueError(
                f"delayWriteStart must be a number of seconds >= 0, got {delayWriteStart!r}"
            )
        self._delayWriteStart = float(delayWriteStart)
        self.url = url
        self._sent = 0
        self._badMessages = 0
        self._fd: int | None = None
        self._writerIdle = False
        self._readerLoop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._portLock = threading.Lock()
        serial = import_serial()
        try:
            port = serial.serial_for_url(url, baudrate=baudrate, do_not_open=True)
            # Set before open: pyserial applies it while opening and ignores the ioctl's
            # failure on ptys and virtual ports (setting it after open raises there).
            port.rts = False
            port.open()
        except ValueError as exc:
            raise ValueError(f"cannot open serial port {url!r}: {exc}") from exc
        self._port = port
        if loop is not None:
            self._bindLoop(loop)
        self._callFromThread(self._start)

    # ---------------------------------------------------------------- public

    @property
    def port(self) -> Any:
        """The underlying ``serial.Serial`` object (for settings such as ``dtr``)."""
        return self._port

    def put_nowait(self, data: Any) -> None:
        """Queue ``data`` to be written. Encodes it now: raises ``TypeError``/``ValueError``
        naming a message that can't be sent (nothing else is affected),
        :class:`SubscriptionClosed` after close, :class:`SubscriptionFull` when 10,000
        messages already wait. Never blocks."""
        if self._shouldClose:
            raise SubscriptionClosed(f"SerialConnection is closed: cannot send {describe(data)}")
        encoded = self._codec.encode(data)
        self._ensureLoop()
        if (
            self._writerIdle
            and self._fd is not None
            and self._subscription is self._directPutSubscription
            and self._directPutSubscription.empty()
            and self._inLoopThread()
        ):
            # The writer waits for work and nothing is queued: write now, saving a task hop.
            encoded = self._writeNow(encoded)
            if not encoded:
                return
        SubscriptionProducerConsumer.put_nowait(self, _Encoded(encoded))

    def statistics(self) -> dict[str, int]:
        """Counters: ``received`` messages, ``sent`` messages, ``bad_messages`` (from a
        ``putSubscription`` source, skipped), ``skipped_bytes`` (garbage before start bytes),
        ``discarded_lines`` (longer than 64 KiB), ``buffered_bytes`` (of an unfinished
        message)."""
        stats = self._codec.statistics()
        stats["sent"] = self._sent
        stats["bad_messages"] = self._badMessages
        return stats

    # ---------------------------------------------------------------- starting

    def _start(self) -> None:
        """On the loop: start reading the port and the writer task."""
        if self._shouldClose:
            return
        loop = asyncio.get_running_loop()
        fd = None
        try:
            fd = self._port.fileno()
        except Exception:  # pyserial URLs without a file descriptor (loop://)
            fd = None
        if fd is not None:
            try:
                os.set_blocking(fd, False)
                loop.add_reader(fd, self._onReadable)
            except (NotImplementedError, OSError, ValueError):
                fd = None
            else:
                self._fd = fd
                self._readerLoop = loop
        if fd is None:
            self._thread = threading.Thread(
                target=self._readThread, name=f"rtcbot-serial {self.url}", daemon=True
            )
            self._thread.start()
            self._addFinisher(self._joinThread)
        self._spawn(self._writer(), name=f"rtcbot serial writer {self.url}")
        if self._codec.synced:
            self._setReady(True)

    # ---------------------------------------------------------------- reading

    def _onReadable(self) -> None:
        fd = self._fd
        if fd is None:
            return
        try:
            data = os.read(fd, _READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._portFailed(exc)
            return
        if not data:  # readable but empty: the device disappeared or the other end hung up
            self._portFailed(None)
            return
        self._received(data)

    def _received(self, data: bytes) -> None:
        if self._shouldClose:
            return
        messages = self._codec.feed(data)
        if self._codec.synced and not self._readyFlag:
            self._setReady(True)
        for message in messages:
            self._put_nowait(message)

    def _readThread(self) -> None:
        port = self._port
        try:
            while not self._shouldClose:
                data = port.read(1)
                if not data:
                    if self._shouldClose:
                        return
                    continue  # cancel_read, or a read timeout set on the port
                waiting = port.in_waiting
                if waiting:
                    data += port.read(min(waiting, _READ_SIZE))
                self._callFromThread(self._received, data)
        except Exception as exc:
            if not self._shouldClose:
                self._callFromThread(self._portFailed, exc)

    async def _joinThread(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            await asyncio.to_thread(thread.join, 5)

    def _portFailed(self, exc: BaseException | None) -> None:
        if self._shouldClose:
            return
        if exc is None:
            err = SerialError(f"serial port {self.url} was disconnected (end of file)")
        elif isinstance(exc, OSError) and exc.errno == errno.EIO:
            err = SerialError(f"serial port {self.url} was disconnected: {exc}")
        else:
            err = SerialError(f"serial port {self.url} failed: {exc}")
        err.__cause__ = exc
        self._log.error("%s", err)
        self._setError(err)

    # ---------------------------------------------------------------- writing

    async def _writer(self) -> None:
        try:
            await self.onReady()
        except Exception:
            return  # closed (or failed) before it was ready
        if self._delayWriteStart:
            await asyncio.sleep(self._delayWriteStart)
        codec = self._codec
        while True:
            self._writerIdle = True
            try:
                item = await self._get()
            except SubscriptionClosed:
                if self._shouldClose:
                    return
                continue  # a putSubscription source ended; read put_nowait data again
            finally:
                self._writerIdle = False
            if isinstance(item, _Encoded):
                data = item.data
            else:
                try:
                    data = codec.encode(item)
                except (TypeError, ValueError) as exc:
                    self._badMessages += 1
                    self._log.error("%s (skipped)", exc)
                    continue
            await self._write(data)
            self._sent += 1

    def _writeNow(self, data: bytes) -> bytes:
        """Write what the port takes at once; return the rest (empty: all written)."""
        try:
            n = os.write(self._fd, data)  # type: ignore[arg-type]
        except (BlockingIOError, InterruptedError):
            return data
        except OSError as exc:
            self._portFailed(exc)
            return b""
        if n == len(data):
            self._sent += 1
            return b""
        return data[n:]

    async def _write(self, data: bytes) -> None:
        fd = self._fd
        if fd is None:
            try:
                await asyncio.to_thread(self._port.write, data)
            except Exception as exc:
                if not self._shouldClose:
                    self._portFailed(exc)
                raise SubscriptionClosed("serial port closed") from None
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as exc:
                self._portFailed(exc)
                raise SubscriptionClosed("serial port failed") from None
            view = view[n:]
            if view:
                await self._writable(fd)

    async def _writable(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.add_writer(fd, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            if self._fd == fd:
                loop.remove_writer(fd)

    # ---------------------------------------------------------------- closing

    def _closePort(self) -> None:
        with self._portLock:
            fd, self._fd = self._fd, None
            loop, self._readerLoop = self._readerLoop, None
            port = self._port
        if fd is not None and loop is not None and not loop.is_closed():
            if self._inLoopThread():
                loop.remove_reader(fd)
                loop.remove_writer(fd)
            else:
                # Can't touch another thread's selector; close the port after removing.
                def unregister() -> None:
                    loop.remove_reader(fd)
                    loop.remove_writer(fd)
                    port.close()

                try:
                    loop.call_soon_threadsafe(unregister)
                    return
                except RuntimeError:
                    pass
        if self._thread is not None:
            try:
                port.cancel_read()
            except Exception:
                pass
        try:
            port.close()
        except Exception as exc:
            self._log.debug("closing %s: %r", self.url, exc)

    def close(self) -> None:
        """Close the port at once (its file descriptor is released before this returns, when
        called on the loop), end the readers' streams and stop the writer. Messages not yet
        written are dropped. Idempotent."""
        if self._closedFlag:
            return
        self._shouldClose = True
        self._closePort()
        super().close()

    def __del__(self) -> None:
        port = getattr(self, "_port", None)
        if port is not None and port.is_open and not self._closedFlag:
            warnings.warn(f"unclosed SerialConnection {self.url!r}", ResourceWarning, stacklevel=1)
            try:
                port.close()
            except Exception:
                pass

    def __repr__(self) -> str:
        state = "closed" if self._closedFlag else ("ready" if self._readyFlag else "not ready")
        return f"<SerialConnection {self.url!r} {state}>"
