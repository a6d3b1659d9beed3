"""A pretend GPS receiver on a pseudo-terminal: replays a recorded NMEA session forever.

    python examples/gps/fake_gps.py [session.nmea] [lines-per-second]   # prints the port
    python examples/gps/gps.py /dev/pts/7

Like a real receiver it talks whether or not anyone listens, so a program that opens the port
starts mid-stream (its first line is usually partial). The recording next to this file has,
on purpose, a corrupted checksum, line noise and an unknown sentence type. Linux and macOS only.
"""

from __future__ import annotations

import os
import sys
import threading
import tty
from pathlib import Path

HERE = Path(__file__).resolve().parent


class FakeGPS:
    """``path`` is the port; ``start()`` streams ``session`` (bytes) line by line in a thread,
    ``rate`` lines per second, looping; ``stop()`` ends it."""

    def __init__(self, session: bytes | None = None, rate: float = 20.0) -> None:
        if session is None:
            session = (HERE / "session.nmea").read_bytes()
        self.lines = session.splitlines(keepends=True)
        self.rate = rate
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # keep our end open: the line stays up between programs
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> FakeGPS:
        self._thread = threading.Thread(target=self._run, name="fake-gps", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        os.close(self._master)
        os.close(self._slave)

    def _run(self) -> None:
        while True:
            for line in self.lines:
                if self._stop.wait(1.0 / self.rate):  # the receiver's output rate
                    return
                try:
                    os.write(self._master, line)
                except BlockingIOError:
                    pass  # nobody reads and the line's buffer is full: lost, as on a UART


def main() -> None:
    session = Path(sys.argv[1]).read_bytes() if len(sys.argv) > 1 else None
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
    gps = FakeGPS(session, rate).start()
    print(gps.path, flush=True)
    try:
        gps._stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        gps.stop()


if __name__ == "__main__":
    main()
