"""SerialConnection: the framing rules (SerialCodec, no I/O) and the connection over a real pty
pair against a pretend Arduino running the tutorial sketches (examples/arduino/fake_arduino.py).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import struct
import sys
from pathlib import Path

import pytest

pytest.importorskip("serial")

from rtcbot.base.errors import SubscriptionClosed
from rtcbot.base.subscriptions import QueueSubscription
from rtcbot.devices.serial import MAX_LINE, SerialCodec, SerialConnection, SerialError

ROOT = Path(__file__).resolve().parents[1]
START = bytes([192, 105])

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs ptys")


def _load_fake_arduino():
    spec = importlib.util.spec_from_file_location(
        "fake_arduino", ROOT / "examples" / "arduino" / "fake_arduino.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fake_arduino", module)
    spec.loader.exec_module(module)
    return module


FakeArduino = _load_fake_arduino().FakeArduino


@pytest.fixture
def boards():
    made = []

    def make(sketch="text"):
        board = FakeArduino(sketch, boot_delay=0.05).start()
        made.append(board)
        return board

    yield make
    for board in made:
        board.stop()


async def wait_thread_event(event, timeout=5.0):
    assert await asyncio.to_thread(event.wait, timeout), "timed out waiting for the board"


def open_fds_to(path: str) -> list[int]:
    fds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == path:
                fds.append(int(name))
        except OSError:
            pass
    return fds


# --------------------------------------------------------------------------- SerialCodec


def test_lines_lose_their_line_endings_and_may_arrive_in_pieces():
    codec = SerialCodec()
    assert codec.feed(b"I received: H\r\nI rec") == [b"I received: H"]
    assert codec.feed(b"eived: i\r") == []
    assert codec.feed(b"\nplain\n\n") == [b"I received: i", b"plain", b""]
    assert codec.feed(b"cr\rinside\r\n") == [b"cr\rinside"]
    assert codec.statistics()["received"] == 5


def test_an_overlong_line_is_discarded_and_counted():
    codec = SerialCodec()
    assert codec.feed(b"x" * (MAX_LINE + 1)) == []
    assert codec.feed(b"tail\nnext\n") == [b"tail", b"next"]
    assert codec.statistics()["discarded_lines"] == 1


def test_raw_mode_gives_chunks_as_they_arrive():
    codec = SerialCodec(readFormat=None)
    assert codec.feed(b"\x00\x01") == [b"\x00\x01"]
    assert codec.feed(b"") == []


def test_text_start_bytes_are_a_handshake():
    codec = SerialCodec(startByte=START)
    assert not codec.synced
    assert codec.feed(b"boot noise\n\xc0") == []
    assert not codec.synced
    assert codec.feed(b"iI received: H\r\n") == [b"I received: H"]
    assert codec.synced
    assert codec.statistics()["skipped_bytes"] == len(b"boot noise\n")
    # after the handshake, the start bytes are ordinary data
    assert codec.feed(START + b"\n") == [START]


def test_structs_as_tuples_and_dicts():
    codec = SerialCodec(readFormat="<BH")
    packed = struct.pack("<BH", 2, 1003)
    assert codec.feed(packed + packed[:1]) == [(2, 1003)]
    assert codec.feed(packed[1:]) == [(2, 1003)]
    codec = SerialCodec(readFormat="<BH", readKeys=["value1", "value2"])
    assert codec.feed(packed) == [{"value1": 2, "value2": 1003}]


def test_struct_start_bytes_skip_garbage_between_messages():
    codec = SerialCodec(readFormat="<BH", startByte=START)
    assert codec.synced  # struct framing needs no handshake
    m1 = START + struct.pack("<BH", 1, 1000)
    m2 = START + struct.pack("<BH", 2, 2000)
    assert codec.feed(b"\x07" + m1 + b"\x00\xc0" + m2) == [(1, 1000), (2, 2000)]
    assert codec.statistics()["skipped_bytes"] == 3


def test_struct_start_bytes_split_across_reads():
    codec = SerialCodec(readFormat="<BH", startByte=START)
    data = b"\x01" + START + struct.pack("<BH", 7, 300) + START + struct.pack("<BH", 8, 400)
    out = []
    for i in range(len(data)):  # one byte at a time: every split point
        out += codec.feed(data[i : i + 1])
    assert out == [(7, 300), (8, 400)]
    assert codec.statistics() == {
        "received": 2,
        "skipped_bytes": 1,
        "discarded_lines": 0,
        "damaged_messages": 0,
        "buffered_bytes": 0,
    }


def test_struct_start_bytes_resynchronise_after_a_lost_byte():
    codec = SerialCodec(readFormat="<BH", readKeys=["a", "b"], startByte=START)
    good = [START + struct.pack("<BH", i, 1000 + i) for i in range(4)]
    damaged = good[1][:-1]  # the last byte of message 1 was lost
    out = codec.feed(good[0] + damaged + good[2] + good[3])
    assert out == [{"a": 0, "b": 1000}, {"a": 2, "b": 1002}, {"a": 3, "b": 1003}]
    assert codec.statistics()["damaged_messages"] == 1


def test_struct_payload_containing_the_start_bytes_is_kept():
    codec = SerialCodec(readFormat="<HB", startByte=START)
    tricky = START + struct.pack("<HB", 0x69C0, 5)  # the value's bytes are the start bytes
    assert codec.feed(tricky + tricky) == [(0x69C0, 5), (0x69C0, 5)]
    assert codec.feed(tricky) == [(0x69C0, 5)]


def test_without_start_bytes_structs_are_fixed_size_chunks():
    codec = SerialCodec(readFormat="<h")
    assert codec.feed(struct.pack("<hh", -1, 2) + b"\x01") == [(-1,), (2,)]
    assert codec.statistics()["buffered_bytes"] == 1


def test_encode_text_bytes_and_structs():
    assert SerialCodec().encode("héllo") == "héllo".encode()
    assert SerialCodec().encode(b"\x00") == b"\x00"
    codec = SerialCodec(writeFormat="<HB", writeKeys=["value1", "value2"])
    assert codec.encode({"value1": 1003, "value2": 2, "extra": 0}) == struct.pack("<HB", 1003, 2)
    assert codec.encode((1003, 2)) == struct.pack("<HB", 1003, 2)
    assert codec.encode([1003, 2]) == struct.pack("<HB", 1003, 2)
    assert codec.encode(b"raw") == b"raw"


def test_encode_errors_name_the_message():
    codec = SerialCodec(writeFormat="<HB", writeKeys=["value1", "value2"])
    with pytest.raises(ValueError, match=r"value1': 1003}: it has no key 'value2'"):
        codec.encode({"value1": 1003})
    with pytest.raises(ValueError, match=r"70000.*<HB"):
        codec.encode({"value1": 70000, "value2": 2})
    with pytest.raises(ValueError, match=r"<HB"):
        codec.encode((1, 2, 3))
    with pytest.raises(TypeError, match=r"str 'hello'"):
        codec.encode("hello")
    with pytest.raises(TypeError, match=r"dict .*writeKeys"):
        SerialCodec(writeFormat="<HB").encode({"a": 1})
    with pytest.raises(TypeError, match=r"int 5"):
        SerialCodec().encode(5)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"readFormat": "<Q!"}, ValueError, "readFormat '<Q!'"),
        ({"writeFormat": 5}, TypeError, "writeFormat must be"),
        ({"readFormat": "<BH", "readKeys": ["a"]}, ValueError, "1 keys but readFormat '<BH'"),
        ({"writeKeys": ["a"]}, ValueError, "needs a struct writeFormat"),
        ({"readFormat": "<B", "readKeys": "a"}, TypeError, "readKeys must be a list"),
        ({"startByte": 300}, ValueError, "300"),
        ({"startByte": b""}, ValueError, "empty"),
        ({"startByte": "\xc0"}, TypeError, "bytes literal"),
    ],
)
def test_bad_parameters_are_refused_by_name(kwargs, error, match):
    with pytest.raises(error, match=match):
        SerialCodec(**kwargs)


# --------------------------------------------------------------------------- over a pty


def test_a_missing_port_raises_naming_it():
    import serial

    with pytest.raises(serial.SerialException, match="/dev/does-not-exist"):
        SerialConnection("/dev/does-not-exist")


def test_bad_parameters_fail_before_opening_the_port():
    with pytest.raises(ValueError, match="delayWriteStart"):
        SerialConnection("/dev/does-not-exist", delayWriteStart=-1)


async def test_text_echo_like_the_basic_sketch(boards):
    board = boards("text")
    conn = SerialConnection(board.path, startByte=START)
    assert not conn.ready  # the sketch has not sent its start bytes yet
    try:
        conn.put_nowait("Hello world!")  # queued until the start bytes arrive
        async with asyncio.timeout(5):
            lines = [(await conn.get()).decode("ascii") for _ in range(len("Hello world!"))]
        assert conn.ready
        assert lines == [f"I received: {c}" for c in "Hello world!"]
        assert conn.statistics()["sent"] == 1
    finally:
        conn.close()
    await asyncio.wait_for(conn, 5)


async def test_struct_field_swap_like_the_struct_sketch(boards):
    board = boards("struct")
    conn = SerialConnection(
        board.path,
        writeFormat="<HB",
        writeKeys=["value1", "value2"],
        readFormat="<BH",
        readKeys=["value1", "value2"],
        startByte=START,
    )
    try:
        for _ in range(3):
            conn.put_nowait({"value1": 1003, "value2": 2})
        async with asyncio.timeout(5):
            replies = [await conn.get() for _ in range(3)]
        assert replies == [{"value1": 2, "value2": 1003}] * 3
    finally:
        conn.close()


async def test_struct_framing_resynchronises_over_the_wire(boards):
    board = boards("struct")
    conn = SerialConnection(board.path, writeFormat="<HB", readFormat="<BH", startByte=START)
    try:
        async with asyncio.timeout(5):
            await conn.onReady()
            await wait_thread_event(board.opened)
            board.inject(b"\x07")  # a garbage byte on the line
            conn.put_nowait((1000, 1))
            assert await conn.get() == (1, 1000)
            # a message that lost its last byte, then a good one (one write: one read)
            board.inject(START + struct.pack("<BH", 9, 999)[:-1] + START + struct.pack("<BH", 5, 6))
            assert await conn.get() == (5, 6)
            conn.put_nowait((1001, 2))
            assert await conn.get() == (2, 1001)
        stats = conn.statistics()
        assert stats["skipped_bytes"] >= 1
        assert stats["damaged_messages"] == 1
    finally:
        conn.close()


async def test_a_bad_message_raises_at_the_call_site_and_later_ones_go_through(boards):
    board = boards("struct")
    conn = SerialConnection(
        board.path,
        writeFormat="<HB",
        writeKeys=["value1", "value2"],
        readFormat="<BH",
        startByte=START,
    )
    try:
        with pytest.raises(ValueError, match="no key 'value2'"):
            conn.put_nowait({"value1": 1003})
        with pytest.raises(ValueError, match="70000"):
            conn.put_nowait({"value1": 70000, "value2": 1})
        with pytest.raises(TypeError, match="str 'oops'"):
            conn.put_nowait("oops")
        conn.put_nowait({"value1": 1003, "value2": 2})
        async with asyncio.timeout(5):
            assert await conn.get() == (2, 1003)
        assert not conn.closed and conn.error is None
    finally:
        conn.close()


async def test_bad_messages_from_a_subscription_are_skipped_and_counted(boards):
    from rtcbot.base import SubscriptionProducer

    board = boards("struct")
    conn = SerialConnection(
        board.path,
        writeFormat="<HB",
        writeKeys=["value1", "value2"],
        readFormat="<BH",
        startByte=START,
    )
    source = SubscriptionProducer()
    try:
        conn.putSubscription(source)
        source.put_nowait({"value1": 1})  # missing a key
        source.put_nowait({"value1": 7, "value2": 8})
        async with asyncio.timeout(5):
            assert await conn.get() == (8, 7)
        assert conn.statistics()["bad_messages"] == 1
        assert not conn.closed
    finally:
        source.close()
        conn.close()


async def test_delay_write_start_holds_writes(boards):
    board = boards("text")
    held = SerialConnection(board.path, delayWriteStart=30)
    try:
        held.put_nowait("a")
        async with asyncio.timeout(5):
            await held.onReady()
        for _ in range(20):  # let the writer run, if it would
            await asyncio.sleep(0)
        assert held.statistics()["sent"] == 0
    finally:
        held.close()
    conn = SerialConnection(board.path, startByte=START, delayWriteStart=0.01)
    try:
        conn.put_nowait("b")
        async with asyncio.timeout(5):
            assert await conn.get() == b"I received: b"
    finally:
        conn.close()


async def test_close_closes_the_port(boards):
    board = boards("text")
    conn = SerialConnection(board.path)
    async with asyncio.timeout(5):
        await conn.onReady()
        await wait_thread_event(board.opened)
    fds = open_fds_to(board.path)
    assert fds, "the port should be open"
    reader = asyncio.ensure_future(conn.get())
    await asyncio.sleep(0)
    conn.close()
    assert open_fds_to(board.path) == []  # released before close() returned
    with pytest.raises(OSError):
        os.fstat(fds[0])
    async with asyncio.timeout(5):
        with pytest.raises(SubscriptionClosed):
            await reader
        await conn
        await wait_thread_event(board.closed)  # the board saw the line hang up
    with pytest.raises(SubscriptionClosed):
        conn.put_nowait("late")


async def test_unplugging_reaches_on_error_and_closes(boards):
    board = FakeArduino("text", boot_delay=0.05).start()
    conn = SerialConnection(board.path)
    errors = []
    conn.onError(errors.append)
    sub = conn.subscribe()
    try:
        async with asyncio.timeout(5):
            await conn.onReady()
            board.stop()  # the device disappears
            err = await conn.onError()
            with pytest.raises(SubscriptionClosed):
                await sub.get()
        assert isinstance(err, SerialError)
        assert board.path in str(err)
        assert errors == [err]
        assert conn.closed
        assert open_fds_to(board.path) == []
    finally:
        conn.close()


async def test_loop_url_uses_the_reader_thread():
    conn = SerialConnection("loop://", readFormat="<H", writeFormat="<H")
    try:
        conn.put_nowait((513,))
        conn.put_nowait(b"\x01\x00")
        async with asyncio.timeout(5):
            assert await conn.get() == (513,)
            assert await conn.get() == (1,)
    finally:
        conn.close()
    async with asyncio.timeout(5):
        await conn


async def test_raw_mode_over_a_pty(boards):
    board = boards("text")
    conn = SerialConnection(board.path, readFormat=None, startByte=START)
    sub = conn.subscribe(QueueSubscription())
    try:
        conn.put_nowait(b"z")
        data = b""
        async with asyncio.timeout(5):
            while len(data) < len(b"I received: z\r\n"):
                data += await sub.get()
        assert data == b"I received: z\r\n"
    finally:
        conn.close()


async def test_serial_connection_is_a_producer(boards):
    from rtcbot.testing import check_producer

    board = boards("text")

    def make():
        return SerialConnection(board.path)

    def emit(conn, i):
        board.inject(b"line %d\n" % i)

    await check_producer(make, emit=emit)


async def test_serial_connection_is_a_consumer(boards):
    from rtcbot.testing import check_consumer

    board = boards("text")

    async def received(conn):
        return list(bytes(board.received))

    await check_consumer(
        lambda: SerialConnection(board.path), sample=lambda i: "x", received=received
    )


async def test_writes_keep_their_order_across_a_full_line(boards):
    # A write larger than the pty buffers is written in parts (waiting for the line to drain);
    # messages put meanwhile must follow it, not overtake it.
    board = boards("struct")
    conn = SerialConnection(
        board.path,
        writeFormat="<HB",
        writeKeys=["value1", "value2"],
        readFormat="<BH",
        startByte=START,
    )
    out = struct.Struct("<HB")
    try:
        async with asyncio.timeout(20):
            await conn.onReady()
            conn.put_nowait(b"".join(out.pack(i, i & 0xFF) for i in range(20000)))
            for i in range(20000, 20100):
                conn.put_nowait({"value1": i, "value2": i & 0xFF})
            replies = [await conn.get() for _ in range(20100)]
        assert replies == [(i & 0xFF, i) for i in range(20100)]
        assert conn.statistics()["sent"] == 101
    finally:
        conn.close()


def test_device_modules_import_no_hardware_library():
    import subprocess

    code = (
        "import sys, rtcbot, rtcbot.devices, rtcbot.arduino, rtcbot.inputs, rtcbot.devices.gps\n"
        "print(sorted(m for m in ('serial', 'pynmea2', 'evdev') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_missing_pyserial_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_serial(name, *args, **kwargs):
        if name == "serial":
            raise ImportError("No module named 'serial'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_serial)
    with pytest.raises(ImportError, match=r'pip install "rtcbot\[serial\]"'):
        SerialConnection("/dev/ttyACM0")
