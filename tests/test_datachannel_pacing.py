"""Data-channel send pacing (rtcbot/connection/_sctp_hooks.py): real aiortc peers on loopback."""

from __future__ import annotations

import asyncio

from rtcbot.connection import _datachannel as dc_module
from rtcbot.connection._sctp_hooks import SctpPacer, sctp_pacer
from rtcbot.testing import connected_pair


async def test_sctp_internals_are_where_the_pacer_expects_them():
    async with connected_pair() as (a, _b):
        transport = a._default._rtc.transport
        pacer = sctp_pacer(transport)
        assert isinstance(pacer, SctpPacer)
        assert sctp_pacer(transport) is pacer  # hook installed once
        assert isinstance(pacer.outstanding(), int)


async def test_burst_larger_than_the_pacing_window_arrives_in_order_without_loss():
    n = dc_module.PACE_CHUNKS * 20
    async with connected_pair() as (a, b):
        for i in range(n):
            a.put_nowait({"i": i})
        assert a._default.statistics().paced > 0  # our own queue took the excess
        async with asyncio.timeout(60):
            for i in range(n):
                assert (await b.get())["i"] == i
        stats = a._default.statistics()
        assert stats.paced == 0 and stats.failed == 0 and stats.peak_paced > 0


async def test_without_the_hook_bursts_still_arrive_in_order(monkeypatch):
    monkeypatch.setattr(dc_module, "sctp_pacer", lambda transport: None)
    n = 2000
    async with connected_pair() as (a, b):
        for i in range(n):
            a.put_nowait({"i": i})
        async with asyncio.timeout(60):
            for i in range(n):
                assert (await b.get())["i"] == i
