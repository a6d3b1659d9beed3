"""rtcbot.ice: ICE servers from code, a file and the environment (no network)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from aiortc import RTCConfiguration, RTCIceTransportPolicy

from rtcbot.ice import IceConfig, load_ice_config, rtc_configuration, turn_rest_credentials

TURN = {"urls": "turn:turn.example.org:3478", "username": "robot", "credential": "pw"}


def test_default_is_no_server():
    config = load_ice_config(environ={})
    assert not config and config.servers == ()
    rtc = config.rtc_configuration()
    assert isinstance(rtc, RTCConfiguration) and rtc.iceServers == []
    assert config.browser_configuration() == {"iceServers": [], "iceTransportPolicy": "all"}


def test_from_code_list_and_dict():
    config = load_ice_config(["stun:stun.example.org:3478", TURN], environ={})
    assert config.ice_servers() == [
        {"urls": ["stun:stun.example.org:3478"]},
        {"urls": ["turn:turn.example.org:3478"], "username": "robot", "credential": "pw"},
    ]
    config = load_ice_config({"iceServers": [TURN], "iceTransportPolicy": "relay"}, environ={})
    rtc = config.rtc_configuration()
    assert rtc.iceTransportPolicy is RTCIceTransportPolicy.RELAY
    assert rtc.iceServers[0].urls == ["turn:turn.example.org:3478"]
    assert rtc.iceServers[0].username == "robot" and rtc.iceServers[0].credential == "pw"


def test_environment_json_file_and_variables(tmp_path):
    env = {"RTCBOT_ICE_SERVERS": json.dumps([TURN])}
    assert load_ice_config(environ=env).ice_servers()[0]["username"] == "robot"
    path = tmp_path / "ice.json"
    path.write_text(json.dumps({"iceServers": ["stun:s.example.org"]}))
    assert load_ice_config(environ={"RTCBOT_ICE_CONFIG": str(path)}).ice_servers() == [
        {"urls": ["stun:s.example.org"]}
    ]
    assert load_ice_config(path, environ={}).ice_servers() == [{"urls": ["stun:s.example.org"]}]
    env = {
        "RTCBOT_STUN_URL": "stun:a.example.org:3478",
        "RTCBOT_TURN_URL": "turn:b.example.org:3478?transport=udp, "
        "turn:b.example.org:3478?transport=tcp",
        "RTCBOT_TURN_USERNAME": "u",
        "RTCBOT_TURN_CREDENTIAL": "p",
        "RTCBOT_ICE_TRANSPORT_POLICY": "relay",
    }
    config = load_ice_config(environ=env)
    assert config.transport_policy == "relay"
    assert config.ice_servers()[1] == {
        "urls": ["turn:b.example.org:3478?transport=udp", "turn:b.example.org:3478?transport=tcp"],
        "username": "u",
        "credential": "p",
    }
    # an explicit value wins over the environment
    assert load_ice_config([], environ={"RTCBOT_ICE_SERVERS": json.dumps([TURN])}).servers == ()


def test_turn_secret_gives_fresh_rest_credentials():
    username, credential = turn_rest_credentials("s3cret", "viewer", ttl=60, now=1000)
    assert username == "1060:viewer"
    expected = hmac.new(b"s3cret", b"1060:viewer", hashlib.sha1).digest()
    assert base64.b64decode(credential) == expected
    env = {"RTCBOT_TURN_URL": "turn:t.example.org:3478", "RTCBOT_TURN_SECRET": "s3cret"}
    server = load_ice_config(environ=env).ice_servers("bob")[0]
    expiry, user = server["username"].split(":")
    assert user == "bob" and int(expiry) > 0
    assert "secret" not in server and server["credential"]


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (["http://stun.example.org"], ValueError, "'http://stun.example.org' is not a stun:"),
        ([{"urls": "turn:t.example.org"}], ValueError, "needs 'username' and 'credential'"),
        ([{"urls": "stun:x", "password": "p"}], ValueError, "unknown keys \\['password'\\]"),
        ([42], TypeError, "ICE server 0 must be a dict"),
        ({"iceServers": [], "iceTransportPolicy": "none"}, ValueError, "'none'"),
        ({"iceServers": ["stun:x"], "iceTransportPolicy": "relay"}, ValueError, "needs a TURN"),
        (42, TypeError, "expected a list of ICE servers, got int"),
    ],
)
def test_bad_values_are_named(value, error, match):
    with pytest.raises(error, match=match):
        load_ice_config(value, environ={})


def test_bad_environment_names_the_variable(tmp_path):
    with pytest.raises(ValueError, match="RTCBOT_ICE_SERVERS must be JSON"):
        load_ice_config(environ={"RTCBOT_ICE_SERVERS": "stun:x"})
    with pytest.raises(ValueError, match="RTCBOT_TURN_USERNAME"):
        load_ice_config(environ={"RTCBOT_TURN_URL": "turn:t:3478"})
    with pytest.raises(ValueError, match="cannot read"):
        load_ice_config(environ={"RTCBOT_ICE_CONFIG": str(tmp_path / "missing.json")})
    with pytest.raises(ValueError, match="RTCBOT_ICE_TRANSPORT_POLICY"):
        load_ice_config([TURN], environ={"RTCBOT_ICE_TRANSPORT_POLICY": "relay-only"})


def test_accepted_by_rtcconnection():
    from rtcbot.connection import RTCConnection

    config = rtc_configuration({"iceServers": [TURN], "iceTransportPolicy": "relay"}, environ={})
    conn = RTCConnection(rtcConfiguration=config)
    assert conn._configuration.iceTransportPolicy is RTCIceTransportPolicy.RELAY
    conn.close()
    assert isinstance(IceConfig(), IceConfig)


def test_errors_never_echo_credentials():
    secret = "hunter2-turn-password"
    for bad in ([{"urls": "turn:h:3478", "username": "u", "credential": 12345}],
                [{"urls": "turn:h:3478", "username": "u", "credential": secret}, 7]):
        with pytest.raises((TypeError, ValueError)) as info:
            load_ice_config(bad, environ={})
        assert "12345" not in str(info.value) and secret not in str(info.value)
    with pytest.raises(ValueError) as info:
        load_ice_config(environ={"RTCBOT_ICE_SERVERS": '[{"urls": "turn:h", "credential": "'
                                 + secret})
    assert secret not in str(info.value)
