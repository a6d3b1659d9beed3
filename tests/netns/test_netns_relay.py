"""The 4G scenario on this machine with real parts: robot (aiortc) and viewer (Python, and
headless Chromium) in separate network namespaces, signalling through the rtcbot relay, media
and messages through Debian's coturn (TURN, relay-only) or through a NAT with STUN."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def check_video(event: dict) -> None:
    indices = [i for i in event["indices"] if i is not None]
    assert len(indices) >= len(event["indices"]) - 1, event  # frames decode to their index
    assert indices == sorted(indices) and len(set(indices)) > 1, event  # the video moves


async def run_viewer(scenario, role: str) -> dict:
    viewer = await scenario.lab.spawn(scenario.viewer, role, "--relay", scenario.relay_url,
                                      "--frames", "5")
    connected = await viewer.wait_event("connected", timeout=40)
    messages = await viewer.wait_event("messages", timeout=20)
    video = await viewer.wait_event("video", timeout=30)
    await viewer.wait_event("done", timeout=10)
    check_video(video)
    return {"connected": connected, "messages": messages, "video": video}


def chromium_available() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return Path("/usr/bin/chromium").exists()


async def test_python_viewer_through_turn_only(turn_lab):
    robot = await turn_lab.lab.spawn(turn_lab.robot, "robot", "--relay", turn_lab.relay_url)
    await robot.wait_event("registered")
    seen = await run_viewer(turn_lab, "viewer")
    pair = seen["connected"]["pair"]
    assert pair["local"] == "relay" and pair["remote"] == "relay", pair
    assert seen["connected"]["candidates"] == ["relay"]
    assert seen["messages"]["hello"] == {"hello": "from the robot"}
    assert seen["messages"]["count"] == 5
    got = await robot.wait_event("message", data={"n": 4})  # the viewer's messages arrived
    assert got["data"] == {"n": 4}
    robot_side = await robot.wait_event("connected")
    assert robot_side["pair"]["local"] == "relay" and robot_side["candidates"] == ["relay"]


@pytest.mark.browser
@pytest.mark.skipif(not chromium_available(), reason="needs /usr/bin/chromium and playwright")
async def test_chromium_viewer_through_turn_only(turn_lab):
    robot = await turn_lab.lab.spawn(turn_lab.robot, "robot", "--relay", turn_lab.relay_url)
    await robot.wait_event("registered")
    seen = await run_viewer(turn_lab, "chromium")
    pair = seen["connected"]["pair"]
    assert pair["local"] == "relay" and pair["remote"] == "relay", pair
    assert {"hello": "from the robot"} in seen["messages"]["received"]
    assert {"echo": {"from": "chromium"}} in seen["messages"]["received"]
    await robot.wait_event("message", data={"from": "chromium"})
    assert not seen["video"]["page_errors"]


async def test_python_viewer_reaches_robot_behind_nat_with_stun(nat_lab):
    robot = await nat_lab.lab.spawn(nat_lab.robot, "robot", "--relay", nat_lab.relay_url)
    await robot.wait_event("registered")
    seen = await run_viewer(nat_lab, "viewer")
    robot_side = await robot.wait_event("connected")
    assert "srflx" in robot_side["candidates"]  # the robot learnt its public address (STUN)
    assert "relay" not in robot_side["candidates"]
    pair = seen["connected"]["pair"]
    # the viewer talks to the NAT's public address, never the robot's private one
    assert pair["remote_addr"].startswith("10.78.1.2:"), pair
    assert pair["local"] == "host", pair
    assert seen["messages"]["count"] == 5


@pytest.mark.browser
@pytest.mark.skipif(not chromium_available(), reason="needs /usr/bin/chromium and playwright")
async def test_chromium_viewer_reaches_robot_behind_nat_with_stun(nat_lab):
    robot = await nat_lab.lab.spawn(nat_lab.robot, "robot", "--relay", nat_lab.relay_url)
    await robot.wait_event("registered")
    seen = await run_viewer(nat_lab, "chromium")
    robot_side = await robot.wait_event("connected")
    assert "srflx" in robot_side["candidates"]
    pair = seen["connected"]["pair"]
    assert pair["remote_addr"].startswith("10.78.1.2:"), pair
    assert pair["remote"] in ("srflx", "prflx"), pair
    await robot.wait_event("message", data={"from": "chromium"})
