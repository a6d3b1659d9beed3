"""The message rule of rtcbot's JSON data channels, as plain functions (no loop, no aiortc).

Sending (:func:`encode_message`), on the caller's stack so the caller gets the error:

* ``bytes``, ``bytearray`` and ``memoryview`` are sent as one binary message, unchanged.
* Everything else is JSON-encoded and sent as one text message: ``dict``, ``list``, ``tuple``,
  ``str``, ``int``, ``float``, ``bool``, ``None``, numpy scalars (sent as Python numbers) and
  numpy arrays (sent as nested lists). Strings are JSON-encoded too, so the string ``"123"``
  arrives as the string ``"123"``, never as the number 123.
* A value JSON cannot encode raises :class:`TypeError` naming it; NaN and infinities raise
  :class:`ValueError` (browsers' ``JSON.parse`` rejects them; send ``None`` instead). Nothing is
  sent and the channel keeps working.

Receiving (:class:`MessageDecoder`): a text message is JSON-decoded; a binary message is
delivered as ``bytes``; a text message that is not valid JSON (a peer that sends raw strings,
such as RTCBot 0.2.5's browser library) is delivered as the raw ``str``, counted, and logged once
per channel.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np

from ..base.subscriptions import describe

__all__ = ["MessageDecoder", "encode_message"]

_log = logging.getLogger("rtcbot.connection")


def _to_json_compatible(value: Any) -> Any:
    """``default`` hook of the encoder: numpy values become Python values."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"numpy array of dtype {value.dtype} is not JSON serializable")
        return value.tolist()
    if isinstance(value, np.generic):
        item = value.item()
        if isinstance(item, (bool, int, float)):
            return item
        raise TypeError(f"numpy scalar of type {type(value).__name__} is not JSON serializable")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_encoder = json.JSONEncoder(
    default=_to_json_compatible, allow_nan=False, ensure_ascii=False, separators=(",", ":")
)
_encode = _encoder.encode


def encode_message(value: Any) -> str | bytes:
    """The payload that sends ``value``: ``bytes`` for a binary message, ``str`` for text.

    Raises :class:`TypeError` (a value JSON cannot encode) or :class:`ValueError` (NaN or an
    infinity), both naming the value.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    try:
        return _encode(value)
    except TypeError as exc:
        raise TypeError(
            f"cannot send {describe(value)}: {exc}. A message is a JSON value (dict, list, str, "
            "int, float, bool, None, numpy numbers or arrays) or bytes"
        ) from exc
    except ValueError as exc:
        if _has_non_finite(value):
            raise ValueError(
                f"cannot send {describe(value)}: it contains NaN or an infinity, which JSON "
                "cannot carry (send None instead)"
            ) from exc
        raise ValueError(f"cannot send {describe(value)}: {exc}") from exc


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return not bool(np.isfinite(value).all())
    if isinstance(value, np.floating):
        return not bool(np.isfinite(value))
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_non_finite(v) for v in value)
    return False


class MessageDecoder:
    """Decodes the messages received on one channel and counts those that were not JSON.

    ``json_mode=False`` delivers every message as it arrived (``str`` or ``bytes``).
    """

    __slots__ = ("json_mode", "label", "not_json")

    def __init__(self, label: str, json_mode: bool = True) -> None:
        self.label = label
        self.json_mode = json_mode
        #: Text messages that were not valid JSON (delivered as ``str``).
        self.not_json = 0

    def decode(self, data: str | bytes) -> Any:
        """The value carried by ``data`` (see the module docstring for the rule)."""
        if not self.json_mode or not isinstance(data, str):
            return data
        try:
            return json.loads(data)
        except ValueError:
            self.not_json += 1
            if self.not_json == 1:
                _log.warning(
                    "data channel %r received text that is not JSON (%s); delivering it as a "
                    "str. The peer should send JSON (rtcbot's browser library does); later "
                    "ones are only counted",
                    self.label,
                    describe(data),
                )
            return data
