"""The field lab does what it says: rate, loss and delay of its profiles measured roughly with
UDP probes, and each event (outage, new address, an interface down) observed from outside;
then a real aiortc connection (data + video) through the ``4g`` link. Generous bounds: these
are behaviours, not timings."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netlab import PEERS, Process

from rtcbot.testing.fieldlab import FieldLab, missing_requirements
from rtcbot.testing.fieldlab._netif import in_netns, offloads

pytestmark = [pytest.mark.netns]

_ids = itertools.count()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fieldlab" / "lab.py"


@pytest.fixture
def lab_factory():
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)

    def make(profile: str = "4g", **kw) -> FieldLab:
        return FieldLab(profile=profile, prefix=f"rfl{os.getpid() % 10000}t{next(_ids)}", **kw)

    return make


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def _addresses(lab: FieldLab, ifname: str) -> str:
    return subprocess.run(["ip", "-n", lab.robot.ns, "-4", "addr", "show", ifname],
                          capture_output=True, text=True, check=True).stdout


async def _wait_for_traffic(lab: FieldLab, port: str = "r0", timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while (await lab.stats())["links"][port]["up"]["forwarded"] < 5:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_profiles_rate_delay_loss_and_no_offloads(lab_factory):
    async with lab_factory("4g") as lab:
        for ns, ifname in ((lab.robot.ns, "eth0"), (lab.robot.ns, "eth1"),
                           (lab.viewer.ns, "eth0")):
            features = await asyncio.to_thread(in_netns, ns, offloads, ifname)
            assert not features["tx-checksum"] and not features["tso"], (ns, ifname, features)
        light = await lab.udp_probe(lab.robot, lab.viewer, rate_bps=300_000, size=200,
                                    seconds=1.0)
        assert 0.020 < light["delay_p50"] < 0.060, light["delay_p50"]  # 30 ± 5 ms one way
        assert light["reordered"] == 0 and light["received"] > 0.9 * light["sent"]
        # twice the capacity: the rate limit holds it near 4 Mbit/s and the queue fills
        flood = await lab.udp_probe(lab.robot, lab.viewer, rate_bps=8_000_000, size=1200,
                                    seconds=1.5)
        assert 2_800_000 < flood["throughput_bps"] < 4_400_000, flood["throughput_bps"]
        assert 0.25 < flood["delay_p50"] < 0.75, flood["delay_p50"]  # ~500 ms queue
        assert 0.3 < flood["loss"] < 0.7, flood["loss"]  # the drop-tail queue dropped
        assert flood["reordered"] == 0

        await lab.set_profile("bad4g")
        lossy = await lab.udp_probe(lab.viewer, lab.robot, rate_bps=400_000, size=100,
                                    seconds=2.0)
        assert 0.045 < lossy["delay_p50"] < 0.090, lossy["delay_p50"]  # 60 ± 15 ms
        assert 0.01 < lossy["loss"] < 0.07, lossy["loss"]  # 3 %
        stats = await lab.stats()
        assert stats["profile"] == "bad4g" and stats["links"]["r0"]["down"]["lost"] > 0

        await lab.set_link(rate_bps=800_000)  # the capacity drop, at run time
        cut = await lab.udp_probe(lab.robot, lab.viewer, rate_bps=2_000_000, size=1200,
                                  seconds=1.5)
        assert 500_000 < cut["throughput_bps"] < 1_000_000, cut["throughput_bps"]


async def test_drop_profile_cuts_capacity_by_itself(lab_factory):
    async with lab_factory("drop") as lab:
        await lab.set_link(loss=0.0)
        before = await lab.udp_probe(lab.robot, lab.viewer, rate_bps=2_000_000, size=1200,
                                     seconds=1.0)
        assert before["throughput_bps"] > 1_500_000
        stats = await lab.stats()
        assert stats["cut_at"] is None and stats["profile"] == "drop"
        # a profile with a short cut: 0.5 s after it is applied
        from dataclasses import replace

        from rtcbot.testing.fieldlab import PROFILES

        await lab.set_profile(replace(PROFILES["drop"], cut_after=0.5))
        after = await lab.udp_probe(lab.robot, lab.viewer, rate_bps=2_000_000, size=1200,
                                    seconds=2.0)
        stats = await lab.stats()
        assert stats["cut_at"] is not None
        late = [r for r in after["records"] if r[2] > stats["cut_at"] + 0.6]
        span = late[-1][2] - late[0][2]
        rate = sum(r[3] for r in late[1:]) * 8 / span
        assert 500_000 < rate < 1_000_000, rate


async def test_outage_blocks_traffic_then_lets_it_through(lab_factory):
    async with lab_factory("4g") as lab:
        probe = asyncio.ensure_future(
            lab.udp_probe(lab.robot, lab.viewer, rate_bps=80_000, size=200, seconds=3.0))
        await _wait_for_traffic(lab)
        start, end = await lab.outage(1.0)
        assert end - start == pytest.approx(1.0)
        result = await probe
        arrivals = [r[2] for r in result["records"]]
        assert not [t for t in arrivals if start < t < end], "packets crossed during the outage"
        assert any(t < start for t in arrivals)
        sent_after = [r for r in result["records"] if r[1] > end + 0.01]
        assert len(sent_after) > 20  # traffic flows again
        stats = await lab.stats()
        assert stats["links"]["r0"]["up"]["outage_dropped"] > 10
        assert stats["outages"] == [[start, end]]


async def test_new_ip_changes_the_robots_address(lab_factory):
    async with lab_factory("4g") as lab:
        old = lab.robot.interfaces["eth0"]
        new = await lab.new_ip("eth0")
        assert new != old and lab.robot.interfaces["eth0"] == new
        shown = await asyncio.to_thread(_addresses, lab, "eth0")
        assert f"inet {new}/24" in shown and f"inet {old}/" not in shown
        assert lab.robot.ip == new
        result = await lab.udp_probe(lab.robot, lab.viewer, rate_bps=50_000, size=200,
                                     seconds=0.5, src_ip=new)
        assert result["received"] > 0.8 * result["sent"]  # the new address works
        assert lab.environment()["RTCBOT_FIELDLAB_ROBOT_IP"] == new


async def test_iface_down_takes_the_busy_interface_away_the_other_works(lab_factory):
    async with lab_factory("4g") as lab:
        eth0, eth1 = lab.robot.interfaces["eth0"], lab.robot.interfaces["eth1"]
        # traffic from eth1's address leaves by eth1: the lab finds it as the busy one
        probe = asyncio.ensure_future(lab.udp_probe(lab.robot, lab.viewer, rate_bps=200_000,
                                                    size=500, seconds=1.5, src_ip=eth1))
        await _wait_for_traffic(lab, port="r1")
        assert await lab.busiest_interface() == "eth1"
        await probe
        assert await lab.iface_down("eth0") == "eth0"
        link = await asyncio.to_thread(_ip, "-n", lab.robot.ns, "link", "show", "eth0")
        assert "state DOWN" in link
        assert lab.robot.ip == eth1
        works = await lab.udp_probe(lab.robot, lab.viewer, rate_bps=50_000, size=200,
                                    seconds=0.5, src_ip=eth1)
        assert works["received"] > 0.8 * works["sent"]
        gone = await lab.udp_probe(lab.robot, lab.viewer, rate_bps=50_000, size=200,
                                   seconds=0.5, src_ip=eth0)
        assert gone["received"] == 0 and gone["errors"] == gone["sent"]
        await lab.iface_up("eth0")
        back = await lab.udp_probe(lab.robot, lab.viewer, rate_bps=50_000, size=200,
                                   seconds=0.5, src_ip=eth0)
        assert back["received"] > 0.8 * back["sent"]


async def test_emulator_stops_by_itself_and_namespaces_go_on_close(lab_factory):
    lab = lab_factory("lan", lifetime=1.0)
    async with lab:
        names = await asyncio.to_thread(_ip, "netns", "list")
        assert f"{lab.prefix}-robot" in names and f"{lab.prefix}-mid" in names
        started = time.monotonic()
        async with asyncio.timeout(10):
            await lab.emulator.wait()
        assert time.monotonic() - started < 5
        with pytest.raises(RuntimeError, match="not running"):
            await lab.outage(1.0)
    names = await asyncio.to_thread(_ip, "netns", "list")
    assert lab.prefix not in names


def _spawn_peer(lab: FieldLab, host, role: str, *args: str):
    async def start() -> Process:
        stderr = lab.tmp / f"{role}.stderr"
        with open(stderr, "wb") as err:  # noqa: ASYNC230 - a local file, once
            proc = await host.run([sys.executable, str(PEERS), role, *args],
                                  stdout=asyncio.subprocess.PIPE, stderr=err,
                                  env={"PYTHONUNBUFFERED": "1"})
        process = Process(f"{role}@{host.name}", proc, stderr_path=stderr)
        process.start_reading()
        return process

    return start()


@pytest.mark.slow
async def test_aiortc_connection_through_4g_carries_data_and_video(lab_factory):
    async with lab_factory("4g") as lab:
        relay_url = f"http://{lab.server.ip}:8080"
        relay = await _spawn_peer(lab, lab.server, "relay", "--host", lab.server.ip,
                                  "--port", "8080", "--ice", json.dumps({"iceServers": []}))
        await relay.wait_event("listening")
        robot = await _spawn_peer(lab, lab.robot, "robot", "--relay", relay_url)
        await robot.wait_event("registered")
        viewer = await _spawn_peer(lab, lab.viewer, "viewer", "--relay", relay_url,
                                   "--frames", "10", "--messages", "10")
        connected = await viewer.wait_event("connected", timeout=30)
        assert connected["pair"]["local"] == "host"
        messages = await viewer.wait_event("messages", timeout=20)
        assert messages["count"] == 10 and messages["hello"] == {"hello": "from the robot"}
        assert messages["rtt_ms"] > 40  # it went through the 2 x 30 ms link
        video = await viewer.wait_event("video", timeout=30)
        indices = [i for i in video["indices"] if i is not None]
        assert len(indices) >= 8 and indices == sorted(indices) and len(set(indices)) > 1
        await viewer.wait_event("done", timeout=10)
        stats = await lab.stats()
        carried = sum(stats["links"][p]["up"]["forwarded_bytes"] for p in ("r0", "r1"))
        assert carried > 20_000  # video crossed the emulated link
        for process in (viewer, robot, relay):
            await process.stop()


ROBOT_PROGRAM = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + 8
while time.monotonic() < end:
    try:
        s.sendto(str(time.monotonic()).encode(), ("{viewer_ip}", 9100))
    except OSError:
        pass
    time.sleep(0.02)
"""

VIEWER_PROGRAM = """
import json, socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{viewer_ip}", 9100)); s.settimeout(5)
gaps, last, end = [], None, time.monotonic() + 3.5
while time.monotonic() < end:
    s.recvfrom(100)
    now = time.monotonic()
    if last is not None:
        gaps.append(now - last)
    last = now
print(json.dumps({"longest_gap": max(gaps), "received": len(gaps) + 1}), flush=True)
"""


async def test_cli_runs_a_users_robot_and_viewer_with_scripted_events(lab_factory):
    if missing_requirements():
        pytest.skip(missing_requirements())
    prefix = f"rfl{os.getpid() % 10000}c{next(_ids)}"
    argv = [sys.executable, "-m", "rtcbot.testing.fieldlab", "run", "--profile", "4g",
            "--prefix", prefix, "--robot", f"python -c '{ROBOT_PROGRAM}'",
            "--viewer", f"python -c '{VIEWER_PROGRAM}'", "--start-delay", "0.3",
            "--event", "outage:1.0@1.0", "--duration", "20"]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(40):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert 0.9 < result["longest_gap"] < 2.0, result  # the viewer saw the 1 s outage
    said = [json.loads(line)["fieldlab"] for line in err.decode().splitlines()
            if line.startswith("{")]
    assert said[0] == "ready" and "outage" in said and said[-1] == "stats"
    names = await asyncio.to_thread(_ip, "netns", "list")
    assert prefix not in names


async def test_example_lab_program(lab_factory):
    example = EXAMPLE
    proc = await asyncio.create_subprocess_exec(sys.executable, str(example),
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(40):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    delay = float(lines[1].split("delay ")[1].split(" ms")[0])
    assert 20 <= delay <= 60, lines
    gap = float(lines[2].split("packets ")[1].split(" s")[0])
    assert 0.9 <= gap <= 2.0, lines
    assert "bad4g: one-way delay" in lines[3]
    assert lines[4].startswith("the robot's eth0 is now 10.201.0.")
