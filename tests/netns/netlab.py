"""A small network lab built from Linux network namespaces, veth pairs, iptables and coturn.

Everything made here is named with a per-lab prefix and removed by :meth:`NetLab.cleanup`
(namespaces, and with them their veth ends and iptables rules; processes started in them).
Only addresses inside the namespaces made here are used. Needs root, ``ip``, ``iptables`` and
(for TURN) Debian's ``turnserver`` (coturn).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers.py"


def missing_requirements(need_turn: bool = True) -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "network-namespace tests need root"
    tools = ["ip", "iptables"] + (["turnserver"] if need_turn else [])
    absent = [t for t in tools if shutil.which(t) is None]
    if absent:
        return (f"missing {', '.join(absent)} (apt-get install -y coturn iproute2 iptables)")
    probe = f"rtcbot-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create network namespaces here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _run(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Process:
    """A process started in a namespace; its stdout lines are JSON events (see peers.py)."""

    name: str
    proc: asyncio.subprocess.Process
    events: list[dict] = field(default_factory=list)
    stderr_path: Path | None = None
    _waiters: list = field(default_factory=list)
    _reader: asyncio.Task | None = None

    def start_reading(self) -> None:
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "text", "text": line}
            self.events.append(event)
            for waiter in list(self._waiters):
                predicate, future = waiter
                if not future.done() and predicate(event):
                    future.set_result(event)

    async def wait_event(self, name: str, timeout: float = 30.0, **match) -> dict:
        """The first event called ``name`` (with the given fields), waiting up to ``timeout``."""

        def predicate(e: dict) -> bool:
            return e.get("event") == name and all(e.get(k) == v for k, v in match.items())

        for event in self.events:
            if predicate(event):
                return event
        future = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        exited = asyncio.ensure_future(self.proc.wait())
        try:
            async with asyncio.timeout(timeout):
                done, _ = await asyncio.wait({future, exited},
                                             return_when=asyncio.FIRST_COMPLETED)
                if future in done:
                    return future.result()
                if self._reader is not None:  # the last lines may still be in the pipe
                    await self._reader
                if future.done():
                    return future.result()
                raise AssertionError(
                    f"{self.name} exited ({self.proc.returncode}) before {name!r}; "
                    f"events {self.events[-5:]}; stderr:\n{self.stderr()}"
                )
        except TimeoutError:
            raise AssertionError(
                f"{self.name}: no {name!r} within {timeout} s; events {self.events[-5:]}; "
                f"stderr:\n{self.stderr()}"
            ) from None
        finally:
            exited.cancel()
            if entry in self._waiters:
                self._waiters.remove(entry)

    def stderr(self) -> str:
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")[-3000:]

    async def stop(self) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                async with asyncio.timeout(5):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()


class NetLab:
    """Namespaces, links and processes of one test, all removed by :meth:`cleanup`."""

    _made = 0

    def __init__(self) -> None:
        NetLab._made += 1
        self.tag = f"{os.getpid() % 10000:04d}{NetLab._made % 10}"
        self.namespaces: list[str] = []
        self.processes: list[Process] = []
        self.coturn: list[subprocess.Popen] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="rtcbot-netlab-"))
        self._links = 0

    # ---------------------------------------------------------------- topology

    def ns(self, role: str) -> str:
        name = f"rtcbot{self.tag}-{role}"
        _run("ip", "netns", "add", name)
        self.namespaces.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def link(self, a: str, addr_a: str, b: str, addr_b: str) -> tuple[str, str]:
        """A veth pair between namespaces ``a`` and ``b`` with addresses like "10.77.1.1/24".
        Returns the interface names (in ``a``, in ``b``)."""
        self._links += 1
        ia, ib = f"rb{self.tag}{self._links}a", f"rb{self.tag}{self._links}b"
        _run("ip", "link", "add", ia, "type", "veth", "peer", "name", ib)
        _run("ip", "link", "set", ia, "netns", a)
        _run("ip", "link", "set", ib, "netns", b)
        _run("ip", "-n", a, "addr", "add", addr_a, "dev", ia)
        _run("ip", "-n", b, "addr", "add", addr_b, "dev", ib)
        _run("ip", "-n", a, "link", "set", ia, "up")
        _run("ip", "-n", b, "link", "set", ib, "up")
        return ia, ib

    def route(self, ns: str, *spec: str) -> None:
        _run("ip", "-n", ns, "route", "add", *spec)

    def sysctl(self, ns: str, key: str, value: str) -> None:
        _run("ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}")

    def iptables(self, ns: str, *rule: str) -> None:
        _run("ip", "netns", "exec", ns, "iptables", *rule)

    def drop_default_routes(self, *namespaces: str, base: str = "10.99") -> str:
        """Give each namespace a default route into one shared namespace that forwards
        nothing: packets to unknown places vanish silently, as on the internet, instead of
        failing with "Network is unreachable" (which makes coturn drop allocations and
        Chromium hide its host candidates)."""
        drop = self.ns("drop")
        for i, ns in enumerate(namespaces, start=1):
            self.link(drop, f"{base}.{i}.1/24", ns, f"{base}.{i}.2/24")
            self.route(ns, "default", "via", f"{base}.{i}.1")
        return drop

    def reaches(self, ns: str, ip: str) -> bool:
        """Whether ``ns`` has a route to ``ip`` (a UDP sendto without ENETUNREACH)."""
        code = (
            "import socket,sys\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            f"try: s.sendto(b'x',({ip!r},9))\n"
            "except OSError: sys.exit(1)\n"
        )
        done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code])
        return done.returncode == 0

    # ---------------------------------------------------------------- processes

    def start_coturn(
        self, ns: str, listen: list[str], relay_ip: str, user: str, password: str,
        realm: str = "rtcbot.test", port: int = 3478, extra: tuple[str, ...] = (),
    ) -> None:
        """Debian's coturn in ``ns``: long-term credentials, no TLS/DTLS/CLI, relay address
        pinned to ``relay_ip``. Waits until it listens."""
        args = [
            "ip", "netns", "exec", ns, "turnserver", "-n",
            "--lt-cred-mech", f"--user={user}:{password}", f"--realm={realm}",
            "--no-tls", "--no-dtls", "--no-cli", "--no-rfc5780", "--fingerprint",
            f"--listening-port={port}", f"--relay-ip={relay_ip}",
            f"--userdb={self.tmp / 'turndb'}", f"--pidfile={self.tmp / 'turnserver.pid'}",
            f"--log-file={self.tmp / 'turn.log'}", "--simple-log",
            "--min-port=49160", "--max-port=49400",
            *[f"--listening-ip={ip}" for ip in listen], *extra,
        ]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.coturn.append(proc)
        probe = (
            "import socket,struct,os,sys,time\n"
            "deadline=time.monotonic()+10\n"
            "req=struct.pack('!HHI12s',1,0,0x2112A442,os.urandom(12))\n"
            "while time.monotonic()<deadline:\n"
            "  s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(0.2)\n"
            f"  s.sendto(req,({listen[0]!r},{port}))\n"
            "  try: s.recvfrom(2048); sys.exit(0)\n"
            "  except OSError: pass\n"
            "sys.exit(1)\n"
        )
        done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", probe])
        if done.returncode != 0:
            log = self.tmp / "turn.log"
            text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"coturn did not answer a STUN binding request:\n{text}")

    async def spawn(self, ns: str, role: str, *args: str, env: dict | None = None) -> Process:
        """``ip netns exec ns python peers.py role args...``, its JSON events collected."""
        stderr_path = self.tmp / f"{role}-{len(self.processes)}.stderr"
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(stderr_path, "wb") as err:  # noqa: ASYNC230 - a local file, once
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", ns, sys.executable, str(PEERS), role, *args,
                stdout=asyncio.subprocess.PIPE, stderr=err, env=full_env,
            )
        process = Process(f"{role}@{ns}", proc, stderr_path=stderr_path)
        process.start_reading()
        self.processes.append(process)
        return process

    # ---------------------------------------------------------------- cleanup

    async def cleanup(self) -> None:
        for process in reversed(self.processes):
            await process.stop()
        for proc in self.coturn:
            if proc.poll() is None:
                proc.terminate()
                try:
                    await asyncio.to_thread(proc.wait, 5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    await asyncio.to_thread(proc.wait)
        for ns in reversed(self.namespaces):
            await asyncio.to_thread(subprocess.run, ["ip", "netns", "del", ns],
                                    capture_output=True)
        self.namespaces.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)
