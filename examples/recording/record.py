"""Recording a session: a robot streams its camera to an operator, the operator steers, and
the robot records both -- the video it sent and every command it got, each with its time.

Here the robot and a scripted operator run in this one program, connected over WebRTC on this
machine: the operator watches the video and, every ten frames, sends a command naming the frame
it has just seen. On a real robot the operator is a browser page or another computer (see the
recording guide), and the camera a CVCamera or PiCamera.

    python record.py [DIRECTORY] [SECONDS]

writes DIRECTORY/session.mkv (the video) and DIRECTORY/session.jsonl (the commands), and stops
after SECONDS (default 10). DIRECTORY defaults to $RECORDING_DIR, or "recording". Play it back
with replay.py.
"""

import asyncio
import os
import sys
from pathlib import Path

from rtcbot import RTCConnection, TestPattern
from rtcbot.media.recording import Recorder

directory = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RECORDING_DIR", "recording"))
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
directory.mkdir(parents=True, exist_ok=True)

camera = TestPattern(320, 240)  # a moving test pattern with its frame number coded in it
robot = RTCConnection(rtcConfiguration=[])  # [] : no STUN server needed on one machine
operator = RTCConnection(rtcConfiguration=[])
robot.video.putSubscription(camera)
frames = operator.video.subscribe()  # the operator receives the video (ask before connecting)


async def operate():
    """The scripted operator: watches the video and sends a command every ten frames."""
    step = 0
    while True:
        for _ in range(10):
            frame = await frames.get()
        seen = TestPattern.read_index(frame)  # the frame number shown in the picture
        operator.put_nowait({"step": step, "seen": seen, "speed": round(0.1 * step, 1)})
        step += 1


async def main():
    recorder = Recorder(directory / "session.mkv")
    recorder.addVideo(camera, "front")  # the same encode as the connection's: no extra cost
    recorder.addMessages(robot)  # every message the operator sends to the robot
    robot.subscribe(lambda message: print("Robot got:", message))

    # Connect the operator to the robot (a browser would POST its offer to the robot instead).
    offer = await operator.getLocalDescription()
    answer = await robot.getLocalDescription(offer)
    await operator.setRemoteDescription(answer)
    print(f"Recording for {seconds:g} s to {recorder.path}")

    operator_task = asyncio.create_task(operate())
    try:
        await asyncio.sleep(seconds)
    finally:
        operator_task.cancel()
        recorder.close()
        await recorder  # the files are complete
        operator.close()
        robot.close()
        camera.close()
        await operator
        await robot
    stats = recorder.statistics()
    print(f"Recorded {stats['frames']['front']} frames and {stats['messages']} messages "
          f"to {recorder.path} and {recorder.messages_path}")


asyncio.run(main())
