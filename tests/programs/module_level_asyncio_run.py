# Objects created at module level, before any loop; the program then uses asyncio.run.
import asyncio

from rtcbot.base import (
    SubscriptionClosed,
    ThreadedSubscriptionConsumer,
    ThreadedSubscriptionProducer,
)


class Sensor(ThreadedSubscriptionProducer):
    def _producer(self):
        self._setReady(True)  # before any loop exists
        for i in range(3):
            self._put_nowait(i)
        self._closing.wait()


class Output(ThreadedSubscriptionConsumer):
    def _consumer(self):
        while True:
            try:
                print("output", self._get(), flush=True)
            except SubscriptionClosed:
                return


sensor = Sensor()
output = Output()
output.putSubscription(sensor)


async def main():
    await asyncio.wait_for(sensor.onReady(), 5)
    await asyncio.wait_for(output.onClose(), 5)  # ends when the sensor's stream ends


if __name__ == "__main__":
    async def run():
        task = asyncio.create_task(main())
        await asyncio.sleep(0.3)  # the program's own time; then it shuts down
        sensor.close()
        await asyncio.wait_for(task, 5)
        await asyncio.wait_for(output, 5)
        print("clean exit", flush=True)

    asyncio.run(run())
