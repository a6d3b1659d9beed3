# RTCBot's basics tutorial shape: a producer at module level whose only subscriber is a plain
# callback, then a bare loop.run_forever(). Nothing rtcbot runs on the loop until the
# producer delivers, so the producer must find the loop by itself.
import asyncio

from rtcbot.base import ThreadedSubscriptionProducer


class Camera(ThreadedSubscriptionProducer):
    def _producer(self):
        i = 0
        while not self._closing.wait(0.01):
            self._put_nowait(i)
            i += 1


camera = Camera()
frames = []
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)


@camera.subscribe
def onFrame(frame):
    frames.append(frame)
    print("frame", frame, flush=True)
    if len(frames) == 3:
        loop.stop()


loop.call_later(10, loop.stop)  # a safety net: the test fails rather than hangs
try:
    loop.run_forever()
finally:
    camera.close()
    loop.close()
print("frames", len(frames), flush=True)
