"""The safety gate on the emulated 4G link (the field lab): after a 2 s gap no command older
than the age limit reaches the motors and the stop callback ran within the control timeout of
the gap's start; with the latency raised past the threshold the speed is scaled as
configured."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from pathlib import Path

import pytest
from netlab import Process

from rtcbot.testing.fieldlab import FieldLab, missing_requirements

pytestmark = [pytest.mark.netns, pytest.mark.slow]

PEERS = Path(__file__).resolve().parent / "safety_peers.py"
_ids = itertools.count()
MAX_AGE = 0.5
LINK_TIMEOUT = 0.5
# Scheduling slack on 2 shared cores: the timer that fires the stop and the print of it.
SLACK = 0.3


@pytest.fixture
def lab():
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    return FieldLab(profile="4g", prefix=f"rsf{os.getpid() % 10000}t{next(_ids)}")


async def spawn(lab: FieldLab, host, name: str, *args: str) -> Process:
    stderr = lab.tmp / f"{name}.stderr"
    with open(stderr, "wb") as err:  # noqa: ASYNC230 - a local file, once
        proc = await host.run([sys.executable, str(PEERS), *args],
                              stdout=asyncio.subprocess.PIPE, stderr=err,
                              env={"PYTHONUNBUFFERED": "1"})
    process = Process(name, proc, stderr_path=stderr)
    process.start_reading()
    return process


async def drive(lab: FieldLab, port: int, *robot_args: str, seconds: float = 7.0):
    robot = await spawn(lab, lab.robot, f"robot{port}", "robot", "--host", lab.robot.ip,
                        "--port", str(port), "--max-age", str(MAX_AGE), *robot_args)
    await robot.wait_event("listening", timeout=20)
    viewer = await spawn(lab, lab.viewer, f"viewer{port}", "viewer", "--url",
                         f"http://{lab.robot.ip}:{port}/connect", "--seconds", str(seconds))
    await viewer.wait_event("connected", timeout=30)
    await robot.wait_event("motor", timeout=10, forward=0.5)
    return robot, viewer


async def finish(robot: Process, viewer: Process):
    sent = (await viewer.wait_event("sent", timeout=30))["sent"]
    await robot.stop()
    summary = await robot.wait_event("summary", timeout=10)
    await viewer.stop()
    return {int(k): v for k, v in sent.items()}, summary


def applied_ages(robot: Process, sent: dict[int, float]) -> list[float]:
    """How old each command was when the motors got it (identified by its unique turn)."""
    ages = []
    for event in robot.events:
        if event.get("event") == "motor" and event["turn"]:
            seq = round(event["turn"] * 10000)
            ages.append(event["at"] - sent[seq])
    return ages


async def test_a_2s_gap_stops_the_robot_in_time_and_no_stale_command_reaches_the_motors(lab):
    async with lab:
        robot, viewer = await drive(lab, 8091, "--link-timeout", str(LINK_TIMEOUT))
        await robot.wait_event("motor", timeout=10, turn=20 / 10000)  # driving for 1 s
        start, _ = await lab.outage(2.0)
        stop = await robot.wait_event("stop", timeout=10)
        assert "link lost" in stop["reason"]
        assert stop["at"] - start <= LINK_TIMEOUT + SLACK, (stop["at"] - start)
        # Then either the session survives the gap (the operator releases; driving resumes
        # with fresh commands only) or the heartbeat gave up on it (2.5 s of silence can just
        # be reached: 2 s + up to one ping interval): either way nothing stale moves.
        sent, summary = await finish(robot, viewer)
        ages = applied_ages(robot, sent)
        assert ages and max(ages) <= MAX_AGE, max(ages)
        survived = any(e.get("safety") == "release" for e in robot.events)
        print(f"stop {stop['at'] - start:.3f} s after the gap began; oldest applied command "
              f"{max(ages) * 1000:.0f} ms; survived={survived}; {summary}")
        if survived:  # the commands sent during the gap arrived late and were refused
            refused = summary["refused"]
            assert refused.get("estop", 0) + refused.get("too old", 0) >= 10, summary
            after = [e for e in robot.events if e.get("event") == "motor" and e["at"] > start
                     and e["forward"] == 0.5]
            assert after, "driving did not resume after the release"


async def test_without_a_latch_stale_commands_are_refused_and_slow_links_scale_the_speed(lab):
    async with lab:
        # a link timeout longer than the gap: only the age limit stands between the queued
        # commands and the motors
        robot, viewer = await drive(lab, 8092, "--link-timeout", "5", "--slow-ms", "250",
                                    "--stop-ms", "5000", seconds=12.0)
        await robot.wait_event("motor", timeout=10, turn=20 / 10000)  # driving for 1 s
        await lab.outage(1.5)  # (2 s may reach the heartbeat's 2.5 s limit and close)
        await robot.wait_event("safety", timeout=15, safety="expired")
        # back to normal after the gap, then a slow link (RTT ~ 2 x 200 ms)
        await robot.wait_event("motor", timeout=15, forward=0.5)
        await lab.set_link(delay=0.2)
        slow = await robot.wait_event("safety", timeout=15, safety="slowdown", mode="slow")
        assert slow["latency_ms"] >= 250
        await robot.wait_event("motor", timeout=10, forward=0.25)  # scaled by 0.5
        sent, summary = await finish(robot, viewer)
        ages = applied_ages(robot, sent)
        assert ages and max(ages) <= MAX_AGE, max(ages)
        assert summary["refused"].get("too old", 0) >= 10, summary
        print(f"oldest applied command {max(ages) * 1000:.0f} ms; slow at "
              f"{slow['latency_ms']:.0f} ms ({slow['cause']}); {summary}")
        assert not [e for e in robot.events if e.get("event") == "stop"]
