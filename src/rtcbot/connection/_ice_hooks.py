"""Remote mDNS (``.local``) ICE candidates, taken off the connection's critical path.

Browsers hide their local addresses behind random ``<uuid>.local`` names (Chromium's default,
``WebRtcHideLocalIpsWithMdns``). aiortc (1.9 to 1.16) hands every candidate of a remote
description to aioice inside ``setRemoteDescription``, and aioice resolves a ``.local`` name by
multicast DNS before it returns: where nothing answers (containers, many Wi-Fi networks) that
takes aioice's whole 1 s resolve timeout, so the answer -- and the first video frame -- waits
a second for a name that was never needed. The connection works without it: the browser's
connectivity checks reach the robot's own candidates, and aioice learns the browser's address
from them as a peer-reflexive candidate.

So rtcbot sets the remote description without its ``.local`` candidates
(:func:`defer_mdns_candidates`) and then adds them in the background through aiortc's public
``addIceCandidate`` (:func:`add_deferred_candidates`), where aioice still resolves them, within
a deadline. When the peer's description also said end-of-candidates, that is signalled only
after the deferred candidates are in, so aioice does not declare failure while they resolve.

Only public aiortc API is used (``RTCPeerConnection.addIceCandidate``,
``aiortc.sdp.candidate_from_sdp``); :func:`mdns_deferral_supported` checks they look as
expected, and if not, descriptions are set unchanged (aiortc's stock behaviour, the 1 s wait)
after one warning. ``tests/test_ice_hooks.py`` fails when an upgrade changes them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from ..base._compat import TIMEOUT_ERRORS
from ..base._compat import timeout as aio_timeout

__all__ = [
    "DeferredCandidates",
    "add_deferred_candidates",
    "defer_mdns_candidates",
    "mdns_deferral_supported",
]

_log = logging.getLogger("rtcbot.connection")

#: The names a browser uses (RFC 8838/draft-ietf-mmusic-mdns-ice-candidates: one DNS label, in
#: practice a UUID, then ``.local``); anything else with ``.local`` is kept as it came.
_MDNS_NAME = re.compile(r"^[A-Za-z0-9-]{1,63}\.local$")
#: A peer may list any number of candidates; at most this many are looked up.
MAX_DEFERRED = 16
#: Seconds all the deferred look-ups may take together (aioice gives each one 1 s).
RESOLVE_DEADLINE = 3.0

_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        _log.warning(message)


@dataclass
class DeferredCandidates:
    """The ``.local`` candidates taken out of one remote description.

    ``candidates``: ``(mid, m-line index, candidate attribute value)`` for each one that will
    be looked up; ``end_of_candidates``: the description said end-of-candidates for a media
    section that lost candidates (it is signalled after the look-ups); ``ignored``: ``.local``
    candidates past :data:`MAX_DEFERRED`, dropped without a look-up."""

    candidates: list[tuple[str | None, int, str]] = field(default_factory=list)
    end_of_candidates: bool = False
    ignored: int = 0

    def __bool__(self) -> bool:
        return bool(self.candidates) or self.end_of_candidates or self.ignored > 0


def mdns_deferral_supported() -> bool:
    """True if this aiortc has what :func:`add_deferred_candidates` uses; otherwise warns once
    (remote descriptions are then set with their ``.local`` candidates, as stock aiortc does)."""
    try:
        from aiortc import RTCPeerConnection
        from aiortc.sdp import candidate_from_sdp
    except ImportError:  # pragma: no cover - depends on the aiortc version
        candidate_from_sdp = None
        RTCPeerConnection = None
    add = getattr(RTCPeerConnection, "addIceCandidate", None)
    if candidate_from_sdp is None or add is None or not inspect.iscoroutinefunction(add):
        _warn_once(
            "mdns",
            "this aiortc version lacks addIceCandidate/candidate_from_sdp as expected: a "
            "browser's .local (mDNS) candidates are resolved before answering (about 1 s more "
            "to connect where nothing answers mDNS)",
        )
        return False
    return True


def defer_mdns_candidates(sdp: str) -> tuple[str, DeferredCandidates]:
    """Split ``sdp`` (a remote session description's text, already checked to be SDP) into the
    same description without its ``a=candidate`` lines whose address is an mDNS name, and
    those candidates. An ``a=end-of-candidates`` line of a media section that lost candidates
    is also taken out (recorded in ``end_of_candidates``). Other lines, and their line endings,
    are kept byte for byte. Pure: no loop, no aiortc."""
    deferred = DeferredCandidates()
    out: list[str] = []
    index = -1
    mid: str | None = None
    section_lost = False
    end_lines: list[int] = []  # positions in ``out`` of end-of-candidates lines to drop

    def close_section() -> None:
        nonlocal section_lost
        if section_lost and end_lines:
            deferred.end_of_candidates = True
            for position in reversed(end_lines):
                del out[position]
        end_lines.clear()
        section_lost = False

    for line in sdp.splitlines(keepends=True):
        text = line.rstrip("\r\n")
        if text.startswith("m="):
            close_section()
            index += 1
            mid = None
        elif index >= 0 and text.startswith("a=mid:"):
            mid = text[len("a=mid:"):].strip() or None
            # a mid comes after candidates only in unusual SDP: fix up the earlier ones
            for i, (m, idx, value) in enumerate(deferred.candidates):
                if idx == index and m is None:
                    deferred.candidates[i] = (mid, idx, value)
        elif index >= 0 and text.startswith("a=candidate:"):
            bits = text.split()
            if len(bits) >= 8 and _MDNS_NAME.match(bits[4]):
                section_lost = True
                if len(deferred.candidates) < MAX_DEFERRED:
                    deferred.candidates.append((mid, index, text[len("a="):]))
                else:
                    deferred.ignored += 1
                continue
        elif index >= 0 and text == "a=end-of-candidates":
            end_lines.append(len(out))
        out.append(line)
    close_section()
    if not deferred:
        return sdp, deferred
    return "".join(out), deferred


async def add_deferred_candidates(
    pc: Any, deferred: DeferredCandidates, deadline: float = RESOLVE_DEADLINE
) -> int:
    """Add the ``.local`` candidates of ``deferred`` to ``pc`` (an aiortc
    ``RTCPeerConnection`` whose remote description is set), all at once; aioice resolves each
    by multicast DNS. Gives up on those not done within ``deadline`` seconds. Then signals
    end-of-candidates if the peer's description did. Returns how many were added (resolved or
    not: aioice drops a name it cannot resolve). Cancelling it stops the look-ups; the
    connection keeps what it has (its peer-reflexive candidates). Never raises otherwise."""
    from aiortc.sdp import candidate_from_sdp

    async def add(mid: str | None, index: int, value: str) -> bool:
        try:
            candidate = candidate_from_sdp(value.split(":", 1)[1])
        except (AssertionError, ValueError, IndexError) as exc:
            _log.debug("ignoring a malformed remote candidate %r: %r", value[:120], exc)
            return False
        candidate.sdpMid = mid
        candidate.sdpMLineIndex = index
        await pc.addIceCandidate(candidate)
        return True

    added = 0
    if deferred.candidates:
        tasks = [asyncio.ensure_future(add(*c)) for c in deferred.candidates]
        try:
            async with aio_timeout(deadline):
                await asyncio.gather(*tasks, return_exceptions=True)
        except TIMEOUT_ERRORS:
            _log.debug("mDNS candidates not resolved within %g s", deadline)
        finally:
            for task in tasks:
                task.cancel()
        for task in tasks:
            if task.done() and not task.cancelled():
                if task.exception() is None and task.result():
                    added += 1
                elif task.exception() is not None:
                    _log.debug("remote mDNS candidate not added: %r", task.exception())
    if deferred.end_of_candidates and getattr(pc, "connectionState", "closed") != "closed":
        try:
            await pc.addIceCandidate(None)
        except Exception as exc:  # closing under us: nothing more to tell it
            _log.debug("end-of-candidates not signalled: %r", exc)
    return added
