"""A peer's ``.local`` (mDNS) ICE candidates are looked up after its description is set, not
before (rtcbot/connection/_ice_hooks.py), so a browser with default settings connects without
waiting for aioice's 1 s mDNS timeout.

If an aiortc upgrade breaks ``test_aiortc_has_what_the_deferral_uses``, ``_ice_hooks.py``
needs updating: rtcbot then sets descriptions unchanged (a second more to connect), with a
warning.
"""

from __future__ import annotations

import asyncio
import re
import uuid

from aiortc import RTCPeerConnection
from aiortc.sdp import candidate_from_sdp

from rtcbot import RTCConnection
from rtcbot.connection._ice_hooks import (
    MAX_DEFERRED,
    defer_mdns_candidates,
    mdns_deferral_supported,
)

NAME = "0f5c2a8e-1b7d-4c3e-9a61-2d8f4e6b7c90.local"

# The shape of Chromium's offer: candidates before a=mid, CRLF line ends.
CHROMIUM_LIKE = "\r\n".join([
    "v=0",
    "o=- 1 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1",
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "c=IN IP4 0.0.0.0",
    f"a=candidate:1 1 udp 2113937151 {NAME} 50001 typ host generation 0",
    "a=candidate:2 1 udp 1677729535 203.0.113.7 50002 typ srflx raddr 0.0.0.0 rport 0",
    "a=end-of-candidates",
    "a=ice-ufrag:abcd",
    "a=mid:0",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 0.0.0.0",
    "a=candidate:3 1 udp 2113937151 127.0.0.1 50003 typ host",
    "a=mid:1",
    "a=candidate:4 1 udp 2113937151 bad_name!.local 50004 typ host",
    "a=candidate:5 1 udp 2113937151 AnotherName.local 50005 typ host",
    "",
])


def test_local_candidates_are_taken_out_with_their_section():
    sdp, deferred = defer_mdns_candidates(CHROMIUM_LIKE)
    assert NAME not in sdp and "AnotherName.local" not in sdp
    # what is not an mDNS name stays, byte for byte, CRLF kept
    assert "203.0.113.7 50002" in sdp and "127.0.0.1 50003" in sdp
    assert "bad_name!.local" in sdp
    assert "\r\n" in sdp and "\n" not in sdp.replace("\r\n", "")
    # the mid that comes after the candidate is the one recorded
    assert [(m, i) for m, i, _ in deferred.candidates] == [("0", 0), ("1", 1)]
    assert deferred.candidates[0][2].startswith("candidate:1 1 udp")
    # end-of-candidates is held back until the look-ups are done
    assert deferred.end_of_candidates and "a=end-of-candidates" not in sdp
    assert deferred.ignored == 0


def test_a_description_without_local_names_is_unchanged():
    plain = CHROMIUM_LIKE.replace(NAME, "192.0.2.1").replace("AnotherName.local", "192.0.2.2")
    sdp, deferred = defer_mdns_candidates(plain)
    assert sdp is plain and not deferred


def test_a_flood_of_local_names_is_bounded():
    lines = [f"a=candidate:{n} 1 udp 1 {uuid.uuid4()}.local {40000 + n} typ host"
             for n in range(MAX_DEFERRED + 50)]
    flood = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n" + "\r\n".join(
        lines) + "\r\na=mid:0\r\n"
    sdp, deferred = defer_mdns_candidates(flood)
    assert len(deferred.candidates) == MAX_DEFERRED
    assert deferred.ignored == 50
    assert ".local" not in sdp


def test_aiortc_has_what_the_deferral_uses():
    assert mdns_deferral_supported()
    assert asyncio.iscoroutinefunction(RTCPeerConnection.addIceCandidate)
    _, deferred = defer_mdns_candidates(CHROMIUM_LIKE)
    parsed = candidate_from_sdp(deferred.candidates[0][2].split(":", 1)[1])
    assert parsed.ip == NAME and parsed.port == 50001 and parsed.type == "host"


def hide_behind_mdns(description: dict[str, str]) -> tuple[dict[str, str], int]:
    """``description`` with the address of every host candidate replaced by a random
    ``.local`` name that nobody answers for, as Chromium sends them."""
    count = 0

    def swap(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"{match.group(1)}{uuid.uuid4()}.local{match.group(2)}"

    sdp = re.sub(r"(a=candidate:\S+ \d+ udp \d+ )\S+( \d+ typ host)", swap,
                 description["sdp"])
    return {"sdp": sdp, "type": description["type"]}, count


async def test_a_peer_known_only_by_local_names_connects_both_ways():
    for hidden in ("offer", "answer"):
        offerer = RTCConnection(rtcConfiguration=[])
        answerer = RTCConnection(rtcConfiguration=[])
        try:
            async with asyncio.timeout(15):
                offer = await offerer.getLocalDescription()
                if hidden == "offer":
                    offer, count = hide_behind_mdns(offer)
                answer = await answerer.getLocalDescription(offer)
                if hidden == "answer":
                    answer, count = hide_behind_mdns(answer)
                await offerer.setRemoteDescription(answer)
                assert count > 0
                receiver = answerer if hidden == "offer" else offerer
                # aiortc got the description without the names: it did not wait on them
                assert ".local" not in receiver._pc.remoteDescription.sdp
                await asyncio.gather(offerer.onReady(), answerer.onReady())
                offerer.put_nowait("over a peer-reflexive pair")
                got = await answerer.get()
                # the look-up still runs, in the background, and ends (nothing answers here)
                task = receiver._mdnsTasks[receiver._pc]
                await asyncio.wait([task])
                assert task.exception() is None
            assert got == "over a peer-reflexive pair"
        finally:
            await offerer.close()
            await answerer.close()


async def test_close_during_the_lookup_cancels_it():
    offerer = RTCConnection(rtcConfiguration=[])
    answerer = RTCConnection(rtcConfiguration=[])
    try:
        async with asyncio.timeout(10):
            offer, _ = hide_behind_mdns(await offerer.getLocalDescription())
            await answerer.getLocalDescription(offer)
            task = answerer._mdnsTasks[answerer._pc]
    finally:
        await offerer.close()
        await answerer.close()
    assert task.done()
