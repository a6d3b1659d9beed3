"""The field lab's link model as plain rules: fed times and sizes, no sockets, no loop."""

from __future__ import annotations

import random

import pytest

from rtcbot.testing.fieldlab import PROFILES, Direction, LinkParams
from rtcbot.testing.fieldlab._model import profile_from_dict


def test_rate_limit_spaces_packets_by_their_size():
    d = Direction(LinkParams(rate_bps=8_000), random.Random(1))  # 1 byte per ms
    releases = [d.admit(0.0, 100) for _ in range(3)]
    assert releases == pytest.approx([0.1, 0.2, 0.3])


def test_drop_tail_queue_is_bounded_in_time():
    d = Direction(LinkParams(rate_bps=8_000, queue=0.25), random.Random(1))
    results = [d.admit(0.0, 100) for _ in range(10)]  # 0.1 s each
    kept = [r for r in results if r is not None]
    assert len(kept) == 3  # waits of 0, 0.1, 0.2 s fit in 0.25 s; the rest are dropped
    assert d.stats.queue_dropped == 7


def test_random_loss_rate_and_counted():
    d = Direction(LinkParams(loss=0.1), random.Random(7))
    lost = sum(d.admit(i * 0.001, 100) is None for i in range(5000))
    assert 350 < lost < 650
    assert d.stats.lost == lost


def test_delay_with_jitter_keeps_order_and_stays_near_its_mean():
    d = Direction(LinkParams(delay=0.06, jitter=0.015), random.Random(3))
    releases = [d.admit(i * 0.002, 100) for i in range(5000)]
    delays = [r - i * 0.002 for i, r in enumerate(releases)]
    assert releases == sorted(releases)  # order kept
    assert min(delays) >= 0.045 - 1e-9 and max(delays) <= 0.075 + 0.01
    assert 0.055 < sorted(delays)[len(delays) // 2] < 0.066


def test_outage_drops_offered_and_in_flight_packets():
    d = Direction(LinkParams(delay=0.05), random.Random(1))
    in_flight = d.admit(0.0, 100)
    d.start_outage(0.01, 2.0)
    assert not d.deliverable(in_flight, 100)  # it was on the wire when the link went down
    assert d.admit(1.0, 100) is None
    after = d.admit(2.02, 100)
    assert after is not None and d.deliverable(after, 100)
    assert d.stats.outage_dropped == 2 and d.stats.forwarded == 1


def test_profiles_round_trip_and_bad_values_fail_at_the_call_site():
    for profile in PROFILES.values():
        assert profile_from_dict(profile.to_dict()) == profile
    assert PROFILES["drop"].cut_rate_bps == 800_000
    with pytest.raises(ValueError, match="loss"):
        LinkParams(loss=2.0)
    with pytest.raises(ValueError, match="rate_bps"):
        LinkParams(rate_bps=0)
