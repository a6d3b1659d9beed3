"""The relay's wire protocol, as plain functions (no loop, no sockets).

Robot <-> relay messages travel over one websocket as JSON objects with a ``type``:

* robot -> relay ``{"type": "register", "name": NAME, "secret": SECRET, "protocol": 1}``
  (the first message); relay -> robot ``{"type": "registered", "name": NAME, "iceServers":
  [...]}`` or ``{"type": "refused", "reason": TEXT}`` (then the relay closes the socket).
* relay -> robot ``{"type": "offer", "id": ID, "offer": {"sdp": ..., "type": "offer"}}`` for
  each client; robot -> relay ``{"type": "answer", "id": ID, "answer": {"sdp": ...,
  "type": "answer"}}`` or ``{"type": "error", "id": ID, "status": HTTP_STATUS, "reason":
  TEXT}``. ``id`` correlates each answer with its request, so concurrent clients never get
  each other's answers.
* Resumable sessions: a client's offer may carry ``"resume": true`` (it asks for a session) or
  ``"session": {"id": str, "secret": str}`` (it resumes one); the relay passes both to the
  robot in its ``offer`` message, and the robot's ``answer`` message may carry ``"session":
  {"id", "secret", "window"}``, passed back to the client. The relay keeps no session state.
* relay -> robot ``{"type": "replaced", "reason": TEXT}``: another robot registered the same
  name with that robot's own secret; the relay then closes this socket. The robot warns and
  tries again later (a duplicate of it, or a thief of its secret, is running).
* relay -> robot ``{"type": "busy", "reason": TEXT}``: the name is held by a live robot and
  the relay's secret is shared by all robots, so a second registration cannot prove it is the
  same robot; the relay closes the socket and the robot tries again with backoff (a robot
  that restarted gets its name back once the relay has dropped its old socket).

Every message a robot sends is hostile until checked: :func:`decode_message` refuses text
that is not JSON or is nested too deep, with a :class:`ProtocolError`.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "NAME_RULE",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "check_name",
    "check_session",
    "decode_message",
    "parse_register",
    "parse_robot_reply",
]

PROTOCOL_VERSION = 1

#: Robot names: letters, digits, ``_``, ``.`` and ``-``, 1 to 64 characters, starting with a
#: letter or digit. They appear in URLs (``/robots/NAME/connect``), never in HTML unescaped.
NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class ProtocolError(ValueError):
    """A message that does not follow the relay protocol (the text says what is wrong)."""


def decode_message(data: Any) -> Any:
    """The JSON value of one websocket message from a robot; :class:`ProtocolError` for
    binary frames, text that is not JSON, or JSON nested too deep for Python's parser."""
    if not isinstance(data, str):
        raise ProtocolError("robots send JSON text messages, not binary frames")
    try:
        return json.loads(data)
    except RecursionError:
        raise ProtocolError("the message is not a relay message: JSON nested too deep") from None
    except ValueError as exc:
        raise ProtocolError(f"the message is not JSON: {str(exc)[:100]}") from None


def check_name(name: Any) -> str:
    """``name`` if it is a valid robot name; else :class:`ProtocolError` naming it."""
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name):
        shown = name if not isinstance(name, str) else name[:80]
        raise ProtocolError(
            f"invalid robot name {shown!r}: use 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


#: Longest session id or secret accepted (they are ~32 characters).
MAX_SESSION_FIELD = 128


def check_session(value: Any, *, answer: bool = False) -> dict[str, Any] | None:
    """A ``session`` field as relayed: None when absent; else ``{"id": str, "secret": str}``
    (and ``"window"``: seconds or None, in an answer). :class:`ProtocolError` otherwise."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProtocolError("'session' must be an object {'id': str, 'secret': str}")
    out: dict[str, Any] = {}
    for key in ("id", "secret"):
        field = value.get(key)
        if not isinstance(field, str) or not 0 < len(field) <= MAX_SESSION_FIELD:
            raise ProtocolError(f"'session' needs {key!r}: a str of 1 to {MAX_SESSION_FIELD} "
                                "characters")
        out[key] = field
    if answer:
        window = value.get("window")
        if window is not None and (isinstance(window, bool)
                                   or not isinstance(window, (int, float))):
            raise ProtocolError("'session' 'window' must be seconds or null")
        out["window"] = window
    return out


def parse_register(message: Any) -> tuple[str, str]:
    """``(name, secret)`` of a robot's first message; :class:`ProtocolError` otherwise."""
    if not isinstance(message, dict) or message.get("type") != "register":
        raise ProtocolError("the first message must be {'type': 'register', 'name': ..., "
                            "'secret': ...}")
    version = message.get("protocol", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported relay protocol {version!r} (this relay speaks "
                            f"{PROTOCOL_VERSION})")
    secret = message.get("secret")
    if not isinstance(secret, str):
        raise ProtocolError("the register message needs a 'secret' (a str)")
    return check_name(message.get("name")), secret


def parse_robot_reply(message: Any) -> tuple[str, int, Any]:
    """A robot's reply to an offer: ``(id, 200, answer_dict)`` or ``(id, status, reason)``.

    Raises :class:`ProtocolError` for anything else."""
    if not isinstance(message, dict):
        raise ProtocolError(f"expected a JSON object from the robot, got {type(message).__name__}")
    kind = message.get("type")
    request_id = message.get("id")
    if not isinstance(request_id, str):
        raise ProtocolError(f"the robot's {kind!r} message has no 'id'")
    if kind == "answer":
        answer = message.get("answer")
        if (
            not isinstance(answer, dict)
            or answer.get("type") != "answer"
            or not isinstance(answer.get("sdp"), str)
        ):
            raise ProtocolError("the robot's answer is not {'sdp': str, 'type': 'answer'}")
        out = {"sdp": answer["sdp"], "type": "answer"}
        session = check_session(answer.get("session"), answer=True)
        if session is not None:
            out["session"] = session
        return request_id, 200, out
    if kind == "error":
        status = message.get("status")
        if not isinstance(status, int) or not 400 <= status <= 599:
            status = 502
        reason = message.get("reason")
        return request_id, status, str(reason)[:1000] if reason is not None else "robot error"
    raise ProtocolError(f"unexpected message type {kind!r} from the robot")
