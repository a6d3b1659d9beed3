"""The signalling relay on 127.0.0.1: registration, correlation, errors, reconnect (RTCBot 0.2.5
defects 42, 50-52). Real aiortc peers with no ICE server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random

import aiohttp
import pytest
from aiohttp import web

from rtcbot.connection import RTCConnection
from rtcbot.relay import (
    RelayError,
    RelayRefused,
    RelayServer,
    connect_robot,
    connect_to_robot,
    create_relay_app,
)
from rtcbot.relay._server import RELAY_KEY
from rtcbot.websocket import Websocket

SECRET = "robot-secret"
TOKEN = "client-token"


class Relay:
    """A relay app on 127.0.0.1 that can be stopped and started again on the same port."""

    def __init__(self, secret=SECRET, **options) -> None:
        self.secret = secret
        self.options = {"token": TOKEN, "ice": [], **options}
        self.port = 0
        self.runner: web.AppRunner | None = None
        self.server: RelayServer | None = None

    async def start(self) -> Relay:
        app = create_relay_app(self.secret, **self.options)
        self.server = app[RELAY_KEY]
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def relay():
    r = await Relay().start()
    yield r
    await r.stop()


def echo_robot(conn: RTCConnection) -> None:
    """on_connection: answer every message with {"echo": message}."""
    conn.subscribe(lambda m: conn.put_nowait({"echo": m}))


@contextlib.asynccontextmanager
async def robot_at(relay: Relay, name: str = "rover", secret: str = SECRET, **options):
    options.setdefault("rtc_configuration", [])
    options.setdefault("backoff", (0.05, 0.2))
    robot = connect_robot(relay.url, name, secret, options.pop("on_connection", echo_robot),
                          **options)
    try:
        yield robot
    finally:
        robot.close()
        await robot


async def post(url: str, body, token: str | None = TOKEN, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.post(
        url, data=body if isinstance(body, (str, bytes)) else json.dumps(body), headers=headers,
        **kwargs,
    ) as resp:
        return resp.status, await resp.text()


async def client(relay: Relay, name: str = "rover") -> RTCConnection:
    conn = RTCConnection(rtcConfiguration=[])
    await connect_to_robot(relay.url, name, conn, token=TOKEN)
    await conn.onReady()
    return conn


async def test_python_client_reaches_robot_through_relay(relay):
    async with asyncio.timeout(20), robot_at(relay) as robot:
        await robot.onReady()
        assert relay.server.robots == ["rover"]
        conn = await client(relay)
        conn.put_nowait({"hi": 1})
        assert await conn.get() == {"echo": {"hi": 1}}
        assert len(robot.connections) == 1
        await conn.close()


async def test_robot_not_connected_is_an_immediate_503(relay):
    async with asyncio.timeout(5):
        status, text = await post(relay.url + "/robots/ghost/connect", {"type": "offer",
                                                                         "sdp": "v=0"})
    assert status == 503 and "'ghost' is not connected" in text
    with pytest.raises(RelayError) as info:
        await connect_to_robot(relay.url, "ghost", token=TOKEN, timeout=5)
    assert info.value.status == 503


async def test_clients_need_the_token(relay):
    async with asyncio.timeout(10), robot_at(relay) as robot:
        await robot.onReady()
        status, _ = await post(relay.url + "/robots/rover/connect", {}, token=None)
        assert status == 401
        status, text = await post(relay.url + "/robots/rover/connect", {}, token="nope")
        assert status == 403 and "wrong token" in text
        mine = RTCConnection(rtcConfiguration=[])
        with pytest.raises(RelayError, match="HTTP 403"):
            await connect_to_robot(relay.url, "rover", mine, token="nope")
        await mine.close()
        async with aiohttp.ClientSession() as s, s.get(relay.url + "/robots") as resp:
            assert resp.status == 401


async def test_wrong_secret_is_refused_and_a_shared_secret_never_takes_a_live_name(relay):
    async with asyncio.timeout(15), robot_at(relay) as first:
        await first.onReady()
        async with robot_at(relay, secret="guess") as intruder:
            err = await intruder.onError()
            assert isinstance(err, RelayRefused) and "wrong secret" in str(err)
        assert first.ready and relay.server.robots == ["rover"]
        # another holder of the shared secret: told "busy", the robot in place untouched
        ws = Websocket(relay.url + "/ws")
        ws.put_nowait({"type": "register", "name": "rover", "secret": SECRET})
        assert (await ws.get())["type"] == "busy"
        await ws  # and closed
        assert first.ready and relay.server.robots == ["rover"]
        conn = await client(relay)  # still reaches the first robot
        assert len(first.connections) == 1
        await conn.close()
        # a robot client told "busy" keeps trying, and gets the name once it is free
        async with robot_at(relay) as second:
            assert not second.ready
            first.close()
            await second.onReady()
            assert relay.server.robots == ["rover"]


async def test_per_robot_secrets_replace_and_the_victim_comes_back():
    relay = await Relay({"rover": "rover-secret", "other": "other-secret"}).start()
    try:
        async with asyncio.timeout(20):
            async with robot_at(relay, secret="rover-secret", backoff=(0.05, 0.3)) as first:
                await first.onReady()
                # another robot's secret cannot take this name
                async with robot_at(relay, secret="other-secret") as thief:
                    err = await thief.onError()
                    assert isinstance(err, RelayRefused) and "wrong secret" in str(err)
                # this robot's own secret replaces it (a restart is back at once) ...
                back = asyncio.Event()
                first.onReady(lambda: first.registrations >= 2 and back.set())
                ws = Websocket(relay.url + "/ws")
                ws.put_nowait({"type": "register", "name": "rover", "secret": "rover-secret"})
                assert (await ws.get())["type"] == "registered"
                # ... and the robot replaced is not gone for good: once the name is free
                # (its longest backoff later) it registers again, with a warning each time
                ws.close()
                await back.wait()
                assert first.replacements == 1 and not first.closed
    finally:
        await relay.stop()


class FakeRobot:
    """A robot speaking the relay protocol by hand over a raw Websocket: answers each offer
    with an SDP naming the offer's marker, after a random delay (answers come back out of
    order), or never."""

    def __init__(self, relay: Relay, answer: bool = True) -> None:
        self.ws = Websocket(relay.url.replace("http", "ws") + "/ws")
        self.answer = answer
        self.offers = 0
        self.arrived: asyncio.Queue = asyncio.Queue()
        self.tasks: set = set()

    async def run(self) -> None:
        self.ws.put_nowait({"type": "register", "name": "fake", "secret": SECRET})
        assert (await self.ws.get())["type"] == "registered"
        self.ws.subscribe(self._on_message)

    def _on_message(self, message) -> None:
        self.offers += 1
        self.arrived.put_nowait(message)
        if self.answer:
            task = asyncio.ensure_future(self._reply(message))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _reply(self, message) -> None:
        await asyncio.sleep(random.uniform(0, 0.05))  # reorders the answers on purpose
        marker = message["offer"]["sdp"].split("marker=")[1]
        if not self.ws.closed:
            self.ws.put_nowait({"type": "answer", "id": message["id"],
                                "answer": {"type": "answer",
                                           "sdp": f"v=0 answer-to={marker}"}})


async def test_concurrent_clients_never_get_each_others_answers():
    relay = await Relay(max_pending=100).start()
    fake = FakeRobot(relay)
    async with asyncio.timeout(30):
        await fake.run()

        async def one(i: int):
            offer = {"type": "offer", "sdp": f"v=0\r\nm=application marker={i}"}
            status, text = await post(relay.url + "/robots/fake/connect", offer)
            assert status == 200, text
            return json.loads(text)["sdp"]

        answers = await asyncio.gather(*(one(i) for i in range(100)))
        assert answers == [f"v=0 answer-to={i}" for i in range(100)]
        assert fake.offers == 100
        # one more than max_pending at once: the extra ones are told the robot is busy
        statuses = [s for s, _ in await asyncio.gather(*(
            post(relay.url + "/robots/fake/connect",
                 {"type": "offer", "sdp": f"v=0\r\nm=application marker={i}"})
            for i in range(110)))]
        assert statuses.count(200) >= 100 and set(statuses) <= {200, 503}
        fake.ws.close()
        await fake.ws
    await relay.stop()


async def test_no_answer_is_504_and_robot_gone_is_503():
    relay = await Relay(answer_timeout=0.5).start()
    try:
        fake = FakeRobot(relay, answer=False)
        async with asyncio.timeout(15):
            await fake.run()
            offer = {"type": "offer", "sdp": "v=0\r\nm=application marker=1"}
            status, text = await post(relay.url + "/robots/fake/connect", offer)
            assert status == 504 and "did not answer within 0.5 s" in text
            # the robot leaves while a client waits: the client hears at once
            waiting = asyncio.ensure_future(post(relay.url + "/robots/fake/connect", offer))
            await fake.arrived.get()  # the first offer (answered by a 504)
            await fake.arrived.get()  # this one
            fake.ws.close()
            status, text = await waiting
            assert status == 503 and "disconnected" in text
            await fake.ws
    finally:
        await relay.stop()


async def test_bad_requests_get_clear_errors(relay):
    async with asyncio.timeout(15), robot_at(relay) as robot:
        await robot.onReady()
        url = relay.url + "/robots/rover/connect"
        assert (await post(url, "not json"))[0] == 400
        status, text = await post(url, {"type": "answer", "sdp": "v=0"})
        assert status == 400 and "'offer'" in text
        # passes the relay, refused by the robot: its status and reason come back
        status, text = await post(url, {"type": "offer", "sdp": "v=0\r\ns=garbage\r\n"})
        assert status == 400 and "invalid offer" in text and "no media section" in text
        assert (await post(url, "x" * 100_000))[0] == 413


async def test_nothing_the_client_sends_is_echoed_into_html(relay):
    evil = "<script>alert(1)</script>"
    async with aiohttp.ClientSession() as session, asyncio.timeout(10):
        for path in (f"/robots/{evil}/", f"/robots/{evil}/connect"):
            method = session.post if path.endswith("connect") else session.get
            async with method(relay.url + path, headers={"Authorization": f"Bearer {TOKEN}"}) \
                    as resp:
                body = await resp.text()
                assert resp.status == 404 and "<script>" not in body and "alert" not in body
        async with session.get(relay.url + "/robots/rover/") as resp:
            page = await resp.text()
            assert resp.status == 200 and 'data-robot="rover"' in page
            assert resp.content_type == "text/html"
        async with session.get(relay.url + "/rtcbot.js") as resp:
            assert resp.status == 200 and "RTCConnection" in await resp.text()


async def test_registration_protocol_errors_are_refused(relay):
    async with asyncio.timeout(10):
        for first in ({"type": "hello"}, {"type": "register", "name": "<b>", "secret": SECRET},
                      {"type": "register", "name": "ok", "secret": SECRET, "protocol": 99}):
            ws = Websocket(relay.url + "/ws")
            ws.put_nowait(first)
            reply = await ws.get()
            assert reply["type"] == "refused", reply
            await ws  # the relay closed it
        assert relay.server.robots == []


async def test_robot_serves_many_sessions_at_once(relay):
    async with asyncio.timeout(40), robot_at(relay) as robot:
        await robot.onReady()
        conns = await asyncio.gather(*(client(relay) for _ in range(4)))
        for i, conn in enumerate(conns):
            conn.put_nowait(i)
        assert [await c.get() for c in conns] == [{"echo": i} for i in range(4)]
        assert len(robot.connections) == 4
        for conn in conns:
            conn.close()
        await asyncio.gather(*conns)


async def test_robot_reconnects_after_the_relay_restarts(relay):
    async with asyncio.timeout(40), robot_at(relay) as robot:
        await robot.onReady()
        before = await client(relay)
        await relay.stop()
        # the session made through the old relay is peer to peer: it goes on
        before.put_nowait("still")
        assert await before.get() == {"echo": "still"}
        await relay.start()
        await relay.server.wait_for_robot("rover")  # the robot came back by itself
        await robot.onReady()
        assert robot.registrations == 2
        after = await client(relay)
        after.put_nowait("new")
        assert await after.get() == {"echo": "new"}
        await before.close()
        await after.close()
