"""Gamepads, keyboards and mice plugged into the robot, as producers of input events (Linux).

Each device produces dicts like RTCBot 0.2.5's::

    {"timestamp": 1700000000.123456, "code": "BTN_SOUTH", "state": 1, "event": "Key"}
    {"timestamp": 1700000000.131002, "code": "ABS_X", "state": -253, "event": "Absolute"}
    {"timestamp": 1700000000.140117, "code": "REL_X", "state": 2, "event": "Relative"}

``timestamp`` is the kernel's time of the event in seconds, ``code`` the Linux event code name
(``KEY_A``, ``BTN_SOUTH``, ``ABS_HAT0X``...), ``state`` its value (1 pressed, 0 released, 2
auto-repeat for keys; the position for axes; the movement for relative axes) and ``event`` the
event type (``Key``, ``Absolute``, ``Relative``, ``Misc``, ``Sync``...). The default
``eventFilter`` drops the ``SYN_REPORT`` markers that end each batch.

Devices are read with evdev (``pip install "rtcbot[inputs]"``) from ``/dev/input/event*``: the
event device's file descriptor is watched by the event loop (no thread, no child process), so
``close()`` is immediate. The user needs read access to the device (the ``input`` group).
evdev exists only on Linux; elsewhere creating a device raises ImportError saying so (in a
browser, ``rtcbot.js``'s ``Keyboard`` and ``Gamepad`` send their events over a connection).
"""

from __future__ import annotations

import asyncio
import errno
import glob
import logging
import os
import re
import struct
import sys
from collections.abc import Callable, Iterable
from typing import Any

from ..base.base import BaseSubscriptionProducer
from ..base.errors import RTCBotError

__all__ = [
    "Gamepad",
    "InputDevice",
    "Keyboard",
    "Mouse",
    "NoInputDeviceError",
    "defaultFilter",
    "eventName",
    "findDevices",
    "listDevices",
    "translateEvent",
]

_log = logging.getLogger("rtcbot.devices.inputs")

#: ``struct input_event`` of <linux/input.h>: a ``struct timeval`` then type, code, value.
INPUT_EVENT = struct.Struct("llHHi")

#: Event type names as RTCBot 0.2.5 (the ``inputs`` library) gave them.
EVENT_TYPES = {
    0x00: "Sync",
    0x01: "Key",
    0x02: "Relative",
    0x03: "Absolute",
    0x04: "Misc",
    0x05: "Switch",
    0x11: "LED",
    0x12: "Sound",
    0x14: "Repeat",
    0x15: "ForceFeedback",
    0x16: "Power",
    0x17: "ForceFeedbackStatus",
}

# Where Linux gives one code several names, the name RTCBot 0.2.5 users saw.
_PREFERRED = {
    "BTN_SOUTH",
    "BTN_EAST",
    "BTN_NORTH",
    "BTN_WEST",
    "BTN_LEFT",
    "BTN_TRIGGER",
    "BTN_0",
    "BTN_TOOL_PEN",
    "BTN_GEAR_DOWN",
    "KEY_MUTE",
    "KEY_SCREENLOCK",
    "KEY_HANGEUL",
}

_GAMEPAD_BUTTONS = range(0x120, 0x140)  # BTN_JOYSTICK.. and BTN_GAMEPAD.. ranges
_BTN_LEFT = 0x110
_KEYS_OF_A_KEYBOARD = (30, 44, 57, 28)  # KEY_A, KEY_Z, KEY_SPACE, KEY_ENTER


class NoInputDeviceError(RTCBotError, LookupError):
    """No input device of the requested kind (or at the requested index) was found."""


def import_evdev() -> Any:
    """The evdev module, or an ImportError naming the extra (and saying evdev is Linux-only)."""
    try:
        import evdev
    except ImportError as exc:
        if not sys.platform.startswith("linux"):
            raise ImportError(
                f"Gamepad, Keyboard and Mouse read Linux event devices (evdev) and are not "
                f"available on {sys.platform}; in a browser use rtcbot.js's Gamepad and "
                "Keyboard and send their events over an RTCConnection"
            ) from exc
        raise ImportError(
            'Gamepad, Keyboard and Mouse need evdev: pip install "rtcbot[inputs]"'
        ) from exc
    return evdev


_names: dict[tuple[int, int], str] = {}


def eventName(type_: int, code: int) -> str:
    """The name of event ``code`` of event type ``type_`` (``eventName(1, 0x130)`` is
    ``"BTN_SOUTH"``); unknown codes are named like ``"0x03:0x2f"``."""
    key = (type_, code)
    name = _names.get(key)
    if name is None:
        ecodes = import_evdev().ecodes
        names = ecodes.bytype.get(type_, {}).get(code)
        if names is None and type_ == ecodes.EV_KEY:
            names = ecodes.BTN.get(code)
        if names is None:
            name = f"0x{type_:02x}:0x{code:02x}"
        elif isinstance(names, str):
            name = names
        else:
            preferred = [n for n in names if n in _PREFERRED]
            name = preferred[0] if preferred else sorted(names)[0]
        _names[key] = name
    return name


def translateEvent(sec: int, usec: int, type_: int, code: int, value: int) -> dict[str, Any]:
    """One kernel input event (the fields of ``struct input_event``) as an rtcbot event dict:
    ``{"timestamp": sec + usec/1e6, "code": str, "state": value, "event": type name}``."""
    return {
        "timestamp": sec + usec / 1_000_000,
        "code": eventName(type_, code),
        "state": value,
        "event": EVENT_TYPES.get(type_, f"0x{type_:02x}"),
    }


def defaultFilter(event: dict[str, Any]) -> bool:
    """The default ``eventFilter``: keep every event but the ``SYN_REPORT`` batch markers."""
    return event["code"] != "SYN_REPORT"


def _event_number(path: str) -> int:
    match = re.search(r"(\d+)$", path)
    return int(match.group(1)) if match else 1 << 30


class _Candidate:
    __slots__ = ("denied", "name", "path", "problem")

    def __init__(self, path: str, name: str = "", problem: str = "", denied: bool = False):
        self.path = path
        self.name = name
        self.problem = problem
        self.denied = denied


def _classify(capabilities: dict[int, list[int]]) -> set[str]:
    keys = set(capabilities.get(0x01, ()))
    kinds = set()
    if keys.intersection(_GAMEPAD_BUTTONS):
        kinds.add("gamepad")
    rel = set(capabilities.get(0x02, ()))
    if {0x00, 0x01} <= rel and _BTN_LEFT in keys:
        kinds.add("mouse")
    if all(k in keys for k in _KEYS_OF_A_KEYBOARD):
        kinds.add("keyboard")
    return kinds


def findDevices(kind: str, directory: str = "/dev/input") -> tuple[list[str], list[_Candidate]]:
    """Paths of the ``kind`` ("gamepad", "keyboard" or "mouse") event devices in
    ``directory``, in event-number order, and every device looked at (with why it was not
    usable, for error messages)."""
    evdev = import_evdev()
    found: list[str] = []
    seen: list[_Candidate] = []
    for path in sorted(glob.glob(os.path.join(directory, "event*")), key=_event_number):
        try:
            dev = evdev.InputDevice(path)
        except OSError as exc:
            denied = exc.errno in (errno.EACCES, errno.EPERM)
            seen.append(_Candidate(path, problem=exc.strerror or str(exc), denied=denied))
            continue
        try:
            kinds = _classify(dev.capabilities(absinfo=False))
            seen.append(_Candidate(path, dev.name, "" if kind in kinds else f"not a {kind}"))
            if kind in kinds:
                found.append(path)
        finally:
            dev.close()
    return found, seen


def _describe_search(kind: str, directory: str, seen: list[_Candidate]) -> str:
    if not seen:
        where = f"{directory}/event*"
        if not os.path.isdir(directory):
            return f"searched {where}: {directory} does not exist (no input devices here)"
        return f"searched {where}: no event devices"
    parts = []
    for c in seen[:12]:
        label = f"{c.path}" + (f" ({c.name!r})" if c.name else "")
        parts.append(f"{label}: {c.problem}" if c.problem else label)
    more = f", and {len(seen) - 12} more" if len(seen) > 12 else ""
    hint = ""
    if any(c.denied for c in seen):
        hint = " (devices that can't be opened need read access: add the user to the 'input' group)"
    return f"searched {directory}/event*: " + "; ".join(parts) + more + hint


class InputDevice(BaseSubscriptionProducer):
    """A producer of the events of one Linux input device (see the module docstring).

    ``device``: a path (``"/dev/input/event3"``), an already opened ``evdev.InputDevice``, or
    any object with ``fd``, ``path`` and ``close()`` whose file descriptor yields
    ``struct input_event`` records. ``eventFilter(event) -> bool`` chooses the events produced
    (default: all but ``SYN_REPORT``). The device is opened by the constructor; it is ready once
    the event loop watches it. Unplugging it reaches ``onError`` and closes the producer.
    """

    def __init__(
        self,
        device: Any,
        eventFilter: Callable[[dict[str, Any]], bool] | None = defaultFilter,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if eventFilter is not None and not callable(eventFilter):
            raise TypeError(f"eventFilter must be a function of an event, got {eventFilter!r}")
        BaseSubscriptionProducer.__init__(self)
        self._eventFilter = eventFilter
        self._buffer = b""
        self._fd: int | None = None
        self._readerLoop: asyncio.AbstractEventLoop | None = None
        self._delivered = 0
        self._filtered = 0
        if isinstance(device, (str, os.PathLike)):
            evdev = import_evdev()
            try:
                device = evdev.InputDevice(os.fspath(device))
            except OSError as exc:
                raise NoInputDeviceError(
                    f"cannot open input device {os.fspath(device)!r}: {exc.strerror or exc}"
                ) from exc
        if not isinstance(getattr(device, "fd", None), int):
            raise TypeError(f"device must be a path or an evdev.InputDevice, got {device!r}")
        self.device = device
        if loop is not None:
            self._bindLoop(loop)
        self._callFromThread(self._start)

    @property
    def path(self) -> str:
        """The device's path (``/dev/input/eventN``)."""
        return str(getattr(self.device, "path", ""))

    @property
    def name(self) -> str:
        """The device's name as the kernel reports it."""
        return str(getattr(self.device, "name", ""))

    def statistics(self) -> dict[str, int]:
        """``delivered`` events and events ``filtered`` out by ``eventFilter``."""
        return {"delivered": self._delivered, "filtered": self._filtered}

    def _start(self) -> None:
        if self._shouldClose:
            return
        loop = asyncio.get_running_loop()
        fd = self.device.fd
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._onReadable)
        self._fd = fd
        self._readerLoop = loop
        self._setReady(True)

    def _onReadable(self) -> None:
        fd = self._fd
        if fd is None:
            return
        try:
            data = os.read(fd, INPUT_EVENT.size * 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._failed(exc)
            return
        if not data:
            self._failed(None)
            return
        self.feed(data)

    def feed(self, data: bytes) -> None:
        """Deliver the events in ``data`` (raw ``struct input_event`` records; a partial
        record is kept for the next call)."""
        data = self._buffer + data
        size = INPUT_EVENT.size
        end = len(data) - len(data) % size
        self._buffer = data[end:]
        for sec, usec, type_, code, value in INPUT_EVENT.iter_unpack(data[:end]):
            self._deliver(translateEvent(sec, usec, type_, code, value))

    def _deliver(self, event: dict[str, Any]) -> None:
        if self._shouldClose:
            return
        if self._eventFilter is not None:
            try:
                keep = self._eventFilter(event)
            except Exception:
                self._log.exception("eventFilter raised on %r", event)
                keep = False
            if not keep:
                self._filtered += 1
                return
        self._delivered += 1
        self._put_nowait(event)

    def _failed(self, exc: BaseException | None) -> None:
        if self._shouldClose:
            return
        if exc is None or (isinstance(exc, OSError) and exc.errno == errno.ENODEV):
            err = RTCBotError(f"input device {self.path} ({self.name!r}) was unplugged")
        else:
            err = RTCBotError(f"reading input device {self.path} ({self.name!r}) failed: {exc}")
        err.__cause__ = exc
        self._setError(err)

    def close(self) -> None:
        """Stop watching the device and close it (at once when called on the loop)."""
        if self._closedFlag:
            return
        self._shouldClose = True
        fd, self._fd = self._fd, None
        loop, self._readerLoop = self._readerLoop, None
        device = self.device
        if fd is not None and loop is not None and not loop.is_closed():
            if self._inLoopThread():
                loop.remove_reader(fd)
            else:

                def unregister() -> None:
                    loop.remove_reader(fd)
                    device.close()

                try:
                    loop.call_soon_threadsafe(unregister)
                    device = None
                except RuntimeError:
                    pass
        if device is not None:
            try:
                device.close()
            except Exception as exc:
                self._log.debug("closing %s: %r", self.path, exc)
        super().close()

    def __repr__(self) -> str:
        state = "closed" if self._closedFlag else ("ready" if self._readyFlag else "not ready")
        return f"<{type(self).__name__} {self.path} {self.name!r} {state}>"


class _KindDevice(InputDevice):
    _kind = ""

    def __init__(
        self,
        eventFilter: Callable[[dict[str, Any]], bool] | None = defaultFilter,
        loop: asyncio.AbstractEventLoop | None = None,
        device: int | str | Any = 0,
        *,
        directory: str = "/dev/input",
    ) -> None:
        if isinstance(device, bool) or (isinstance(device, int) and device < 0):
            raise ValueError(f"device must be an index >= 0, a path or a device, got {device!r}")
        if isinstance(device, int):
            paths, seen = findDevices(self._kind, directory)
            if device >= len(paths):
                found = f"found {len(paths)}" if paths else "found none"
                raise NoInputDeviceError(
                    f"no {self._kind} number {device} ({found}); "
                    + _describe_search(self._kind, directory, seen)
                )
            device = paths[device]
        super().__init__(device, eventFilter, loop)


class Gamepad(_KindDevice):
    """Events of a gamepad or joystick (a device with gamepad/joystick buttons).

    ``Gamepad()`` opens the first one found in ``/dev/input``; ``device=1`` the second,
    ``device="/dev/input/event5"`` that one. No such device raises
    :class:`NoInputDeviceError` listing what was searched. Buttons arrive as ``Key`` events
    (``BTN_SOUTH``...), sticks and triggers as ``Absolute`` (``ABS_X``, ``ABS_RZ``...), the
    d-pad usually as ``ABS_HAT0X``/``ABS_HAT0Y``.
    """

    _kind = "gamepad"


class Keyboard(_KindDevice):
    """Events of a keyboard: ``Key`` events (``KEY_A``...; state 1 down, 0 up, 2 repeat),
    and the ``Misc`` ``MSC_SCAN`` events keyboards send with them. Selection as
    :class:`Gamepad`. Keys typed are read even when the program's window is not focused:
    it reads the device, not a terminal."""

    _kind = "keyboard"


class Mouse(_KindDevice):
    """Events of a mouse: ``Relative`` movement (``REL_X``, ``REL_Y``, ``REL_WHEEL``) and
    ``Key`` buttons (``BTN_LEFT``...). Selection as :class:`Gamepad`."""

    _kind = "mouse"


def listDevices(kinds: Iterable[str] = ("gamepad", "keyboard", "mouse")) -> dict[str, list[str]]:
    """The paths of the input devices of each kind found in ``/dev/input``."""
    return {kind: findDevices(kind)[0] for kind in kinds}
