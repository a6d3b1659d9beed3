"""The field lab's namespaces and its Python API (:class:`FieldLab`)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...base._compat import TIMEOUT_ERRORS, timeout
from ._model import PROFILES, LinkParams, Profile
from ._netif import in_netns, offloads_off

__all__ = ["FieldLab", "Host", "cleanup_prefix", "missing_requirements"]

SUBNET = "10.201.0"
GATEWAY = f"{SUBNET}.1"
ROBOT_IPS = (f"{SUBNET}.2", f"{SUBNET}.3")
VIEWER_IP = f"{SUBNET}.100"
SERVER_IP = f"{SUBNET}.200"


def missing_requirements() -> str | None:
    """Why the lab cannot run on this machine, or None (needs root and ``ip``)."""
    if not sys.platform.startswith("linux"):
        return "the field lab needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the field lab needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "the field lab needs the ip command (apt-get install iproute2)"
    return None


def _run(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done.stdout


def cleanup_prefix(prefix: str) -> list[str]:
    """Delete every namespace whose name starts with ``prefix + "-"`` (what a lab killed
    without closing left behind). Returns the names deleted."""
    gone = []
    for line in _run("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(prefix + "-"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            gone.append(name)
    return gone


@dataclass
class Host:
    """One machine of the lab: a network namespace with its interfaces and addresses.

    ``ns`` is the namespace name (``ip netns exec NS ...``); ``ip`` its current primary
    address; ``interfaces`` maps interface name to its address.
    """

    name: str
    ns: str
    interfaces: dict[str, str]
    _lab: FieldLab = field(repr=False)

    @property
    def ip(self) -> str:
        """The address of the first interface that is up (what a peer would reach)."""
        for ifname, addr in self.interfaces.items():
            if ifname not in self._lab._down:
                return addr
        return next(iter(self.interfaces.values()))

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run in this host's namespace."""
        return ["ip", "netns", "exec", self.ns, *argv]

    async def run(self, argv: Sequence[str], *, env: dict[str, str] | None = None,
                  **kwargs: Any) -> asyncio.subprocess.Process:
        """Start ``argv`` in this host's namespace (``asyncio.create_subprocess_exec``
        keyword arguments pass through; ``env`` is added to this process's environment,
        with ``RTCBOT_FIELDLAB_*`` addresses). The lab terminates it on close."""
        full_env = {**os.environ, **self._lab.environment(), **(env or {})}
        proc = await asyncio.create_subprocess_exec(*self.command(argv), env=full_env,
                                                    **kwargs)
        self._lab._processes.append(proc)
        return proc


class FieldLab:
    """A mobile link between a robot and a viewer, built from network namespaces.

    ``robot`` has two interfaces (``eth0`` and ``eth1``, both in one subnet, both up at
    connect time); ``viewer`` and ``server`` (for a relay, a TURN server or a web server)
    sit on the far side of the emulated link, which runs in a middle namespace as a user-space
    emulator (queue, rate, loss, delay and jitter per direction). Everything is named
    ``PREFIX-...`` and removed on close; the emulator stops by itself after ``lifetime``
    seconds or when this process dies.

    ::

        async with FieldLab(profile="4g", prefix="mylab") as lab:
            robot = await lab.robot.run(["python", "robot.py"])
            await lab.outage(4.0)
            await lab.new_ip()
            await lab.iface_down()
            await lab.set_profile("bad4g")
    """

    _count = 0

    def __init__(self, profile: str | Profile = "4g", *, prefix: str | None = None,
                 lifetime: float = 3600.0, seed: int | None = None) -> None:
        FieldLab._count += 1
        self.prefix = prefix or f"fl{os.getpid() % 100000}x{FieldLab._count}"
        self.profile = self._profile(profile)
        self.lifetime = lifetime
        self.seed = seed
        self.tmp = Path(tempfile.mkdtemp(prefix=f"rtcbot-fieldlab-{self.prefix}-"))
        self.control_path = str(self.tmp / "control.sock")
        self._namespaces: list[str] = []
        self._processes: list[asyncio.subprocess.Process] = []
        self._emulator: asyncio.subprocess.Process | None = None
        self._down: set[str] = set()
        self._next_ip = 10
        # robot interface -> the emulator's port for it
        self._ports = {"eth0": "r0", "eth1": "r1"}
        self.robot = Host("robot", f"{self.prefix}-robot",
                          {"eth0": ROBOT_IPS[0], "eth1": ROBOT_IPS[1]}, self)
        self.viewer = Host("viewer", f"{self.prefix}-viewer", {"eth0": VIEWER_IP}, self)
        self.server = Host("server", f"{self.prefix}-server", {"eth0": SERVER_IP}, self)
        self.middle = f"{self.prefix}-mid"

    @staticmethod
    def _profile(profile: str | Profile) -> Profile:
        if isinstance(profile, Profile):
            return profile
        try:
            return PROFILES[profile]
        except KeyError:
            raise ValueError(f"unknown profile {profile!r}; known: {sorted(PROFILES)}") from None

    @property
    def emulator(self) -> asyncio.subprocess.Process | None:
        """The link emulator's process (None before start and after close)."""
        return self._emulator

    def environment(self) -> dict[str, str]:
        """The lab's addresses as environment variables for the programs run in it."""
        return {"RTCBOT_FIELDLAB_ROBOT_IP": self.robot.ip,
                "RTCBOT_FIELDLAB_VIEWER_IP": self.viewer.ip,
                "RTCBOT_FIELDLAB_SERVER_IP": self.server.ip}

    # ------------------------------------------------------------------ building

    async def __aenter__(self) -> FieldLab:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Build the namespaces and start the emulator (raises RuntimeError if it can't)."""
        reason = missing_requirements()
        if reason:
            raise RuntimeError(reason)
        try:
            await asyncio.to_thread(self._build)
            await self._start_emulator()
        except BaseException:
            await self.close()
            raise

    def _ns(self, name: str) -> str:
        _run("ip", "netns", "add", name)
        self._namespaces.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")
        for key in ("all", "default"):
            _run("ip", "netns", "exec", name, "sysctl", "-qw",
                 f"net.ipv6.conf.{key}.disable_ipv6=1")
        return name

    def _sysctl(self, ns: str, *settings: str) -> None:
        _run("ip", "netns", "exec", ns, "sysctl", "-qw", *settings)

    def _veth(self, ns: str, ifname: str, port: str) -> None:
        _run("ip", "link", "add", ifname, "netns", ns, "type", "veth",
             "peer", "name", port, "netns", self.middle)
        in_netns(ns, offloads_off, ifname)
        _run("ip", "-n", self.middle, "link", "set", port, "up")

    def _build(self) -> None:
        mid = self._ns(self.middle)
        self._sysctl(mid, "net.ipv4.ip_forward=0")
        gw = self._ns(f"{self.prefix}-gw")
        for host in (self.robot, self.viewer, self.server):
            self._ns(host.ns)
        # the gateway: a default route for everyone that forwards nothing (packets to
        # unknown places vanish, as on the internet, instead of "network unreachable")
        self._veth(gw, "eth0", "g0")
        _run("ip", "-n", gw, "addr", "add", f"{GATEWAY}/24", "dev", "eth0")
        _run("ip", "-n", gw, "link", "set", "eth0", "up")
        self._sysctl(gw, "net.ipv4.ip_forward=0")
        for host, port in ((self.viewer, "v0"), (self.server, "s0")):
            self._veth(host.ns, "eth0", port)
            _run("ip", "-n", host.ns, "addr", "add", f"{host.interfaces['eth0']}/24",
                 "dev", "eth0")
            _run("ip", "-n", host.ns, "link", "set", "eth0", "up")
            _run("ip", "-n", host.ns, "route", "add", "default", "via", GATEWAY)
        robot = self.robot.ns
        # two interfaces in one subnet: each answers ARP only for its own address, and
        # each address leaves by its own interface (policy routing)
        settings = (("arp_ignore", "1"), ("arp_announce", "2"), ("rp_filter", "0"),
                    ("promote_secondaries", "1"))
        self._sysctl(robot, *[f"net.ipv4.conf.{scope}.{key}={value}"
                              for scope in ("all", "default") for key, value in settings])
        for index, (ifname, port) in enumerate(self._ports.items()):
            self._veth(robot, ifname, port)
            self._sysctl(robot, *[f"net.ipv4.conf.{ifname}.{key}={value}"
                                  for key, value in settings])
            addr = self.robot.interfaces[ifname]
            _run("ip", "-n", robot, "addr", "add", f"{addr}/24", "dev", ifname)
            _run("ip", "-n", robot, "link", "set", ifname, "up")
            _run("ip", "-n", robot, "route", "add", "default", "via", GATEWAY, "dev", ifname,
                 "metric", str(100 + 100 * index))
            self._source_route(ifname, addr, index)

    def _source_route(self, ifname: str, addr: str, index: int, old: str | None = None) -> None:
        robot, table = self.robot.ns, str(101 + index)
        if old is not None:
            subprocess.run(["ip", "-n", robot, "rule", "del", "from", old, "lookup", table],
                           capture_output=True)
        _run("ip", "-n", robot, "rule", "add", "from", addr, "lookup", table,
             "pref", str(1000 + index))
        _run("ip", "-n", robot, "route", "replace", f"{SUBNET}.0/24", "dev", ifname, "src", addr,
             "table", table)
        _run("ip", "-n", robot, "route", "replace", "default", "via", GATEWAY, "dev", ifname,
             "table", table)
        # when the interface is down, its address reaches nothing (as on a phone)
        subprocess.run(["ip", "-n", robot, "route", "add", "unreachable", "default", "metric",
                        "4000", "table", table], capture_output=True)

    async def _start_emulator(self) -> None:
        ports = [f"{p}:robot" for p in self._ports.values()]
        ports += ["v0:net", "s0:net", "g0:net"]
        argv = [sys.executable, "-m", "rtcbot.testing.fieldlab._emulator",
                "--control", self.control_path, "--lifetime", str(self.lifetime),
                "--profile", json.dumps(self.profile.to_dict())]
        for port in ports:
            argv += ["--port", port]
        if self.seed is not None:
            argv += ["--seed", str(self.seed)]
        self._stderr = open(self.tmp / "emulator.stderr", "wb")  # noqa: ASYNC230 - once
        self._emulator = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.middle, *argv,
            stdout=asyncio.subprocess.PIPE, stderr=self._stderr)
        assert self._emulator.stdout is not None
        try:
            async with timeout(10):
                line = await self._emulator.stdout.readline()
        except TIMEOUT_ERRORS:
            line = b""
        if b'"ready"' not in line:
            raise RuntimeError(f"the link emulator did not start: {self._emulator_log()}")

    def _emulator_log(self) -> str:
        try:
            return (self.tmp / "emulator.stderr").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    # ------------------------------------------------------------------ control

    async def _command(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self._emulator is None or self._emulator.returncode is not None:
            raise RuntimeError(f"the link emulator is not running: {self._emulator_log()}")
        async with timeout(5):
            reader, writer = await asyncio.open_unix_connection(self.control_path)
            try:
                writer.write(json.dumps(msg).encode() + b"\n")
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
                await writer.wait_closed()
        reply = json.loads(line)
        if not reply.get("ok"):
            raise ValueError(reply.get("error", "the emulator refused the command"))
        return reply

    async def set_profile(self, profile: str | Profile) -> None:
        """Apply a profile (by name, see ``PROFILES``, or a :class:`Profile`) from now on."""
        self.profile = self._profile(profile)
        await self._command({"cmd": "profile", "profile": self.profile.to_dict()})

    async def set_link(self, *, direction: str = "both", **changes: Any) -> None:
        """Change some link parameters (fields of :class:`LinkParams`, e.g.
        ``rate_bps=800_000``) in ``direction`` ``"up"`` (robot to viewer), ``"down"`` or
        ``"both"``, from now on."""
        LinkParams(**changes)  # check the names and values here, at the call site
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be up, down or both, not {direction!r}")
        ways = ("up", "down") if direction == "both" else (direction,)
        await self._command({"cmd": "set", **{way: changes for way in ways}})

    async def outage(self, seconds: float) -> tuple[float, float]:
        """Black out the link (both directions, every robot interface) for ``seconds``;
        packets in flight are lost too. Returns at once with the outage's (start, end) on
        the ``time.monotonic()`` clock (shared by every process of this machine)."""
        reply = await self._command({"cmd": "outage", "seconds": float(seconds)})
        return reply["start"], reply["end"]

    async def stats(self) -> dict[str, Any]:
        """The emulator's counters: per robot port and direction (offered, forwarded, lost,
        queue_dropped, outage_dropped, peak_queue) and each port's recent bit rate."""
        return await self._command({"cmd": "stats"})

    async def busiest_interface(self) -> str:
        """The robot interface that carried the most traffic in the last second or so (the
        one carrying the ICE pair while media flows)."""
        stats = await self.stats()
        rates = {ifname: stats["ports"][port]["recent_bps"]
                 for ifname, port in self._ports.items() if ifname not in self._down}
        return max(rates, key=lambda k: rates[k])

    async def new_ip(self, ifname: str | None = None) -> str:
        """Give the robot's interface (default: the busiest) a new address, as a DHCP renew
        or a carrier handover does: the old address is gone at once. Returns the new one."""
        ifname = ifname or await self.busiest_interface()
        old = self.robot.interfaces[ifname]
        new = f"{SUBNET}.{self._next_ip}"
        self._next_ip += 1
        index = list(self._ports).index(ifname)
        ns = self.robot.ns

        def change() -> None:
            _run("ip", "-n", ns, "addr", "add", f"{new}/24", "dev", ifname)
            _run("ip", "-n", ns, "addr", "del", f"{old}/24", "dev", ifname)
            subprocess.run(["ip", "-n", ns, "route", "replace", "default", "via", GATEWAY,
                            "dev", ifname, "metric", str(100 + 100 * index)],
                           capture_output=True)
            self._source_route(ifname, new, index, old=old)

        await asyncio.to_thread(change)
        self.robot.interfaces[ifname] = new
        return new

    async def iface_down(self, ifname: str | None = None) -> str:
        """Take a robot interface down (default: the busiest, the one carrying the ICE pair);
        the other stays up. Returns the interface's name."""
        ifname = ifname or await self.busiest_interface()
        if ifname not in self._ports:
            raise ValueError(f"the robot has interfaces {list(self._ports)}, not {ifname!r}")
        await asyncio.to_thread(_run, "ip", "-n", self.robot.ns, "link", "set", ifname, "down")
        self._down.add(ifname)
        return ifname

    async def iface_up(self, ifname: str) -> None:
        """Bring a robot interface back up, with its address and routes."""
        index = list(self._ports).index(ifname)
        addr = self.robot.interfaces[ifname]

        def up() -> None:
            _run("ip", "-n", self.robot.ns, "link", "set", ifname, "up")
            subprocess.run(["ip", "-n", self.robot.ns, "route", "replace", "default", "via",
                            GATEWAY, "dev", ifname, "metric", str(100 + 100 * index)],
                           capture_output=True)
            self._source_route(ifname, addr, index, old=addr)

        await asyncio.to_thread(up)
        self._down.discard(ifname)

    async def udp_probe(self, src: Host, dst: Host, *, rate_bps: float = 100_000.0,
                        size: int = 200, seconds: float = 2.0, src_ip: str | None = None,
                        port: int = 9000) -> dict[str, Any]:
        """Send UDP datagrams from ``src`` to ``dst`` paced at ``rate_bps`` for ``seconds`` and
        say what arrived: ``sent``, ``received``, ``loss`` (fraction), ``delay_p50`` (one-way,
        seconds), ``reordered`` (arrivals with a smaller sequence number than one before),
        ``throughput_bps`` (over the arrivals), and ``records`` ([seq, sent, arrived, size],
        times on ``time.monotonic()``). ``src_ip`` binds the sender to one address."""
        probe = [sys.executable, "-m", "rtcbot.testing.fieldlab._probe"]
        sink = await dst.run([*probe, "sink", "--bind", dst.ip, "--port", str(port),
                              "--seconds", str(seconds + 1.0)],
                             stdout=asyncio.subprocess.PIPE)
        assert sink.stdout is not None
        async with timeout(10):
            ready = await sink.stdout.readline()
        if b"ready" not in ready:
            raise RuntimeError("the probe's receiver did not start")
        sender = await src.run([*probe, "send", "--to", dst.ip, "--port", str(port),
                                "--bind", src_ip or "", "--rate", str(rate_bps),
                                "--size", str(size), "--seconds", str(seconds)],
                               stdout=asyncio.subprocess.PIPE)
        async with timeout(seconds + 15):
            sent_out, _ = await sender.communicate()
            received_out, _ = await sink.communicate()
        sent = json.loads(sent_out.decode().strip().splitlines()[-1])
        records = json.loads(received_out.decode().strip().splitlines()[-1])["records"]
        delays = sorted(r[2] - r[1] for r in records)
        reordered, highest = 0, -1
        for seq, *_ in records:
            if seq < highest:
                reordered += 1
            highest = max(highest, seq)
        span = records[-1][2] - records[0][2] if len(records) > 1 else 0.0
        throughput = sum(r[3] for r in records[1:]) * 8.0 / span if span > 0 else 0.0
        return {"sent": sent["sent"], "errors": sent["errors"], "received": len(records),
                "loss": 1.0 - len(records) / sent["sent"] if sent["sent"] else 0.0,
                "delay_p50": delays[len(delays) // 2] if delays else None,
                "reordered": reordered, "throughput_bps": throughput, "records": records}

    # ------------------------------------------------------------------ closing

    async def close(self) -> None:
        """Stop every process started in the lab, the emulator, and delete the namespaces.
        Idempotent; bounded (each process gets 3 s after SIGTERM, then SIGKILL)."""
        for proc in reversed(self._processes):
            await _stop(proc)
        self._processes.clear()
        if self._emulator is not None:
            await _stop(self._emulator)
            self._emulator = None
            self._stderr.close()
        for ns in reversed(self._namespaces):
            await asyncio.to_thread(subprocess.run, ["ip", "netns", "del", ns],
                                    capture_output=True)
        self._namespaces.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            async with timeout(3):
                await proc.wait()
        except TIMEOUT_ERRORS:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            await proc.wait()
