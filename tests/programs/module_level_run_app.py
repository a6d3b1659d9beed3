# The tutorials' shape: objects at module level, then aiohttp's web.run_app, which runs its
# own new event loop (aiohttp >= 3.8). RTCBot 0.2.5 bound to the wrong loop here.
import asyncio
import os
import signal

from aiohttp import web

from rtcbot.base import (
    SubscriptionClosed,
    ThreadedSubscriptionConsumer,
    ThreadedSubscriptionProducer,
)


class Sensor(ThreadedSubscriptionProducer):
    def _producer(self):
        self._setReady(True)
        i = 0
        while not self._closing.wait(0.01):
            self._put_nowait(i)
            i += 1


class Output(ThreadedSubscriptionConsumer):
    def _consumer(self):
        while True:
            try:
                value = self._get()
            except SubscriptionClosed:
                return
            print("output", value, flush=True)


sensor = Sensor()
output = Output()


async def forward(app):
    for _ in range(3):
        output.put_nowait(await sensor.get())
    os.kill(os.getpid(), signal.SIGINT)  # a user pressing Ctrl-C


forwarder = web.AppKey("forwarder", asyncio.Task)


async def start(app):
    app[forwarder] = asyncio.create_task(forward(app))


async def cleanup(app):
    sensor.close()
    output.close()
    await asyncio.wait_for(sensor, 5)
    await asyncio.wait_for(output, 5)
    print("clean exit", flush=True)


app = web.Application()
app.on_startup.append(start)
app.on_shutdown.append(cleanup)
web.run_app(app, host="127.0.0.1", port=0, print=None)
