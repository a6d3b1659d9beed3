"""The plain rules of the connection: message codec, heartbeat, control timeout, signalling and
configuration input. No event loop, no aiortc connection."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCIceServer

from rtcbot.connection import (
    InvalidDescription,
    make_configuration,
    validate_description,
)
from rtcbot.connection._codec import MessageDecoder, encode_message
from rtcbot.connection._heartbeat import ControlTimeout, Heartbeat

# ------------------------------------------------------------------------------ codec


def test_values_are_json_encoded_strings_included():
    assert json.loads(encode_message({"a": [1, 2.5, None, True]})) == {"a": [1, 2.5, None, True]}
    # a string is JSON too, so "123" stays a string on the other side
    assert encode_message("123") == '"123"'
    assert MessageDecoder("x").decode(encode_message("123")) == "123"


def test_numpy_values_become_python_values():
    payload = encode_message({"f": np.float32(1.5), "i": np.int64(3), "b": np.bool_(True),
                              "a": np.arange(3, dtype=np.uint8)})
    assert json.loads(payload) == {"f": 1.5, "i": 3, "b": True, "a": [0, 1, 2]}


def test_bytes_are_sent_unchanged():
    assert encode_message(b"\x00\xff") == b"\x00\xff"
    assert encode_message(bytearray(b"ab")) == b"ab"
    assert encode_message(memoryview(b"cd")) == b"cd"


def test_unencodable_value_raises_type_error_naming_it():
    class Motor:
        def __repr__(self) -> str:
            return "<Motor left>"

    with pytest.raises(TypeError, match="Motor left"):
        encode_message({"m": Motor()})
    with pytest.raises(TypeError, match="set"):
        encode_message({1, 2})


def test_nan_raises_value_error_naming_it():
    with pytest.raises(ValueError, match="NaN"):
        encode_message({"speed": math.nan})
    with pytest.raises(ValueError, match="NaN"):
        encode_message(np.array([1.0, np.inf]))


def test_decoder_rule_for_text_binary_and_not_json(caplog):
    decoder = MessageDecoder("default")
    assert decoder.decode('{"a": 1}') == {"a": 1}
    assert decoder.decode(b"\x01\x02") == b"\x01\x02"
    with caplog.at_level("WARNING", logger="rtcbot.connection"):
        assert decoder.decode("hello") == "hello"
        assert decoder.decode("world") == "world"
    assert decoder.not_json == 2
    warnings = [r for r in caplog.records if "not JSON" in r.getMessage()]
    assert len(warnings) == 1  # logged once per channel, then counted


def test_decoder_without_json_passes_messages_through():
    decoder = MessageDecoder("raw", json_mode=False)
    assert decoder.decode('{"a": 1}') == '{"a": 1}'
    assert decoder.not_json == 0


# ------------------------------------------------------------------------------ heartbeat


def test_heartbeat_pings_every_interval_and_answers_pings():
    hb = Heartbeat(interval=0.5, timeout=2.5)
    assert not hb.ping_due(0.0) and hb.next_wakeup() is None
    hb.start(10.0)
    assert hb.ping_due(10.0)
    ping = json.loads(hb.make_ping(10.0))
    assert ping == {"ping": 10000.0}
    assert not hb.ping_due(10.4) and hb.ping_due(10.5)
    assert json.loads(hb.receive('{"ping": 42.5}', 10.1)) == {"pong": 42.5}


def test_heartbeat_measures_round_trip_from_pong():
    hb = Heartbeat()
    hb.start(1.0)
    sent = json.loads(hb.make_ping(1.0))["ping"]
    assert hb.receive(json.dumps({"pong": sent}), 1.004) is None
    stats = hb.statistics()
    assert stats.rtt_ms == pytest.approx(4.0)
    assert stats.pongs_received == 1 and stats.pings_sent == 1


def test_peer_not_speaking_heartbeat_is_never_timed_out():
    hb = Heartbeat(timeout=2.5)
    hb.start(0.0)
    hb.heard(1.0)  # data on another channel does not enrol the peer
    assert hb.deadline is None and not hb.expired(1000.0)
    assert not hb.statistics().peer_speaks_heartbeat


def test_heartbeat_expires_after_timeout_of_silence_and_any_message_extends():
    hb = Heartbeat(interval=0.5, timeout=2.5)
    hb.start(0.0)
    hb.receive('{"ping": 1}', 1.0)
    assert hb.deadline == pytest.approx(3.5)
    hb.heard(2.0)  # a message on a data channel also proves the peer alive
    assert not hb.expired(4.0)
    assert hb.expired(4.5)
    assert hb.silence(4.5) == pytest.approx(2.5)


def test_heartbeat_ignores_garbage_but_counts_it_as_life():
    hb = Heartbeat()
    assert hb.receive("not json", 5.0) is None
    assert hb.receive('{"pong": "x"}', 5.0) is None
    assert hb.receive("[1]", 5.0) is None
    assert hb.deadline == pytest.approx(5.0 + hb.timeout)


def test_late_ping_does_not_burst():
    hb = Heartbeat(interval=0.5)
    hb.start(0.0)
    hb.make_ping(0.0)
    hb.make_ping(3.0)  # the loop was busy for 3 s
    assert not hb.ping_due(3.4) and hb.ping_due(3.5)


@pytest.mark.parametrize("bad", [0, -1, math.inf, math.nan])
def test_heartbeat_rejects_bad_times(bad):
    with pytest.raises(ValueError, match="positive"):
        Heartbeat(timeout=bad)


# ------------------------------------------------------------------------------ control timeout


def test_control_timeout_fires_once_per_silence_and_rearms_on_message():
    ct = ControlTimeout(0.5)
    assert ct.deadline is None and not ct.poll(100.0)  # not started: never fires
    ct.arm(10.0)
    assert not ct.poll(10.4)
    assert ct.poll(10.5)
    assert not ct.poll(11.0)  # once per silence
    ct.feed(12.0)
    assert ct.deadline == pytest.approx(12.5)
    ct.feed(12.3)
    assert not ct.poll(12.6)
    assert ct.poll(12.8)
    assert ct.fired == 2


def test_control_timeout_runs_at_close_only_if_due():
    ct = ControlTimeout(1.0)
    assert not ct.disarm()  # never armed (never connected): nothing to stop
    ct = ControlTimeout(1.0)
    ct.arm(0.0)
    assert ct.disarm()
    ct = ControlTimeout(1.0)
    ct.arm(0.0)
    assert ct.poll(1.0)
    assert not ct.disarm()  # already stopped for this silence


@pytest.mark.parametrize("bad", ["1", None, True])
def test_control_timeout_rejects_non_numbers(bad):
    with pytest.raises(TypeError, match="seconds"):
        ControlTimeout(bad)


# ------------------------------------------------------------------------------ signalling input


def test_valid_description_is_accepted():
    sdp = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    d = validate_description({"sdp": sdp, "type": "offer"})
    assert d.type == "offer" and d.sdp == sdp


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("v=0", "must be a dict"),
        ({"type": "offer"}, "'sdp'"),
        ({"sdp": "v=0"}, "'type'"),
        ({"sdp": "v=0", "type": "rollback"}, "'rollback'"),
        ({"sdp": 12, "type": "offer"}, "must be a str"),
        ({"sdp": "hello", "type": "answer"}, "not SDP"),
        ({"sdp": "v=0\r\ns=-\r\n", "type": "offer"}, "no media section"),
    ],
)
def test_malformed_description_raises_value_error_naming_the_problem(bad, words):
    with pytest.raises(InvalidDescription, match=words) as info:
        validate_description(bad)
    assert isinstance(info.value, ValueError)


# ------------------------------------------------------------------------------ configuration


def test_default_configuration_has_no_ice_server_and_is_never_shared():
    a, b = make_configuration(None), make_configuration(None)
    assert a.iceServers == [] and a is not b and a.iceServers is not b.iceServers


def test_browser_style_ice_server_list():
    conf = make_configuration(
        [{"urls": "stun:stun.example.org:3478"},
         {"urls": ["turn:turn.example.org"], "username": "u", "credential": "p"}]
    )
    assert conf.iceServers[0].urls == "stun:stun.example.org:3478"
    assert conf.iceServers[1].username == "u" and conf.iceServers[1].credential == "p"
    assert make_configuration({"iceServers": []}).iceServers == []


def test_rtc_configuration_is_copied():
    original = RTCConfiguration(iceServers=[RTCIceServer(urls="stun:x")])
    conf = make_configuration(original)
    assert conf is not original and conf.iceServers[0] is not original.iceServers[0]
    assert conf.iceServers[0].urls == "stun:x"


@pytest.mark.parametrize(
    ("bad", "error", "words"),
    [
        ("stun:x", TypeError, "rtcConfiguration"),
        ([{"url": 3}], ValueError, "urls"),
        ([{"urls": "stun:x", "password": "p"}], ValueError, "password"),
        ([42], TypeError, "ICE server 0"),
    ],
)
def test_bad_configuration_is_refused_naming_it(bad, error, words):
    with pytest.raises(error, match=words):
        make_configuration(bad)
