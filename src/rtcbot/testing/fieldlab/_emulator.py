"""The field lab's link emulator: a learning switch on ``AF_PACKET`` sockets that runs in the
lab's middle namespace and puts an emulated link (:class:`~._model.Direction`, one per
direction) between each robot-side port and the rest.

Run as ``python -m rtcbot.testing.fieldlab._emulator --port r0:robot --port v0:net ...
--control PATH --profile JSON --lifetime SECONDS``. It prints one JSON line ``{"event":
"ready"}`` when it forwards, answers JSON-line commands on the Unix socket ``PATH``, and exits
on ``stop``, on SIGTERM, when ``--lifetime`` has passed, or when its parent process is gone.

Commands (one JSON object per line, one JSON reply per line):
``{"cmd": "profile", "profile": {...}}``, ``{"cmd": "set", "up": {...}, "down": {...}}``
(fields of LinkParams to change), ``{"cmd": "outage", "seconds": 4}``, ``{"cmd": "stats"}``,
``{"cmd": "stop"}``.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import random
import selectors
import signal
import socket
import sys
import time
from dataclasses import asdict, replace
from typing import Any

from ._model import Direction, LinkParams, Profile, profile_from_dict
from ._netif import offloads_off

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
MAX_FRAME = 1518
CONTROL_LINE_LIMIT = 65536
RECV_BATCH = 64
RATE_TAU = 1.0  # seconds: time constant of each port's recent byte rate


class Port:
    def __init__(self, name: str, side: str) -> None:
        self.name, self.side = name, side
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.sock.bind((name, 0))
        self.sock.setblocking(False)
        self.send_errors = 0
        self.oversize = 0
        self.rate = 0.0  # decayed bytes, see recent_bps
        self._rate_at = time.monotonic()

    def count(self, now: float, size: int) -> None:
        self.rate = self.rate * math.exp(-(now - self._rate_at) / RATE_TAU) + size
        self._rate_at = now

    def recent_bps(self, now: float) -> float:
        return self.rate * math.exp(-(now - self._rate_at) / RATE_TAU) * 8.0 / RATE_TAU

    def send(self, frame: bytes) -> None:
        try:
            self.sock.send(frame)
        except OSError:  # the peer is down, or the kernel's queue is full: the link loses it
            self.send_errors += 1


class Link:
    """The emulated link of one robot-side port: ``up`` from it, ``down`` towards it."""

    def __init__(self, profile: Profile, rng: random.Random) -> None:
        self.up = Direction(profile.up, rng)
        self.down = Direction(profile.down, rng)
        self.queues: dict[str, collections.deque] = {"up": collections.deque(),
                                                      "down": collections.deque()}


class Switch:
    def __init__(self, ports: list[Port], profile: Profile, seed: int | None) -> None:
        self.ports = {p.name: p for p in ports}
        self.rng = random.Random(seed)
        self.links = {p.name: Link(profile, self.rng) for p in ports if p.side == "robot"}
        self.macs: dict[bytes, Port] = {}
        self.profile = profile
        self.profile_at = time.monotonic()
        self.cut_at: float | None = None
        self.outages: list[tuple[float, float]] = []

    # ----------------------------------------------------------------- forwarding

    def receive(self, port: Port, now: float) -> None:
        for _ in range(RECV_BATCH):
            try:
                frame, addr = port.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            if len(frame) > MAX_FRAME:
                port.oversize += 1
                continue
            port.count(now, len(frame))
            self.forward(port, frame, now)

    def forward(self, src: Port, frame: bytes, now: float) -> None:
        dst_mac, src_mac = frame[0:6], frame[6:12]
        if not src_mac[0] & 1:
            self.macs[src_mac] = src
        out = self.macs.get(dst_mac) if not dst_mac[0] & 1 else None
        targets = [out] if out is not None else [p for p in self.ports.values() if p is not src]
        for dst in targets:
            if dst is src:
                continue
            if src.side == dst.side:
                dst.send(frame)
                continue
            if src.side == "robot":
                link, way = self.links[src.name], "up"
            else:
                link, way = self.links[dst.name], "down"
            direction = link.up if way == "up" else link.down
            release = direction.admit(now, len(frame))
            if release is None:
                continue
            if release <= now and not link.queues[way]:
                if direction.deliverable(now, len(frame)):
                    dst.send(frame)
            else:
                link.queues[way].append((release, dst, frame))

    def flush(self, now: float) -> float | None:
        """Send what is due; the time of the next due packet (or None)."""
        nearest = None
        for link in self.links.values():
            for way, queue in link.queues.items():
                direction = link.up if way == "up" else link.down
                while queue and queue[0][0] <= now:
                    _, dst, frame = queue.popleft()
                    if direction.deliverable(now, len(frame)):
                        dst.send(frame)
                if queue and (nearest is None or queue[0][0] < nearest):
                    nearest = queue[0][0]
        return nearest

    def tick(self, now: float) -> None:
        p = self.profile
        if (self.cut_at is None and p.cut_after is not None
                and now >= self.profile_at + p.cut_after):
            self.cut_at = now
            for link in self.links.values():
                link.up.set_rate(p.cut_rate_bps)
                link.down.set_rate(p.cut_rate_bps)

    # ----------------------------------------------------------------- commands

    def command(self, msg: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        cmd = msg.get("cmd")
        if cmd == "profile":
            profile = profile_from_dict(msg["profile"])
            self.profile, self.profile_at, self.cut_at = profile, now, None
            for link in self.links.values():
                link.up.set_params(profile.up)
                link.down.set_params(profile.down)
            return {"ok": True, "at": now}
        if cmd == "set":
            for link in self.links.values():
                for way in ("up", "down"):
                    changes = msg.get(way) or {}
                    direction = link.up if way == "up" else link.down
                    direction.set_params(replace(direction.params, **changes))
            return {"ok": True, "at": now}
        if cmd == "outage":
            seconds = float(msg["seconds"])
            for link in self.links.values():
                link.up.start_outage(now, seconds)
                link.down.start_outage(now, seconds)
            self.outages.append((now, now + seconds))
            return {"ok": True, "start": now, "end": now + seconds}
        if cmd == "stats":
            return {"ok": True, "now": now, **self.stats(now)}
        raise ValueError(f"unknown command {cmd!r}")

    def stats(self, now: float) -> dict[str, Any]:
        links = {}
        for name, link in self.links.items():
            links[name] = {
                "up": {**asdict(link.up.stats), "params": asdict(link.up.params)},
                "down": {**asdict(link.down.stats), "params": asdict(link.down.params)},
                "queued": {way: len(q) for way, q in link.queues.items()},
            }
        ports = {name: {"side": p.side, "recent_bps": p.recent_bps(now),
                        "send_errors": p.send_errors, "oversize": p.oversize}
                 for name, p in self.ports.items()}
        return {"profile": self.profile.name, "profile_at": self.profile_at,
                "cut_at": self.cut_at, "outages": self.outages, "links": links,
                "ports": ports}


class Control:
    """The Unix-socket command channel: JSON lines in, JSON lines out, bounded per line."""

    def __init__(self, path: str, switch: Switch, sel: selectors.BaseSelector) -> None:
        self.path, self.switch, self.sel = path, switch, sel
        self.stopping = False
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.sock.setblocking(False)
        sel.register(self.sock, selectors.EVENT_READ, self.accept)
        self.buffers: dict[socket.socket, bytes] = {}

    def accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        self.buffers[conn] = b""
        self.sel.register(conn, selectors.EVENT_READ, lambda: self.read(conn))

    def drop(self, conn: socket.socket) -> None:
        self.sel.unregister(conn)
        self.buffers.pop(conn, None)
        conn.close()

    def read(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(conn)
            return
        buffer = self.buffers[conn] + data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            reply = self.handle(line)
            try:
                conn.setblocking(True)
                conn.settimeout(1.0)
                conn.sendall(json.dumps(reply).encode() + b"\n")
                conn.setblocking(False)
            except OSError:
                self.drop(conn)
                return
        if len(buffer) > CONTROL_LINE_LIMIT:
            self.drop(conn)
            return
        self.buffers[conn] = buffer

    def handle(self, line: bytes) -> dict[str, Any]:
        try:
            msg = json.loads(line)
            if not isinstance(msg, dict):
                raise ValueError("a command is a JSON object")
            if msg.get("cmd") == "stop":
                self.stopping = True
                return {"ok": True}
            return self.switch.command(msg)
        except Exception as exc:  # a bad command gets an error reply; the switch keeps going
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    def close(self) -> None:
        for conn in list(self.buffers):
            self.drop(conn)
        self.sel.unregister(self.sock)
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def run(args: argparse.Namespace) -> None:
    parent = os.getppid()
    deadline = time.monotonic() + args.lifetime
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    ports = []
    for spec in args.port:
        name, side = spec.split(":")
        offloads_off(name)
        ports.append(Port(name, side))
    profile = profile_from_dict(json.loads(args.profile)) if args.profile else Profile(
        "lan", LinkParams(), LinkParams())
    switch = Switch(ports, profile, args.seed)
    sel = selectors.DefaultSelector()
    for port in ports:
        sel.register(port.sock, selectors.EVENT_READ, port)
    control = Control(args.control, switch, sel)
    print(json.dumps({"event": "ready", "pid": os.getpid()}), flush=True)
    try:
        while not stop and not control.stopping:
            now = time.monotonic()
            if now >= deadline or os.getppid() != parent:
                break
            switch.tick(now)
            nearest = switch.flush(now)
            timeout = 0.2 if nearest is None else min(0.2, max(0.0, nearest - now))
            for key, _ in sel.select(timeout):
                now = time.monotonic()
                if isinstance(key.data, Port):
                    switch.receive(key.data, now)
                else:
                    key.data()
    finally:
        control.close()
        for port in ports:
            port.sock.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rtcbot.testing.fieldlab._emulator")
    parser.add_argument("--port", action="append", required=True, help="IFNAME:robot|net")
    parser.add_argument("--control", required=True, help="path of the Unix control socket")
    parser.add_argument("--profile", default="", help="a Profile as JSON")
    parser.add_argument("--lifetime", type=float, default=3600.0, help="exit after (s)")
    parser.add_argument("--seed", type=int, default=None)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
