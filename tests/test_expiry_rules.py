"""The rules of age-limited ("expiring") data channels, without a loop (connection/_expiry.py).
Not wired into DataChannel yet."""

from __future__ import annotations

import pytest

from rtcbot.connection._expiry import (
    AgeFilter,
    ClockOffset,
    make_protocol,
    parse_protocol,
    stamp,
    unstamp,
)


def test_protocol_round_trip_and_hostile_strings_refused():
    assert parse_protocol(make_protocol(0.3)) == 0.3
    assert parse_protocol("") is None and parse_protocol("chat") is None
    for bad in ("rtcbot;max_age=0", "rtcbot;max_age=-1", "rtcbot;max_age=1e9",
                "rtcbot;max_age=0.3;x", "rtcbot" + "9" * 100, "rtcbot;max_age=nan"):
        with pytest.raises(ValueError):
            parse_protocol(bad)


def test_stamps_round_trip_and_bad_ones_are_none():
    assert unstamp(stamp('{"x":1}', 12.5)) == (12.5, {"x": 1})
    assert unstamp(stamp(b"\x01\x02", 7.0)) == (7.0, b"\x01\x02")
    for bad in ('{"x":1}', "[1]", '["a",1]', "not json", b"123", '[NaN,1]'):
        assert unstamp(bad) is None


def test_old_messages_dropped_and_held_until_offset_known():
    age = AgeFilter(0.3)
    clock = ClockOffset()
    # before the offset: held, not delivered
    assert age.receive(stamp("1", 1000.0), 5000.0, clock.offset_ms) == []
    assert age.receive(stamp("2", 1350.0), 5100.0, clock.offset_ms) == []
    clock.sample(5100.0, 5102.0, 1102.0)  # the peer's clock: 3999 ms behind ours
    assert clock.offset_ms == -3999.0
    delivered = age.offset_known(5110.0, -3999.0)
    assert delivered == [1, 2]  # ages 111 ms and -239 ms: both fresh
    assert age.receive(stamp("3", 500.0), 5200.0, -3999.0) == []  # 699 ms old
    assert age.statistics().expired == 1
    assert age.receive("unstamped", 5200.0, -3999.0) == [] and age.unstamped == 1
