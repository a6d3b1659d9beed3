"""UDP probes to measure what the lab's link does (run inside a namespace).

``python -m rtcbot.testing.fieldlab._probe sink --bind IP --port P --seconds S`` prints
``{"event": "ready"}``, receives for ``S`` seconds (or until the sender's end mark) and
prints one JSON line: every datagram's sequence number, send time and arrival time
(``time.monotonic()``, one clock for every namespace of the machine), and its size.

``... send --to IP --port P [--bind IP] --rate BPS --size BYTES --seconds S`` sends datagrams
paced at ``BPS`` bit/s and prints ``{"sent": N, "errors": E}``.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import time

HEADER = struct.Struct("!Id")  # sequence number, send time (monotonic seconds)
END = 0xFFFFFFFF  # the sequence number of the sender's last word (sent a few times)
MAX_RECORDS = 200_000


def sink(args: argparse.Namespace) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((args.bind, args.port))
    print(json.dumps({"event": "ready"}), flush=True)
    end = time.monotonic() + args.seconds
    records = []
    while len(records) < MAX_RECORDS:
        left = end - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data, _ = sock.recvfrom(65536)
        except TimeoutError:
            break
        now = time.monotonic()
        if len(data) >= HEADER.size:
            seq, sent = HEADER.unpack_from(data)
            if seq == END:  # the link keeps order: nothing sent before it is still coming
                break
            records.append([seq, sent, now, len(data)])
    print(json.dumps({"event": "received", "records": records}), flush=True)


def send(args: argparse.Namespace) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if args.bind:
        sock.bind((args.bind, 0))
    size = max(args.size, HEADER.size)
    interval = size * 8.0 / args.rate
    start = time.monotonic()
    end = start + args.seconds
    sent = errors = 0
    pad = b"\0" * (size - HEADER.size)
    while True:
        due = start + sent * interval
        now = time.monotonic()
        if due >= end:
            break
        if due > now:
            time.sleep(due - now)  # pacing a load generator, not synchronising a test
        try:
            sock.sendto(HEADER.pack(sent, time.monotonic()) + pad, (args.to, args.port))
        except OSError:
            errors += 1
        sent += 1
    for _ in range(3):
        try:
            sock.sendto(HEADER.pack(END, time.monotonic()), (args.to, args.port))
        except OSError:
            pass
    print(json.dumps({"event": "sent", "sent": sent, "errors": errors}), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rtcbot.testing.fieldlab._probe")
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("sink")
    s.add_argument("--bind", required=True)
    s.add_argument("--port", type=int, default=9000)
    s.add_argument("--seconds", type=float, default=5.0)
    t = sub.add_parser("send")
    t.add_argument("--to", required=True)
    t.add_argument("--port", type=int, default=9000)
    t.add_argument("--bind", default="")
    t.add_argument("--rate", type=float, default=100_000.0, help="bit/s")
    t.add_argument("--size", type=int, default=200, help="bytes per datagram")
    t.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    {"sink": sink, "send": send}[args.mode](args)


if __name__ == "__main__":
    main()
