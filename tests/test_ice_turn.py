"""ICE configuration against a real coturn on 127.0.0.1 (no namespaces, no root): two aiortc
peers that may only use TURN (relay-only policy) connect and exchange messages, with long-term
credentials and with short-lived credentials computed from coturn's static auth secret."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct
import subprocess
import time

import pytest

from rtcbot import RTCConnection
from rtcbot.ice import load_ice_config
from rtcbot.testing.connection import connect

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(shutil.which("turnserver") is None,
                       reason="needs coturn (apt-get install -y coturn)"),
]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers_stun(port: int) -> bool:
    request = struct.pack("!HHI12s", 1, 0, 0x2112A442, os.urandom(12))
    deadline = time.monotonic() + 10
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            s.sendto(request, ("127.0.0.1", port))
            try:
                s.recvfrom(2048)
                return True
            except OSError:
                pass
    return False


@pytest.fixture(params=["password", "secret"])
def coturn(request, tmp_path):
    """coturn on 127.0.0.1; yields the environment that configures rtcbot for it."""
    port = _free_udp_port()
    auth = (["--lt-cred-mech", "--user=robot:pw"] if request.param == "password"
            else ["--use-auth-secret", "--static-auth-secret=shared-secret"])
    proc = subprocess.Popen(
        ["turnserver", "-n", *auth, "--realm=rtcbot.test", "--no-tls", "--no-dtls", "--no-cli",
         "--no-rfc5780", "--fingerprint", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
         "--allow-loopback-peers", f"--listening-port={port}", "--min-port=50500",
         "--max-port=50900", f"--userdb={tmp_path / 'db'}", f"--pidfile={tmp_path / 'pid'}",
         f"--log-file={tmp_path / 'log'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        assert _answers_stun(port), "coturn did not start"
        env = {"RTCBOT_TURN_URL": f"turn:127.0.0.1:{port}", "RTCBOT_ICE_TRANSPORT_POLICY": "relay"}
        if request.param == "password":
            env |= {"RTCBOT_TURN_USERNAME": "robot", "RTCBOT_TURN_CREDENTIAL": "pw"}
        else:
            env |= {"RTCBOT_TURN_SECRET": "shared-secret"}
        yield env
    finally:
        proc.terminate()
        proc.wait(10)


async def test_relay_only_peers_connect_through_coturn(coturn):
    config = load_ice_config(environ=coturn)
    a = RTCConnection(rtcConfiguration=config.rtc_configuration("a"))
    b = RTCConnection(rtcConfiguration=config.rtc_configuration("b"))
    try:
        await connect(a, b, timeout=20)
        for conn in (a, b):  # relay candidates only
            sdp = conn._pc.localDescription.sdp
            kinds = {line.split(" typ ")[1].split()[0] for line in sdp.splitlines()
                     if line.startswith("a=candidate:")}
            assert kinds == {"relay"}, sdp
        b.subscribe(b.put_nowait)
        a.put_nowait({"through": "turn"})
        async with asyncio.timeout(10):
            assert await a.get() == {"through": "turn"}
    finally:
        await a.close()
        await b.close()


async def test_wrong_turn_credentials_give_no_relay_candidate(coturn):
    env = dict(coturn)
    env.pop("RTCBOT_TURN_SECRET", None)
    env |= {"RTCBOT_TURN_USERNAME": "robot", "RTCBOT_TURN_CREDENTIAL": "wrong"}
    a = RTCConnection(rtcConfiguration=load_ice_config(environ=env).rtc_configuration())
    try:
        async with asyncio.timeout(20):
            offer = await a.getLocalDescription()
        assert " typ relay" not in offer["sdp"]  # coturn refused the allocation
    finally:
        await a.close()
