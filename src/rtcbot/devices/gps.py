"""GPS receivers that speak NMEA 0183 over a serial port (u-blox, MTK, most USB GPS mice).

:class:`GPS` reads text lines from a :class:`~rtcbot.devices.serial.SerialConnection`, parses
each with pynmea2 and produces the sentence objects. Lines that are not valid sentences -- the
partial line read when the port opens mid-sentence, a bad checksum, line noise, a sentence type
pynmea2 does not know -- are counted in ``statistics()`` and skipped; they never raise into the
reader. pynmea2 and pyserial are the ``gps`` extra: ``pip install "rtcbot[gps]"``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from ..base.base import BaseSubscriptionProducer
from .serial import SerialConnection

__all__ = ["GPS", "import_pynmea2"]

_log = logging.getLogger("rtcbot.devices.gps")


def import_pynmea2() -> Any:
    """The pynmea2 module, or an ImportError naming the extra to install."""
    try:
        import pynmea2
    except ImportError as exc:
        raise ImportError('GPS needs pynmea2 and pyserial: pip install "rtcbot[gps]"') from exc
    return pynmea2


class GPS(BaseSubscriptionProducer):
    """A producer of pynmea2 sentence objects (``pynmea2.GGA``, ``pynmea2.RMC``...) read from
    the NMEA receiver at ``url``.

    ``dataFilter(sentence) -> bool`` selects what is produced (default: every valid sentence);
    ``latitude`` and ``longitude`` (decimal degrees, north and east positive) and ``altitude``
    (metres above mean sea level, from GGA sentences) keep the latest values seen in any
    sentence, filtered or not, and are None until a fix reported them. Ready when the port is
    open; errors of the port reach ``onError`` and close the GPS; ``close()`` closes the port.

    ``require_checksum`` (default True) skips lines without a ``*hh`` checksum: a sentence cut
    short by a lost byte or by opening the port mid-sentence would otherwise parse as a valid
    sentence with missing fields. Set it False for a receiver that sends no checksums.
    """

    def __init__(
        self,
        url: str = "/dev/ttyACM0",
        baudrate: int = 115200,
        dataFilter: Callable[[Any], bool] | None = None,
        *,
        require_checksum: bool = True,
    ) -> None:
        self._nmea = import_pynmea2()
        if dataFilter is not None and not callable(dataFilter):
            raise TypeError(f"dataFilter must be a function of a sentence, got {dataFilter!r}")
        BaseSubscriptionProducer.__init__(self)
        self._dataFilter = dataFilter
        self._requireChecksum = bool(require_checksum)
        self._latitude: float | None = None
        self._longitude: float | None = None
        self._altitude: float | None = None
        self._counts = {
            "sentences": 0,
            "filtered": 0,
            "bad_checksum": 0,
            "malformed": 0,
            "unknown_type": 0,
            "filter_errors": 0,
        }
        self._serial = SerialConnection(url=url, baudrate=baudrate)
        self._serial.subscribe(self._onLine)
        self._serial.onReady(self._serialReady)
        self._serial.onError(self._setError)
        self._serial.onClose(self.close)
        if self._serial.ready:  # opened from a coroutine: ready before we subscribed
            self._setReady(True)

    def _onLoopBound(self, loop: Any) -> None:
        serial = getattr(self, "_serial", None)
        if serial is not None and serial._loop is None:
            serial._bindLoop(loop)

    def _serialReady(self) -> None:
        self._setReady(True)

    # ---------------------------------------------------------------- public

    @property
    def latitude(self) -> float | None:
        """Latest latitude in decimal degrees (negative south), or None."""
        return self._latitude

    @property
    def longitude(self) -> float | None:
        """Latest longitude in decimal degrees (negative west), or None."""
        return self._longitude

    @property
    def altitude(self) -> float | None:
        """Latest altitude above mean sea level in metres (GGA), or None."""
        return self._altitude

    @property
    def serial(self) -> SerialConnection:
        """The serial connection the sentences come from (to send configuration commands)."""
        return self._serial

    def statistics(self) -> dict[str, int]:
        """``sentences`` parsed, ``filtered`` out by ``dataFilter``, and lines skipped:
        ``bad_checksum``, ``malformed`` (partial lines, noise, not NMEA), ``unknown_type``
        (valid NMEA that pynmea2 does not know), ``filter_errors`` (``dataFilter`` raised)."""
        return dict(self._counts)

    # ---------------------------------------------------------------- parsing

    def parse(self, line: bytes) -> Any | None:
        """The sentence object for one line, or None (counted) if it is not a valid sentence.
        Also updates ``latitude``/``longitude``/``altitude``."""
        nmea = self._nmea
        counts = self._counts
        try:
            text = line.decode("ascii").strip()
        except UnicodeDecodeError:
            counts["malformed"] += 1
            return None
        if not text:
            return None  # an empty line between sentences: nothing to count
        if self._requireChecksum and "*" not in text[-4:]:
            # A line without a checksum is almost always a cut-off sentence (receivers send
            # checksums); pynmea2 would accept what is left of it.
            counts["malformed"] += 1
            _log.debug("no checksum: %r", text)
            return None
        try:
            sentence = nmea.parse(text)
        except nmea.ChecksumError:
            counts["bad_checksum"] += 1
            _log.debug("bad checksum: %r", text)
            return None
        except nmea.SentenceTypeError:
            counts["unknown_type"] += 1
            return None
        except (nmea.ParseError, ValueError, TypeError, AttributeError, IndexError):
            counts["malformed"] += 1
            _log.debug("not an NMEA sentence: %r", text)
            return None
        counts["sentences"] += 1
        self._remember(sentence)
        return sentence

    def _remember(self, sentence: Any) -> None:
        if getattr(sentence, "lat", "") and getattr(sentence, "lon", ""):
            try:
                lat, lon = float(sentence.latitude), float(sentence.longitude)
            except (AttributeError, ValueError, TypeError):
                pass
            else:
                if math.isfinite(lat) and math.isfinite(lon):
                    self._latitude, self._longitude = lat, lon
        if getattr(sentence, "sentence_type", None) == "GGA" and sentence.altitude is not None:
            try:
                self._altitude = float(sentence.altitude)
            except (TypeError, ValueError):
                pass

    def _onLine(self, line: bytes) -> None:
        sentence = self.parse(line)
        if sentence is None:
            return
        if self._dataFilter is not None:
            try:
                keep = self._dataFilter(sentence)
            except Exception:
                self._counts["filter_errors"] += 1
                _log.exception("dataFilter raised on %r", sentence)
                return
            if not keep:
                self._counts["filtered"] += 1
                return
        self._put_nowait(sentence)

    def close(self) -> None:
        """Close the serial port and end the readers' streams."""
        if self._closedFlag:
            return
        serial = getattr(self, "_serial", None)
        super().close()
        if serial is not None:
            serial.close()

    def __repr__(self) -> str:
        state = "closed" if self._closedFlag else ("ready" if self._readyFlag else "not ready")
        return f"<GPS {self._serial.url!r} {state}>"
