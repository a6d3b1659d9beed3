"""Fixtures of the network-namespace lab (marker ``netns``; root, ``ip``, ``iptables`` and
coturn needed, else skipped with the reason).

* ``turn_lab`` -- the 4G picture: a robot and a viewer in namespaces with NO route between
  them; both reach one "public" server address (10.77.0.1) where coturn (TURN, relay-only
  policy) and the rtcbot relay run.
* ``nat_lab`` -- a robot behind an iptables MASQUERADE NAT (a home router: no inbound NEW
  connections) and a viewer on the "internet", with coturn as STUN server and the relay on
  the router's side (10.78.0.1).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass

import pytest
from netlab import NetLab, Process, missing_requirements

TURN_USER, TURN_PASSWORD = "robot", "turn-pass"


@dataclass
class Scenario:
    lab: NetLab
    server: str  # the namespace of the public server (coturn + relay)
    robot: str
    viewer: str
    relay_url: str
    relay: Process


@pytest.fixture
def lab_requirements():
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)


def udp_arrives(lab: NetLab, src: str, dst: str, dst_ip: str) -> bool:
    """Whether a UDP datagram sent from namespace ``src`` reaches ``dst_ip`` in ``dst``."""
    listen = subprocess.Popen(
        ["ip", "netns", "exec", dst, sys.executable, "-c",
         "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
         f"s.bind(({dst_ip!r},9999)); print('ok',flush=True); s.settimeout(1.0)\n"
         "try: s.recvfrom(100); sys.exit(0)\nexcept OSError: sys.exit(1)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    with listen.stdout:
        listen.stdout.readline()  # bound
        subprocess.run(["ip", "netns", "exec", src, sys.executable, "-c",
                        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                        f"[s.sendto(b'x',({dst_ip!r},9999)) for _ in range(3)]"], check=False)
        return listen.wait(5) == 0


def build_turn(lab: NetLab) -> tuple[str, str, str]:
    core, robot, viewer = lab.ns("core"), lab.ns("robot"), lab.ns("viewer")
    lab.link(core, "10.77.1.1/24", robot, "10.77.1.2/24")
    lab.link(core, "10.77.2.1/24", viewer, "10.77.2.2/24")
    subprocess.run(["ip", "-n", core, "addr", "add", "10.77.0.1/32", "dev", "lo"], check=True)
    lab.route(robot, "10.77.0.1/32", "via", "10.77.1.1")
    lab.route(viewer, "10.77.0.1/32", "via", "10.77.2.1")
    lab.drop_default_routes(core, robot, viewer)
    lab.sysctl(core, "net.ipv4.ip_forward", "0")
    # the premise: the robot and the viewer cannot reach each other
    assert not udp_arrives(lab, robot, viewer, "10.77.2.2")
    assert not udp_arrives(lab, viewer, robot, "10.77.1.2")
    lab.start_coturn(core, ["10.77.0.1"], "10.77.0.1", TURN_USER, TURN_PASSWORD)
    return core, robot, viewer


def build_nat(lab: NetLab) -> tuple[str, str, str]:
    core, nat, robot, viewer = lab.ns("core"), lab.ns("nat"), lab.ns("robot"), lab.ns("viewer")
    _, wan = lab.link(core, "10.78.1.1/24", nat, "10.78.1.2/24")
    lan, _ = lab.link(nat, "192.168.78.1/24", robot, "192.168.78.2/24")
    lab.link(core, "10.78.2.1/24", viewer, "10.78.2.2/24")
    subprocess.run(["ip", "-n", core, "addr", "add", "10.78.0.1/32", "dev", "lo"], check=True)
    lab.route(nat, "default", "via", "10.78.1.1")
    lab.route(robot, "default", "via", "192.168.78.1")
    lab.route(viewer, "default", "via", "10.78.2.1")
    lab.sysctl(core, "net.ipv4.ip_forward", "1")
    lab.sysctl(nat, "net.ipv4.ip_forward", "1")
    lab.iptables(nat, "-t", "nat", "-A", "POSTROUTING", "-o", wan, "-j", "MASQUERADE")
    # a home router: nothing from outside may open a connection in
    lab.iptables(nat, "-A", "INPUT", "-i", wan, "-m", "conntrack", "--ctstate", "NEW",
                 "-j", "DROP")
    lab.iptables(nat, "-A", "FORWARD", "-i", wan, "-o", lan, "-m", "conntrack",
                 "--ctstate", "NEW", "-j", "DROP")
    assert not udp_arrives(lab, viewer, robot, "192.168.78.2")  # the robot is hidden
    assert udp_arrives(lab, robot, viewer, "10.78.2.2")  # but may go out
    lab.start_coturn(core, ["10.78.0.1"], "10.78.0.1", TURN_USER, TURN_PASSWORD)
    return core, robot, viewer


@pytest.fixture
async def turn_lab(lab_requirements):
    lab = NetLab()
    try:
        core, robot, viewer = await asyncio.to_thread(build_turn, lab)
        ice = {"iceServers": [{"urls": "turn:10.77.0.1:3478", "username": TURN_USER,
                               "credential": TURN_PASSWORD}],
               "iceTransportPolicy": "relay"}
        relay = await lab.spawn(core, "relay", "--host", "10.77.0.1", "--port", "8080",
                                "--ice", json.dumps(ice))
        await relay.wait_event("listening")
        yield Scenario(lab, core, robot, viewer, "http://10.77.0.1:8080", relay)
    finally:
        await lab.cleanup()


@pytest.fixture
async def nat_lab(lab_requirements):
    lab = NetLab()
    try:
        core, robot, viewer = await asyncio.to_thread(build_nat, lab)
        ice = {"iceServers": [{"urls": "stun:10.78.0.1:3478"}]}  # STUN only: no relaying
        relay = await lab.spawn(core, "relay", "--host", "10.78.0.1", "--port", "8080",
                                "--ice", json.dumps(ice))
        await relay.wait_event("listening")
        yield Scenario(lab, core, robot, viewer, "http://10.78.0.1:8080", relay)
    finally:
        await lab.cleanup()
