"""Local input devices (evdev). This machine has no /dev/input and no /dev/uinput, so the device
side is a pipe carrying the same ``struct input_event`` records the kernel gives, replayed from
recorded event streams (tests/fixtures/*_events.jsonl: ``[sec, usec, type, code, value]``);
everything from the file descriptor on is the code that reads a real device. A uinput test runs
where the kernel offers it."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

evdev = pytest.importorskip("evdev")

from rtcbot.base.errors import RTCBotError, SubscriptionClosed  # noqa: E402
from rtcbot.devices.inputs import (  # noqa: E402
    INPUT_EVENT,
    Gamepad,
    InputDevice,
    Keyboard,
    Mouse,
    NoInputDeviceError,
    defaultFilter,
    translateEvent,
)

FIXTURES = Path(__file__).parent / "fixtures"
T = 1700000000


def recorded(name: str) -> list[tuple[int, int, int, int, int]]:
    lines = (FIXTURES / f"{name}_events.jsonl").read_text().splitlines()
    return [tuple(json.loads(line)) for line in lines if line.strip()]


def packed(events) -> bytes:
    return b"".join(INPUT_EVENT.pack(*e) for e in events)


class PipeDevice:
    """The reading side of an event device: ``fd`` yields ``struct input_event`` records."""

    def __init__(self, name: str = "Recorded device") -> None:
        self.fd, self.writer = os.pipe()
        self.path = f"pipe:{self.fd}"
        self.name = name
        self.closed = False

    def send(self, data: bytes) -> None:
        os.write(self.writer, data)

    def unplug(self) -> None:
        os.close(self.writer)
        self.writer = -1

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)

    def cleanup(self) -> None:
        self.close()
        if self.writer >= 0:
            os.close(self.writer)


@pytest.fixture
def pipe_device():
    made = []

    def make(name="Recorded device"):
        dev = PipeDevice(name)
        made.append(dev)
        return dev

    yield make
    for dev in made:
        dev.cleanup()


GAMEPAD_EXPECTED = [
    (T + 0.10, "BTN_SOUTH", 1, "Key"),
    (T + 0.18, "ABS_X", -253, "Absolute"),
    (T + 0.18, "ABS_Y", 4957, "Absolute"),
    (T + 0.26, "ABS_HAT0X", -1, "Absolute"),
    (T + 0.30, "ABS_RZ", 255, "Absolute"),
    (T + 0.34, "BTN_SOUTH", 0, "Key"),
    (T + 0.40, "BTN_NORTH", 1, "Key"),
]
KEYBOARD_EXPECTED = [
    (T + 0.50, "MSC_SCAN", 0x70004, "Misc"),
    (T + 0.50, "KEY_A", 1, "Key"),
    (T + 0.75, "KEY_A", 2, "Key"),
    (T + 0.80, "MSC_SCAN", 0x70004, "Misc"),
    (T + 0.80, "KEY_A", 0, "Key"),
    (T + 0.90, "KEY_LEFTSHIFT", 1, "Key"),
    (T + 0.95, "KEY_MUTE", 1, "Key"),
]
MOUSE_EXPECTED = [
    (T + 1.005, "REL_X", 2, "Relative"),
    (T + 1.005, "REL_Y", -1, "Relative"),
    (T + 1.009, "MSC_SCAN", 0x90001, "Misc"),
    (T + 1.009, "BTN_LEFT", 1, "Key"),
    (T + 1.020, "REL_WHEEL", -1, "Relative"),
    (T + 1.030, "MSC_SCAN", 0x90001, "Misc"),
    (T + 1.030, "BTN_LEFT", 0, "Key"),
]


def as_tuples(events):
    assert all(set(e) == {"timestamp", "code", "state", "event"} for e in events)
    return [(e["timestamp"], e["code"], e["state"], e["event"]) for e in events]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("gamepad", GAMEPAD_EXPECTED), ("keyboard", KEYBOARD_EXPECTED), ("mouse", MOUSE_EXPECTED)],
)
def test_translation_of_recorded_streams(name, expected):
    events = [translateEvent(*e) for e in recorded(name)]
    kept = [e for e in events if defaultFilter(e)]
    assert len(events) - len(kept) == sum(1 for e in recorded(name) if e[2] == 0)
    got = as_tuples(kept)
    assert [g[1:] for g in got] == [x[1:] for x in expected]
    assert [g[0] for g in got] == pytest.approx([x[0] for x in expected])


def test_sync_and_unknown_codes_have_names():
    assert translateEvent(T, 0, 0, 0, 0)["code"] == "SYN_REPORT"
    assert translateEvent(T, 0, 0, 0, 0)["event"] == "Sync"
    unknown = translateEvent(T, 0, 0x03, 0x3E, 1)
    assert unknown["code"] == "0x03:0x3e" and unknown["event"] == "Absolute"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("gamepad", GAMEPAD_EXPECTED), ("keyboard", KEYBOARD_EXPECTED), ("mouse", MOUSE_EXPECTED)],
)
async def test_recorded_streams_through_a_device_fd(pipe_device, name, expected):
    source = pipe_device(f"Recorded {name}")
    device = InputDevice(source)
    try:
        async with asyncio.timeout(5):
            await device.onReady()
            data = packed(recorded(name))
            # split mid-record: a read may end inside a struct input_event
            source.send(data[:37])
            source.send(data[37:])
            got = [await device.get() for _ in expected]
        assert [g[1:] for g in as_tuples(got)] == [x[1:] for x in expected]
        assert device.statistics()["filtered"] == sum(1 for e in recorded(name) if e[2] == 0)
    finally:
        device.close()


async def test_event_filter_and_callbacks(pipe_device):
    source = pipe_device()
    device = InputDevice(source, eventFilter=lambda e: e["event"] == "Absolute")
    seen = []
    done = asyncio.Event()

    @device.subscribe
    def on_event(event):
        seen.append(event["code"])
        if len(seen) == 4:
            done.set()

    try:
        source.send(packed(recorded("gamepad")))
        async with asyncio.timeout(5):
            await done.wait()
        assert seen == ["ABS_X", "ABS_Y", "ABS_HAT0X", "ABS_RZ"]
    finally:
        device.close()


async def test_close_is_prompt_and_closes_the_device(pipe_device):
    source = pipe_device()
    device = InputDevice(source)
    async with asyncio.timeout(5):
        await device.onReady()
    reader = asyncio.ensure_future(device.get())
    await asyncio.sleep(0)
    device.close()
    assert source.closed
    with pytest.raises(OSError):
        os.fstat(source.fd)
    async with asyncio.timeout(5):
        with pytest.raises(SubscriptionClosed):
            await reader
        await device


async def test_unplugging_reaches_on_error(pipe_device):
    source = pipe_device("Wireless Controller")
    device = InputDevice(source)
    async with asyncio.timeout(5):
        await device.onReady()
        source.unplug()
        err = await device.onError()
    assert isinstance(err, RTCBotError)
    assert "unplugged" in str(err) and "Wireless Controller" in str(err)
    assert device.closed and source.closed


async def test_input_device_is_a_producer(pipe_device):
    from rtcbot.testing import check_producer

    sources = []

    def make():
        sources.append(pipe_device())
        return InputDevice(sources[-1])

    def emit(device, i):
        sources[-1].send(packed([(T, i, 1, 0x130, i % 2), (T, i, 0, 0, 0)]))

    await check_producer(make, emit=emit)


@pytest.mark.parametrize("kind", [Gamepad, Keyboard, Mouse])
def test_no_device_is_a_clear_error(tmp_path, kind):
    (tmp_path / "event0").write_bytes(b"")  # not an event device
    with pytest.raises(NoInputDeviceError) as info:
        kind(directory=str(tmp_path))
    message = str(info.value)
    assert f"no {kind.__name__.lower()} number 0 (found none)" in message
    assert str(tmp_path / "event0") in message
    assert not isinstance(info.value, IndexError)


def test_no_input_directory_is_a_clear_error(tmp_path):
    missing = tmp_path / "input"
    with pytest.raises(NoInputDeviceError, match=f"{missing} does not exist"):
        Gamepad(directory=str(missing))


def test_a_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(NoInputDeviceError, match="event42"):
        Keyboard(device=str(tmp_path / "event42"))


def test_bad_device_argument():
    with pytest.raises(ValueError, match="-1"):
        Gamepad(device=-1)
    with pytest.raises(TypeError, match="device must be"):
        InputDevice(object())


@pytest.mark.skipif(not os.access("/dev/uinput", os.W_OK), reason="no writable /dev/uinput here")
async def test_uinput_virtual_gamepad():
    from evdev import UInput
    from evdev import ecodes as e

    caps = {
        e.EV_KEY: [e.BTN_SOUTH, e.BTN_EAST],
        e.EV_ABS: [(e.ABS_X, evdev.AbsInfo(0, -32768, 32767, 16, 128, 0))],
    }
    with UInput(caps, name="rtcbot test gamepad") as ui:
        pad = Gamepad(device=ui.device.path)
        try:
            async with asyncio.timeout(5):
                await pad.onReady()
                ui.write(e.EV_KEY, e.BTN_SOUTH, 1)
                ui.write(e.EV_ABS, e.ABS_X, -253)
                ui.syn()
                first, second = await pad.get(), await pad.get()
            assert (first["code"], first["state"], first["event"]) == ("BTN_SOUTH", 1, "Key")
            assert (second["code"], second["state"]) == ("ABS_X", -253)
        finally:
            pad.close()


def test_missing_evdev_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_evdev(name, *args, **kwargs):
        if name == "evdev":
            raise ImportError("No module named 'evdev'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_evdev)
    with pytest.raises(ImportError, match=r'pip install "rtcbot\[inputs\]"'):
        Gamepad()
    monkeypatch.setattr("sys.platform", "darwin")
    with pytest.raises(ImportError, match=r"not available on darwin.*rtcbot\.js"):
        Mouse(device="/dev/input/event0")
