"""``python -m rtcbot.testing.fieldlab``: run your robot and viewer over an emulated mobile link.

::

    python -m rtcbot.testing.fieldlab run --profile 4g \\
        --server "python -m rtcbot relay --host {server_ip}" \\
        --robot "python robot.py --relay http://{server_ip}:8080" \\
        --viewer "python viewer.py --relay http://{server_ip}:8080" \\
        --event outage:4@10 --event newip@20 --duration 40
    python -m rtcbot.testing.fieldlab check --profile bad4g
    python -m rtcbot.testing.fieldlab profiles
    python -m rtcbot.testing.fieldlab cleanup --prefix fl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import time
from dataclasses import asdict

from ...base._compat import TIMEOUT_ERRORS, timeout
from ._lab import FieldLab, cleanup_prefix, missing_requirements
from ._model import PROFILES


def _say(event: str, **fields: object) -> None:
    print(json.dumps({"fieldlab": event, "t": round(time.monotonic(), 3), **fields}),
          file=sys.stderr, flush=True)


def parse_event(text: str) -> tuple[float, str, str]:
    """``"outage:4@10"`` -> (10.0, "outage", "4"). Events: ``outage:SECONDS``, ``newip``,
    ``iface``, ``iface_up:IFNAME``, ``profile:NAME``, ``rate:BITS_PER_S``."""
    what, sep, at = text.partition("@")
    if not sep:
        raise argparse.ArgumentTypeError(f"an event is WHAT@SECONDS, not {text!r}")
    name, _, arg = what.partition(":")
    if name not in ("outage", "newip", "iface", "iface_up", "profile", "rate"):
        raise argparse.ArgumentTypeError(f"unknown event {name!r} in {text!r}")
    if name in ("outage", "profile", "rate", "iface_up") and not arg:
        raise argparse.ArgumentTypeError(f"{name} needs a value: {name}:VALUE@SECONDS")
    try:
        when = float(at)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad time {at!r} in {text!r}") from None
    return when, name, arg


async def _apply(lab: FieldLab, name: str, arg: str) -> object:
    if name == "outage":
        return await lab.outage(float(arg))
    if name == "newip":
        return await lab.new_ip(arg or None)
    if name == "iface":
        return await lab.iface_down(arg or None)
    if name == "iface_up":
        return await lab.iface_up(arg)
    if name == "profile":
        return await lab.set_profile(arg)
    return await lab.set_link(rate_bps=float(arg))


def _fill(command: str, lab: FieldLab) -> list[str]:
    for key, value in (("{robot_ip}", lab.robot.ip), ("{viewer_ip}", lab.viewer.ip),
                       ("{server_ip}", lab.server.ip)):
        command = command.replace(key, value)
    return shlex.split(command)


async def run(args: argparse.Namespace) -> int:
    async with FieldLab(args.profile, prefix=args.prefix,
                        lifetime=args.duration + 30) as lab:
        _say("ready", profile=args.profile, robot=lab.robot.interfaces,
             viewer=lab.viewer.ip, server=lab.server.ip,
             namespaces={"robot": lab.robot.ns, "viewer": lab.viewer.ns,
                         "server": lab.server.ns})
        if args.server:
            await lab.server.run(_fill(args.server, lab))
        robot = await lab.robot.run(_fill(args.robot, lab)) if args.robot else None
        if args.start_delay:
            await asyncio.sleep(args.start_delay)  # let the robot register before a viewer
        viewer = await lab.viewer.run(_fill(args.viewer, lab)) if args.viewer else None
        started = time.monotonic()

        async def script() -> None:
            for when, name, arg in sorted(args.event):
                await asyncio.sleep(max(0.0, started + when - time.monotonic()))
                result = await _apply(lab, name, arg)
                _say(name, arg=arg, result=result)

        events = asyncio.ensure_future(script())
        waits = [asyncio.ensure_future(p.wait()) for p in (viewer, robot) if p is not None]
        try:
            async with timeout(args.duration):
                if waits:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                else:
                    await asyncio.Event().wait()
        except TIMEOUT_ERRORS:
            _say("duration", seconds=args.duration)
        finally:
            events.cancel()
            for w in waits:
                w.cancel()
        _say("stats", stats=await lab.stats())
        if viewer is not None and viewer.returncode is not None:
            return viewer.returncode
        return 0


async def check(args: argparse.Namespace) -> int:
    async with FieldLab(args.profile, prefix=args.prefix, lifetime=120) as lab:
        results = {}
        for label, src, dst in (("up", lab.robot, lab.viewer), ("down", lab.viewer, lab.robot)):
            light = await lab.udp_probe(src, dst, rate_bps=200_000, size=200, seconds=2.0)
            flood = await lab.udp_probe(src, dst, rate_bps=10_000_000, size=1200, seconds=1.5)
            results[label] = {"delay_p50_ms": round(light["delay_p50"] * 1000, 1),
                              "loss": round(light["loss"], 4),
                              "reordered": light["reordered"],
                              "capacity_bps": round(flood["throughput_bps"]),
                              "full_queue_delay_ms": round(flood["delay_p50"] * 1000, 1)}
        print(json.dumps({"profile": args.profile, **results}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtcbot.testing.fieldlab",
                                     description="an emulated mobile link (needs root)")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a robot and a viewer command over the link")
    r.add_argument("--profile", default="4g", choices=sorted(PROFILES))
    r.add_argument("--robot", default="", help="command run in the robot's namespace")
    r.add_argument("--viewer", default="", help="command run in the viewer's namespace")
    r.add_argument("--server", default="", help="command run in the server's namespace")
    r.add_argument("--event", action="append", type=parse_event, default=[],
                   help="WHAT@SECONDS after the viewer starts: outage:4, newip, iface, "
                        "iface_up:eth0, profile:bad4g, rate:800000 (repeatable)")
    r.add_argument("--duration", type=float, default=60.0, help="stop after (s)")
    r.add_argument("--start-delay", type=float, default=1.0,
                   help="seconds between starting the robot and the viewer")
    r.add_argument("--prefix", default="fl", help="namespace name prefix")
    c = sub.add_parser("check", help="measure a profile's link with UDP probes")
    c.add_argument("--profile", default="4g", choices=sorted(PROFILES))
    c.add_argument("--prefix", default="flcheck")
    sub.add_parser("profiles", help="print the profiles")
    k = sub.add_parser("cleanup", help="delete namespaces a killed lab left behind")
    k.add_argument("--prefix", default="fl")
    args = parser.parse_args(argv)
    if args.command == "profiles":
        print(json.dumps({n: asdict(p) for n, p in PROFILES.items()}, indent=2))
        return 0
    reason = missing_requirements()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    if args.command == "cleanup":
        print("\n".join(cleanup_prefix(args.prefix)))
        return 0
    return asyncio.run(run(args) if args.command == "run" else check(args))


if __name__ == "__main__":
    sys.exit(main())
