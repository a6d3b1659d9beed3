"""A pretend Arduino on a pseudo-terminal: try the Arduino examples without a board.

    python examples/arduino/fake_arduino.py text      # prints the port, e.g. /dev/pts/5
    python examples/arduino/basic.py /dev/pts/5       # in another terminal

    python examples/arduino/fake_arduino.py struct
    python examples/arduino/structs.py /dev/pts/6

It behaves like the sketches next to it. Like a real board it "resets" whenever a program opens
the port: it waits until the port is configured, boots (``boot_delay`` seconds; a real Uno takes
about 2 s) and then runs its sketch:

* ``text`` (``basic.ino``): writes the start bytes 192, 105 once, then answers every byte it
  receives with ``I received: <byte>`` and ``\\r\\n``.
* ``struct`` (``structs.ino``): reads ``<HB`` structs ``(value1, value2)`` and answers each with
  the start bytes followed by the ``<BH`` struct ``(value2, value1)``: the fields swapped.

The tests of rtcbot use it as the other end of the serial line. Linux and macOS only (ptys).
"""

from __future__ import annotations

import os
import select
import struct
import sys
import termios
import threading
import time

START = bytes([192, 105])
IN_STRUCT = struct.Struct("<HB")
OUT_STRUCT = struct.Struct("<BH")


class FakeArduino:
    """The board end of a pty pair; ``path`` is the port a program opens.

    ``start()`` runs it in a daemon thread, ``stop()`` ends it. ``inject(data)`` makes the
    board send raw bytes (to simulate line noise). ``opened`` and ``closed`` are
    ``threading.Event`` set when a program opens and closes the port; ``received`` holds every
    byte the board got.
    """

    def __init__(self, sketch: str = "text", boot_delay: float = 0.2) -> None:
        if sketch not in ("text", "struct"):
            raise ValueError(f"sketch must be 'text' or 'struct', got {sketch!r}")
        self.sketch = sketch
        self.boot_delay = boot_delay
        self._master, slave = os.openpty()
        self.path = os.ttyname(slave)
        self._cooked = termios.tcgetattr(slave)
        os.close(slave)  # nobody has the port open until a program opens it
        os.set_blocking(self._master, False)
        self._wake_r, self._wake_w = os.pipe()
        self._stop = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending = bytearray()
        self.received = bytearray()
        self.opened = threading.Event()
        self.closed = threading.Event()
        self.opens = 0

    # ------------------------------------------------------------------ control

    def start(self) -> FakeArduino:
        self._thread = threading.Thread(target=self._run, name="fake-arduino", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(5)
        for fd in (self._master, self._wake_r, self._wake_w):
            os.close(fd)

    def inject(self, data: bytes) -> None:
        """Send ``data`` from the board as it is (e.g. a garbage byte)."""
        with self._lock:
            self._send(data)

    def __enter__(self) -> FakeArduino:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the board

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                select.select([], [self._master], [], 1.0)
                continue
            view = view[n:]

    def _port_open(self) -> bool:
        # With no program holding the port, the master end reports a hang-up.
        p = select.poll()
        p.register(self._master, select.POLLIN)
        return not any(ev & select.POLLHUP for _, ev in p.poll(0))

    def _configured(self) -> bool:
        # The program's serial library switched the line to raw mode (and flushed it).
        return not termios.tcgetattr(self._master)[3] & termios.ICANON

    def _run(self) -> None:
        while not self._stop:
            # Powered, waiting for a program to open the port (a short nap: a pty gives no
            # event for "opened").
            if not (self._port_open() and self._configured()):
                if self._sleep(0.005):
                    return
                continue
            self.opens += 1
            self.closed.clear()
            self.opened.set()
            if self._sleep(self.boot_delay):  # the reset that opening the port causes
                return
            self._pending.clear()
            if self.sketch == "text":
                with self._lock:
                    self._send(START)
            self._serve()
            # The program closed the port: back to the cooked line a fresh pty has.
            termios.tcsetattr(self._master, termios.TCSANOW, self._cooked)
            self.opened.clear()
            self.closed.set()

    def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early when stopped; True if stopped."""
        r, _, _ = select.select([self._wake_r], [], [], seconds)
        return bool(r) or self._stop

    def _serve(self) -> None:
        while not self._stop:
            r, _, _ = select.select([self._master, self._wake_r], [], [])
            if self._wake_r in r:
                return
            try:
                data = os.read(self._master, 4096)
            except BlockingIOError:
                continue
            except OSError:  # EIO: the program closed the port
                return
            if not data:
                return
            self.received += data
            with self._lock:
                self._sketch(data)

    def _sketch(self, data: bytes) -> None:
        if self.sketch == "text":
            for b in data:
                self._send(b"I received: " + bytes([b]) + b"\r\n")
            return
        self._pending += data
        while len(self._pending) >= IN_STRUCT.size:
            value1, value2 = IN_STRUCT.unpack_from(self._pending)
            del self._pending[: IN_STRUCT.size]
            self._send(START + OUT_STRUCT.pack(value2, value1))


def main() -> None:
    sketch = sys.argv[1] if len(sys.argv) > 1 else "text"
    board = FakeArduino(sketch).start()
    print(board.path, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        board.stop()


if __name__ == "__main__":
    main()
