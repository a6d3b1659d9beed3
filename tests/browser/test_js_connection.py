"""rtcbot.js RTCConnection between two browser peers (real Chromium, loopback, no ICE server):
messages both ways in order, the message rule, several subscribers, named channels, close,
pagehide and the heartbeat."""

# ruff: noqa: E501 -- the JavaScript run in the page keeps its natural line lengths

from __future__ import annotations

import pytest

from support.browser import wait_for_js

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# Connects two RTCConnections of one page: window.c1 (offerer) and window.c2 (answerer);
# window.got1/got2 collect what each receives.
PAIR = """
async (options) => {
  const opts = options || {};
  window.c1 = new rtcbot.RTCConnection(true, {iceServers: []}, opts.c1);
  window.c2 = new rtcbot.RTCConnection(opts.ordered2 ?? true, {iceServers: []}, opts.c2);
  window.got1 = []; window.got2 = [];
  c1.subscribe((m) => got1.push(m));
  c2.subscribe((m) => got2.push(m));
  for (const m of opts.before1 || []) c1.put_nowait(m);
  const offer = await c1.getLocalDescription();
  const answer = await c2.getLocalDescription(offer);
  await c1.setRemoteDescription(answer);
  await Promise.all([c1.onReady(), c2.onReady()]);
  return {offer: offer.type, answer: answer.type, plain: Object.getPrototypeOf(offer) === Object.prototype};
}
"""


async def connect_pair(page, **options):
    return await page.evaluate(PAIR, options)


async def test_two_connections_exchange_messages_in_order_both_ways(page):
    # RTCBot's own JS test, with messages queued before the channel opens.
    info = await connect_pair(page, before1=["Testy mc test-test"])
    assert info == {"offer": "offer", "answer": "answer", "plain": True}
    await page.evaluate("c2.put_nowait('Hai wrld'); c1.put_nowait('OMG'); c2.put_nowait('OMG2')")
    await wait_for_js(page, "got1.length >= 2 && got2.length >= 2")
    assert await page.evaluate("[got1, got2]") == [
        ["Hai wrld", "OMG2"],
        ["Testy mc test-test", "OMG"],
    ]
    many = await page.evaluate(
        """async () => {
            for (let i = 0; i < 500; i++) c1.put_nowait(i);
            const q = c2.subscribe();
            const out = [];
            // got2 already holds the first two; read the rest through a Queue subscription
            for (let i = 0; i < 500; i++) out.push(await q.get(10000));
            return out;
        }"""
    )
    assert many == list(range(500))


async def test_message_rule_values_arrive_as_the_same_values(page):
    await connect_pair(page)
    result = await page.evaluate(
        """async () => {
            const values = ["123", 123, 1.5, -0.25, true, false, null, "", "null",
                            {a: [1, 2.5, "x"], b: {c: null}}, [1, "2", [3]], "{\\"not\\": 1}",
                            "héllo ✓"];
            for (const v of values) c1.put_nowait(v);
            c1.put_nowait(new Uint8Array([0, 1, 2, 255]));
            c1.put_nowait(new Uint8Array([9, 8, 7]).buffer);
            c1.put_nowait(new Blob([new Uint8Array([42, 43])]));
            const q = c2.subscribe();
            const out = [];
            for (let i = 0; i < values.length + 3; i++) out.push(await q.get(10000));
            const binary = out.slice(values.length).map((b) => [b instanceof ArrayBuffer,
                                                                 Array.from(new Uint8Array(b))]);
            return {values, got: out.slice(0, values.length), binary,
                    types: out.slice(0, 3).map((v) => typeof v)};
        }"""
    )
    assert result["got"] == result["values"]
    assert result["types"] == ["string", "number", "number"]  # "123" stays a string
    assert result["binary"] == [[True, [0, 1, 2, 255]], [True, [9, 8, 7]], [True, [42, 43]]]


async def test_unencodable_values_raise_naming_the_value_and_the_channel_keeps_working(page):
    await connect_pair(page)
    errors = await page.evaluate(
        """async () => {
            const errors = [];
            for (const bad of [undefined, () => 1, 10n, NaN, {x: Infinity}]) {
                try { c1.put_nowait(bad); errors.push("no error"); }
                catch (e) { errors.push(e.name + ": " + e.message); }
            }
            const cyclic = {}; cyclic.self = cyclic;
            try { c1.put_nowait(cyclic); } catch (e) { errors.push(e.name); }
            c1.put_nowait("still works");
            return errors;
        }"""
    )
    assert all(e.startswith("TypeError: cannot send") for e in errors[:5]), errors
    assert "undefined" in errors[0] and "10n" in errors[2] and "NaN" in errors[3]
    assert errors[5] == "TypeError"
    await wait_for_js(page, "got2.length === 1")
    assert await page.evaluate("got2") == ["still works"]


async def test_non_json_text_is_delivered_raw_and_counted(page):
    await connect_pair(page)
    # a peer that sends raw text (RTCBot 0.2.5 style): bypass the rule on the raw channel
    await page.evaluate("c1._default.channel.send('not json'); c1._default.channel.send('[1]')")
    await wait_for_js(page, "got2.length === 2")
    assert await page.evaluate("got2") == ["not json", [1]]
    stats = await page.evaluate("c2.statistics()")
    assert stats["notJson"] == 1 and stats["received"] == 2


async def test_several_subscribers_and_unsubscribe(page):
    await connect_pair(page)
    result = await page.evaluate(
        """async () => {
            const a = [], b = [];
            const fa = (m) => a.push(m);
            c2.subscribe(fa);
            c2.subscribe((m) => b.push(m));
            const q = c2.subscribe();
            c1.put_nowait(1);
            await q.get(5000);
            const removed = c2.unsubscribe(fa);
            c1.put_nowait(2);
            await q.get(5000);
            return {a, b, removed, all: got2};
        }"""
    )
    assert result == {"a": [1], "b": [1, 2], "removed": True, "all": [1, 2]}


async def test_messages_before_the_first_subscriber_are_kept(page):
    await page.evaluate(
        """async () => {
            window.c1 = new rtcbot.RTCConnection(true, {iceServers: []});
            window.c2 = new rtcbot.RTCConnection(true, {iceServers: []});
            c1.put_nowait("early");
            await c1.setRemoteDescription(await c2.getLocalDescription(await c1.getLocalDescription()));
            await c2.onReady();
        }"""
    )
    # nobody subscribed to c2 yet: the message waits for the first subscriber
    assert await page.evaluate("c2.get(10000)") == "early"


async def test_named_channels_both_ways_and_close_with_named_channels(page):
    result = await page.evaluate(
        """async () => {
            const c1 = new rtcbot.RTCConnection(true, {iceServers: []});
            const c2 = new rtcbot.RTCConnection(true, {iceServers: []});
            window.c1 = c1; window.c2 = c2;
            const ctl = c1.addDataChannel("control", false);
            const remote = c2.onDataChannel();          // a Queue of DataChannel objects
            await c1.setRemoteDescription(await c2.getLocalDescription(await c1.getLocalDescription()));
            const ctl2 = await remote.get(10000);
            const dups = [];
            for (const name of ["control", "default", "rtcbot-heartbeat", ""]) {
                try { c1.addDataChannel(name); dups.push("no error"); }
                catch (e) { dups.push(e.name); }
            }
            ctl.put_nowait({speed: 1});
            const first = await ctl2.get(10000);
            ctl2.put_nowait([1, 2]);
            const back = await ctl.get(10000);
            // a channel made after negotiation, from the answer side
            const late = c2.addDataChannel("late");
            const late1 = await c1.onDataChannel().get(10000);
            late.put_nowait("x");
            const lateMsg = await late1.get(10000);
            const sameObject = c2.getDataChannel("control") === ctl2;
            let missing;
            try { c2.getDataChannel("nope"); } catch (e) { missing = e.message; }
            const closed2 = c2.onClose();
            c1.close();
            await closed2;
            return {name: ctl2.name, first, back, lateMsg, dups, sameObject, missing,
                    c1closed: c1.closed, ctlClosed: ctl.closed, ctl2Closed: ctl2.closed,
                    again: await c1.close()};
        }"""
    )
    assert result["name"] == "control"
    assert result["first"] == {"speed": 1} and result["back"] == [1, 2] and result["lateMsg"] == "x"
    assert result["dups"] == ["RTCBotError", "RTCBotError", "RTCBotError", "TypeError"]
    assert result["sameObject"] is True
    assert "nope" in result["missing"]
    assert result["c1closed"] and result["ctlClosed"] and result["ctl2Closed"]


async def test_close_fires_on_close_ends_readers_and_is_idempotent(page):
    result = await page.evaluate(
        """async () => {
            const c1 = new rtcbot.RTCConnection(true, {iceServers: []});
            const calls = [];
            c1.onClose(() => calls.push("close"));
            const reader = c1.get();                 // pending read on a closed connection
            const ready = c1.onReady();
            c1.close(); c1.close();
            let readErr, readyErr, putErr, sdpErr;
            try { await reader; } catch (e) { readErr = e.name; }
            try { await ready; } catch (e) { readyErr = e.name; }
            try { c1.put_nowait(1); } catch (e) { putErr = e.name; }
            try { await c1.getLocalDescription(); } catch (e) { sdpErr = e.name; }
            let late = false;
            c1.onClose(() => { late = true; });
            await null; await null;
            return {calls, readErr, readyErr, putErr, sdpErr, late, closed: c1.closed,
                    error: await c1.onError()};
        }"""
    )
    assert result == {
        "calls": ["close"],
        "readErr": "SubscriptionClosed",
        "readyErr": "SubscriptionClosed",
        "putErr": "SubscriptionClosed",
        "sdpErr": "SubscriptionClosed",
        "late": True,
        "closed": True,
        "error": None,
    }


async def test_peer_close_closes_the_other_side(page):
    await connect_pair(page)
    result = await page.evaluate(
        """async () => {
            const closed = c2.onClose();
            c1.close();
            await closed;
            return {closed: c2.closed, error: c2.error && c2.error.message};
        }"""
    )
    assert result == {"closed": True, "error": None}


SIGNAL_OFFER = """async () => {
    window.conn = new rtcbot.RTCConnection(true, {iceServers: []}, {heartbeatTimeout: 2500});
    window.events = [];
    conn.onClose(() => events.push("close"));
    conn.onError((e) => events.push("error: " + e.message));
    return await conn.getLocalDescription();
}"""

SIGNAL_ANSWER = """async (offer) => {
    window.conn = new rtcbot.RTCConnection(true, {iceServers: []});
    window.events = [];
    conn.onClose(() => events.push("close"));
    return await conn.getLocalDescription(offer);
}"""


async def connect_two_pages(new_page):
    a = await new_page()
    b = await new_page()
    offer = await a.evaluate(SIGNAL_OFFER)
    answer = await b.evaluate(SIGNAL_ANSWER, offer)
    await a.evaluate("(answer) => conn.setRemoteDescription(answer)", answer)
    await a.evaluate("conn.onReady()")
    await b.evaluate("conn.onReady()")
    # both sides speak heartbeat and have heard each other
    await wait_for_js(a, "conn._hbStats.pongsReceived > 0")
    await wait_for_js(b, "conn._hbStats.pongsReceived > 0")
    return a, b


async def test_closing_a_page_closes_its_connection_on_pagehide(new_page):
    a, b = await connect_two_pages(new_page)
    await b.close()
    # the other side notices at once: the peer closed the connection (not a heartbeat timeout)
    events = await wait_for_js(a, "events.length > 0 && events", timeout=2.0)
    assert events == ["close"]
    assert await a.evaluate("conn.error") is None


async def test_heartbeat_closes_when_the_peer_stops_answering(new_page, context):
    a, b = await connect_two_pages(new_page)
    stats = await a.evaluate("conn.stats()")
    assert stats["heartbeat"]["peerSpeaksHeartbeat"] is True
    assert stats["rtt"] is not None and stats["rtt"] >= 0
    assert stats["candidatePair"] is not None
    # Pause page b's scripts in the debugger: no more pings or pongs from it, while its
    # connection stays open (a hung tab).
    cdp = await context.new_cdp_session(b)
    await cdp.send("Debugger.enable")
    await cdp.send("Debugger.pause")
    try:
        events = await wait_for_js(a, "events.length >= 2 && events", timeout=6.0)
    finally:
        await cdp.send("Debugger.resume")
    assert events[0].startswith("error: the peer vanished: no heartbeat for 2.5 s")
    assert events[1] == "close"
    assert await a.evaluate("conn.closed") is True


async def test_outgoing_queue_is_bounded_and_offer_to_receive_adds_slots(page):
    result = await page.evaluate(
        """async () => {
            const c = new rtcbot.RTCConnection(true, {iceServers: []}, {maxQueued: 2});
            c.put_nowait(1); c.put_nowait(2);
            let full;
            try { c.put_nowait(3); } catch (e) { full = e.name + ": " + e.message; }
            c.video.offerToReceive(2);
            c.audio.subscribe(() => {});
            const offer = await c.getLocalDescription();
            const again = await c.getLocalDescription();
            c.close();
            return {full, queued: c.statistics().discarded,
                    video: (offer.sdp.match(/^m=video/gm) || []).length,
                    audio: (offer.sdp.match(/^m=audio/gm) || []).length,
                    app: (offer.sdp.match(/^m=application/gm) || []).length,
                    same: again.sdp === offer.sdp};
        }"""
    )
    assert result["full"].startswith("SubscriptionFull") and "3" in result["full"]
    assert result == {**result, "queued": 2, "video": 2, "audio": 1, "app": 1, "same": True}


async def test_default_queue_is_bounded_like_python(page):
    result = await page.evaluate(
        """() => {
            const q = new rtcbot.Queue();
            for (let i = 0; i < 10000; i++) q.put_nowait(i);
            try { q.put_nowait("one too many"); return "accepted"; }
            catch (err) { return [q.maxsize, err.name, q.qsize()]; }
        }"""
    )
    assert result == [10000, "SubscriptionFull", 10000]
