"""The safety gate's cost per command: a command through a SafetyGate against a direct
subscription, JSON out.

Usage::

    python bench/safety.py                  # 5 rounds of 20,000 commands per path
    python bench/safety.py --commands 50000 --rounds 7

Paths, each run in the same process and loop, interleaved round by round:

* ``direct``: ``producer.subscribe(motors)``; ``producer.put_nowait(cmd)`` calls ``motors``.
  What a robot without a gate does (RTCBot 0.2.5 has no gate: this is its path too).
* ``gate``: ``producer.subscribe(gate)``, ``gate.subscribe(motors)``: the command is checked
  (shape, sender, age, E-stop), clamped, scaled, ramped (one axis rate-limited) and fanned out.
* ``gate_page``: a command as a page's message: ``{"type": "control", ...}`` from an attached
  operator (through the gate's message handler, with an age), as on a real connection,
  without the network.

Figures: the median over rounds of ns per command, and ``added_us`` = (gate - direct) in us.
Target (issue 12): under 50 us added per command. Every command differs from the previous one
(alternating values), so nothing is skipped as unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from rtcbot.base import SubscriptionProducer
from rtcbot.safety import Axis, SafetyGate


class _Operator:
    """The smallest thing :meth:`SafetyGate.attach` accepts: what a connection offers."""

    def __init__(self) -> None:
        self.handler = None
        self.closed = False
        self.ready = True
        self.sent = 0

    def subscribe(self, handler):
        self.handler = handler
        return handler

    def put_nowait(self, message) -> None:
        self.sent += 1

    def set_control_timeout(self, seconds, action) -> None:
        pass

    def onClose(self, callback):
        return callback


def _axes():
    return [Axis("forward", -1, 1, rate=1000.0), Axis("turn", -1, 1), Axis("grip", 0, 1,
                                                                             scaled=False)]


def _commands(n: int) -> list[dict]:
    return [{"forward": 0.5 if i % 2 else 0.25, "turn": -0.1 if i % 2 else 0.1, "grip": 0.0}
            for i in range(n)]


def _run_direct(commands: list[dict]) -> float:
    producer = SubscriptionProducer()
    got = []
    producer.subscribe(got.append)
    put = producer.put_nowait
    start = time.perf_counter_ns()
    for cmd in commands:
        put(cmd)
    elapsed = time.perf_counter_ns() - start
    assert len(got) == len(commands)
    producer.close()
    return elapsed / len(commands)


def _run_gate(commands: list[dict]) -> float:
    producer = SubscriptionProducer()
    gate = SafetyGate(_axes(), hold_time=60)
    got = []
    gate.subscribe(got.append)
    producer.subscribe(gate)
    put = producer.put_nowait
    start = time.perf_counter_ns()
    for cmd in commands:
        put(cmd)
    elapsed = time.perf_counter_ns() - start
    assert len(got) == len(commands), (len(got), gate.statistics())
    producer.close()
    gate.close()
    return elapsed / len(commands)


def _run_gate_page(commands: list[dict]) -> float:
    gate = SafetyGate(_axes(), hold_time=60)
    got = []
    gate.subscribe(got.append)
    operator = _Operator()
    gate.attach(operator, age_of=lambda m: 0.02, rtt_interval=None)
    messages = [{"type": "control", "source": "keyboard", **cmd} for cmd in commands]
    handler = operator.handler
    start = time.perf_counter_ns()
    for message in messages:
        handler(message)
    elapsed = time.perf_counter_ns() - start
    assert len(got) == len(commands), (len(got), gate.statistics())
    gate.close()
    return elapsed / len(commands)


async def _bench(n: int, rounds: int) -> dict:
    commands = _commands(n)
    runs: dict[str, list[float]] = {"direct": [], "gate": [], "gate_page": []}
    for _ in range(rounds):
        runs["direct"].append(_run_direct(commands))
        runs["gate"].append(_run_gate(commands))
        runs["gate_page"].append(_run_gate_page(commands))
        await asyncio.sleep(0)
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {
        "ns_per_command": {k: round(v, 1) for k, v in med.items()},
        "rounds_ns": {k: [round(x, 1) for x in v] for k, v in runs.items()},
        "added_us": round((med["gate"] - med["direct"]) / 1000, 3),
        "added_us_page": round((med["gate_page"] - med["direct"]) / 1000, 3),
        "ratio_gate_over_direct": round(med["gate"] / med["direct"], 2),
        "target_added_us": 50,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    result = asyncio.run(_bench(args.commands, args.rounds))
    result.update({
        "commands": args.commands,
        "rounds": args.rounds,
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    })
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
