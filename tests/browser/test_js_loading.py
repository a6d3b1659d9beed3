"""rtcbot.js loads as a classic script (global ``rtcbot``) and as an ES module, both from the
one packaged source; getRTCBotJS serves the packaged file."""

# ruff: noqa: E501 -- the JavaScript run in the page keeps its natural line lengths

from __future__ import annotations

from importlib import resources

import pytest

import rtcbot
from rtcbot.javascript import getRTCBotJS, getRTCBotJSModule, getRTCBotTypes
from support.browser import wait_for_js

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

NAMES = [
    "DEFAULT_RTC_CONFIGURATION",
    "DataChannel",
    "Gamepad",
    "Keyboard",
    "Queue",
    "RTCBotError",
    "RTCConnection",
    "Safety",
    "SessionGone",
    "SubscriptionClosed",
    "SubscriptionFull",
    "VERSION",
    "Websocket",
    "encodeMessage",
    "setGamepadRate",
]


async def test_packaged_files_are_served_as_is():
    folder = resources.files("rtcbot")
    assert getRTCBotJS() == folder.joinpath("rtcbot.js").read_text(encoding="utf-8")
    assert getRTCBotTypes() == folder.joinpath("rtcbot.d.ts").read_text(encoding="utf-8")
    module = getRTCBotJSModule()
    assert "export default rtcbot;" in module
    assert f'VERSION = "{rtcbot.__version__}"' in getRTCBotJS()


async def test_classic_script_defines_the_global(page):
    names = await page.evaluate("Object.keys(rtcbot).sort()")
    assert names == sorted(NAMES)
    assert await page.evaluate("Object.isFrozen(rtcbot) && rtcbot.VERSION") == rtcbot.__version__


async def test_es_module_exports_the_same_names_and_no_global(new_page):
    page = await new_page("/module.html")
    await wait_for_js(page, "window.moduleLoaded === true")
    result = await page.evaluate(
        """() => ({named: Object.keys(rtcbotModule.named).filter((n) => n !== "default").sort(),
                   defaultNames: Object.keys(rtcbotModule.rtcbot).sort(),
                   same: rtcbotModule.named.RTCConnection === rtcbotModule.rtcbot.RTCConnection,
                   global: typeof window.rtcbot})"""
    )
    assert result == {
        "named": sorted(NAMES),
        "defaultNames": sorted(NAMES),
        "same": True,
        "global": "undefined",
    }
    # the module form works: two connections talk
    got = await page.evaluate(
        """async () => {
            const { RTCConnection } = rtcbotModule.named;
            const a = new RTCConnection(true, {iceServers: []});
            const b = new RTCConnection(true, {iceServers: []});
            await a.setRemoteDescription(await b.getLocalDescription(await a.getLocalDescription()));
            a.put_nowait({from: "module"});
            const msg = await b.get(10000);
            a.close(); b.close();
            return msg;
        }"""
    )
    assert got == {"from": "module"}
    assert page.errors == []


async def test_bad_constructor_arguments_name_the_value(page):
    messages = await page.evaluate(
        """() => {
            const out = [];
            const tries = [
                () => new rtcbot.RTCConnection("yes"),
                () => new rtcbot.RTCConnection(true, [{urls: "stun:x"}]),
                () => new rtcbot.RTCConnection(true, {iceServers: []}, {heartbeatTimout: 1}),
                () => new rtcbot.Queue(-1),
                () => new rtcbot.Gamepad(1.5),
                () => new rtcbot.Keyboard({capture: "a"}),
            ];
            for (const t of tries) { try { t(); out.push("no error"); } catch (e) { out.push(e.message); } }
            return out;
        }"""
    )
    assert '"yes"' in messages[0]
    assert "rtcConfiguration" in messages[1]
    assert "heartbeatTimout" in messages[2]
    assert "-1" in messages[3] and "1.5" in messages[4] and '"a"' in messages[5]


async def test_queue(page):
    result = await page.evaluate(
        """async () => {
            const q = new rtcbot.Queue(2);
            q.put_nowait(1); q.put_nowait(2);
            let full; try { q.put_nowait(3); } catch (e) { full = e.name; }
            const a = await q.get(); const b = q.get_nowait();
            const pending = q.get();
            q.put_nowait("later");
            const c = await pending;
            let timeout; try { await q.get(20); } catch (e) { timeout = e.name; }
            q.put_nowait("kept"); q.close();
            const d = await q.get();
            let end; try { await q.get(); } catch (e) { end = e.name; }
            return [a, b, c, full, timeout, d, end, q.qsize(), q.empty()];
        }"""
    )
    assert result == [
        1,
        2,
        "later",
        "SubscriptionFull",
        "RTCBotError",
        "kept",
        "SubscriptionClosed",
        0,
        True,
    ]
