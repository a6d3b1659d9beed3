"""Resumable sessions on the emulated 4G link (the field lab): after an outage, or an address
change with no application code, the session comes back by itself (the same connection on
both sides, no onClose) and the robot's control timeout fired during the gap. Each run
prints its figures (``resume_lab`` JSON lines: video and control back, seconds after the link
returned or the address changed); ``bench/field_resume.py`` repeats them."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
from pathlib import Path

import pytest
from netlab import Process

from rtcbot.testing.fieldlab import FieldLab, missing_requirements

pytestmark = [pytest.mark.netns, pytest.mark.slow]

PEERS = Path(__file__).resolve().parent / "resume_peers.py"
_ids = itertools.count()


def make_lab(profile: str = "4g") -> FieldLab:
    return FieldLab(profile=profile, prefix=f"rrs{os.getpid() % 10000}t{next(_ids)}")


@pytest.fixture
def lab():
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    return make_lab()


async def spawn(lab: FieldLab, host, name: str, *args: str) -> Process:
    stderr = lab.tmp / f"{name}.stderr"
    with open(stderr, "wb") as err:  # noqa: ASYNC230 - a local file, once
        proc = await host.run([sys.executable, str(PEERS), *args],
                              stdout=asyncio.subprocess.PIPE, stderr=err,
                              env={"PYTHONUNBUFFERED": "1"})
    process = Process(name, proc, stderr_path=stderr)
    process.start_reading()
    return process


def back_after(times: list[float], reference: float, event_at: float) -> float | None:
    """Seconds from ``reference`` to the first arrival after the longest gap that starts
    within a second of ``event_at`` (None if nothing arrived after it)."""
    best = None
    for before, after in itertools.pairwise(times):
        if after <= event_at or before > event_at + 1.0:
            continue
        if best is None or after - before > best[1] - best[0]:
            best = (before, after)
    if best is None:
        return None
    return best[1] - reference


async def scenario(lab: FieldLab, path: str, event: str, *, settle: float = 4.0,
                   after: float = 6.0) -> dict:
    """Run one event on one signalling path (``connect``: the viewer's own address changes,
    as the lab's robot host plays the operator's laptop; ``relay``: the robot's address
    changes, the robot connects out to a relay) and return the figures."""
    port = 8090
    if path == "connect":
        # the lab's robot host is the one whose address changes: here it is the viewer
        server = await spawn(lab, lab.server, "serve", "serve", "--host", lab.server.ip,
                             "--port", str(port))
        await server.wait_event("listening", timeout=20)
        client = await spawn(lab, lab.robot, "client", "client", "--url",
                             f"http://{lab.server.ip}:{port}/connect")
        robot_side, viewer_side, others = server, client, []
    else:
        relay = await spawn(lab, lab.server, "relay", "relay", "--host", lab.server.ip,
                            "--port", str(port))
        await relay.wait_event("listening", timeout=20)
        url = f"http://{lab.server.ip}:{port}"
        robot = await spawn(lab, lab.robot, "robot", "robot", "--relay", url)
        await robot.wait_event("registered", timeout=20)
        client = await spawn(lab, lab.viewer, "viewer", "viewer", "--relay", url)
        robot_side, viewer_side, others = robot, client, [relay]
    try:
        await viewer_side.wait_event("connected", timeout=30)
        await asyncio.sleep(settle)  # steady streaming before the event (a duration, not a sync)
        loop_now = __import__("time").monotonic
        if event.startswith("outage"):
            seconds = float(event.split(":")[1])
            start, end = await lab.outage(seconds)
            reference, event_at = end, start
            await asyncio.sleep(seconds)
        elif event == "newip":
            event_at = loop_now()
            await lab.new_ip()
            reference = event_at
        elif event == "iface":
            event_at = loop_now()
            await lab.iface_down()
            reference = event_at
        else:
            raise ValueError(event)
        await viewer_side.wait_event("link_restored", timeout=40)
        await asyncio.sleep(after)
        await viewer_side.stop()
        summary = await viewer_side.wait_event("summary", timeout=10)
    finally:
        await viewer_side.stop()
        await robot_side.stop()
        for other in others:
            await other.stop()
    echoes = [arrived for arrived, _ in summary["echoes"]]
    closed = [e for p in (robot_side, viewer_side) for e in p.events
              if e.get("event") == "closed" and e["at"] < reference + after - 0.5]
    result = {
        "path": path,
        "event": event,
        "profile": lab.profile.name,
        "video_back_s": back_after(summary["frames"], reference, event_at),
        "control_back_s": back_after(echoes, reference, event_at),
        "viewer_lost_at_s": next((e["at"] - event_at for e in viewer_side.events
                                  if e.get("event") == "link_lost"), None),
        "restores": summary["link"]["restores"],
        "closed_during_gap": len(closed),
        "control_timeout_fired": any(e.get("event") == "control_timeout"
                                     and event_at <= e["at"] <= reference + 3.0
                                     for e in robot_side.events),
        "robot_lost": any(e.get("event") == "link_lost" for e in robot_side.events),
    }
    print(json.dumps({"resume_lab": result}), flush=True)
    return result


async def test_a_4s_outage_through_connect_resumes(lab):
    async with lab:
        result = await scenario(lab, "connect", "outage:4")
    assert result["restores"] == 1 and result["closed_during_gap"] == 0, result
    assert result["control_timeout_fired"], result
    assert result["video_back_s"] is not None and result["control_back_s"] is not None, result

