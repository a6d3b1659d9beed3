"""GPS over a real pty: a recorded NMEA session (tests/fixtures/gps_session.nmea) with a partial
first line, a corrupted checksum, line noise, an unknown sentence type and a cut-off last line."""

from __future__ import annotations

import asyncio
import os
import tty
from pathlib import Path

import pytest

pytest.importorskip("serial")
pynmea2 = pytest.importorskip("pynmea2")

from rtcbot.base.errors import SubscriptionClosed  # noqa: E402
from rtcbot.devices.gps import GPS  # noqa: E402
from rtcbot.devices.serial import SerialError  # noqa: E402

SESSION = (Path(__file__).parent / "fixtures" / "gps_session.nmea").read_bytes()
VALID = ["RMC", "VTG", "GGA", "GSA", "GSV", "RMC", "GGA", "RMC"]


class Receiver:
    """The GPS end of a pty pair: ``path`` is the port, ``send`` writes as the receiver."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)

    def send(self, data: bytes, chunk: int = 7) -> None:
        # in small pieces, as a UART delivers them: sentences arrive split across reads
        for i in range(0, len(data), chunk):
            os.write(self.master, data[i : i + chunk])

    def close(self) -> None:
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_parse_counts_and_skips_what_is_not_a_sentence(receiver):
    gps = GPS(receiver.path)
    try:
        lines = SESSION.split(b"\n")
        parsed = [gps.parse(line) for line in lines]
        kinds = [p.sentence_type for p in parsed if p is not None]
        assert kinds == VALID
        assert gps.statistics() == {
            "sentences": 8,
            "filtered": 0,
            "bad_checksum": 1,
            "malformed": 3,  # the partial first line, the noise, the cut-off last line
            "unknown_type": 1,
            "filter_errors": 0,
        }
    finally:
        gps.close()


async def test_recorded_session_over_a_pty(receiver):
    gps = GPS(receiver.path)
    try:
        async with asyncio.timeout(5):
            await gps.onReady()
            receiver.send(SESSION)
            sentences = [await gps.get() for _ in VALID]
        assert [s.sentence_type for s in sentences] == VALID
        assert all(isinstance(s, pynmea2.NMEASentence) for s in sentences)
        # the latest fix: $GPRMC,123521.00,A,4807.03820,N,01131.00040,E ... and GGA's 546.1 m
        assert gps.latitude == pytest.approx(48 + 7.0382 / 60)
        assert gps.longitude == pytest.approx(11 + 31.0004 / 60)
        assert gps.altitude == pytest.approx(546.1)
        stats = gps.statistics()
        assert stats["bad_checksum"] == 1
        assert stats["malformed"] == 2  # the cut-off last line has not ended yet
        assert stats["unknown_type"] == 1
        assert gps.error is None and not gps.closed
    finally:
        gps.close()


async def test_data_filter_selects_sentences(receiver):
    gps = GPS(receiver.path, dataFilter=lambda s: s.sentence_type == "GGA")
    try:
        async with asyncio.timeout(5):
            await gps.onReady()
            receiver.send(SESSION)
            first = await gps.get()
            second = await gps.get()
        assert (first.sentence_type, second.sentence_type) == ("GGA", "GGA")
        assert second.altitude == pytest.approx(546.1)
        assert gps.statistics()["filtered"] == 6
    finally:
        gps.close()


async def test_a_raising_filter_is_counted_not_raised(receiver):
    def picky(sentence):
        if sentence.sentence_type != "GGA":
            raise KeyError("boom")
        return True

    gps = GPS(receiver.path, dataFilter=picky)
    try:
        async with asyncio.timeout(5):
            await gps.onReady()
            receiver.send(SESSION)
            assert (await gps.get()).sentence_type == "GGA"
            assert (await gps.get()).sentence_type == "GGA"
        assert gps.statistics()["filter_errors"] == 6
    finally:
        gps.close()


async def test_no_fix_leaves_position_unknown(receiver):
    gps = GPS(receiver.path)
    try:
        async with asyncio.timeout(5):
            await gps.onReady()
            receiver.send(b"$GPGGA,,,,,,0,00,,,M,,M,,*66\r\n")
            sentence = await gps.get()
        assert sentence.gps_qual == 0
        assert (gps.latitude, gps.longitude, gps.altitude) == (None, None, None)
    finally:
        gps.close()


async def test_close_closes_the_port_and_ends_readers(receiver):
    gps = GPS(receiver.path)
    async with asyncio.timeout(5):
        await gps.onReady()
    reader = asyncio.ensure_future(gps.get())
    await asyncio.sleep(0)
    gps.close()
    assert gps.serial.closed
    assert not gps.serial.port.is_open
    async with asyncio.timeout(5):
        with pytest.raises(SubscriptionClosed):
            await reader
        await gps


async def test_losing_the_port_reaches_on_error(receiver):
    gps = GPS(receiver.path)
    async with asyncio.timeout(5):
        await gps.onReady()
        receiver.close()  # the receiver is unplugged
        err = await gps.onError()
    assert isinstance(err, SerialError)
    assert gps.closed


async def test_gps_is_a_producer(receiver):
    from rtcbot.testing import check_producer

    rmc = b"$GPRMC,123519.00,A,4807.03800,N,01131.00000,E,0.022,84.4,230394,,,A*66\r\n"

    async def emit(gps, i):
        if gps.ready:
            receiver.send(rmc, chunk=len(rmc))

    await check_producer(lambda: GPS(receiver.path), emit=emit)


def test_missing_pynmea2_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pynmea2(name, *args, **kwargs):
        if name == "pynmea2":
            raise ImportError("No module named 'pynmea2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pynmea2)
    with pytest.raises(ImportError, match=r'pip install "rtcbot\[gps\]"'):
        GPS("/dev/null")
