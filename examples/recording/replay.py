"""Replaying a recorded session (made by record.py) in real time: the video's frames and the
operator's commands come back in step, each at the time it was recorded.

    python replay.py [DIRECTORY or FILE] [SPEED]

DIRECTORY defaults to $RECORDING_DIR, or "recording" (its session.mkv is read); SPEED 2 plays
twice as fast, 0 as fast as it can. It prints what the recording holds, then each command with
its time and the frame that was on screen when it arrived, and a summary at the end.
"""

import asyncio
import os
import sys
from pathlib import Path

from rtcbot import TestPattern
from rtcbot.media.recording import RecordedFrame, Recording

where = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RECORDING_DIR", "recording"))
path = where / "session.mkv" if where.is_dir() else where
speed = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0

recording = Recording(path)
print("Tracks:", ", ".join(recording.tracks))
for name in recording.tracks:
    print(f"Frames ({name}): {recording.frame_count(name)}")
print(f"Duration: {recording.duration:.2f} s")
print(f"Messages: {len(recording.messages)}")


async def main():
    shown = 0
    on_screen = None  # the frame number of the last frame shown
    async for item in recording.replay(speed=speed):
        if isinstance(item, RecordedFrame):
            shown += 1
            on_screen = TestPattern.read_index(item.image)  # a real robot: display it
        else:
            # a real robot: robot_controller.put_nowait(item.message)
            print(f"{item.time:7.3f} s  [{item.channel}]  {item.message}  "
                  f"(on screen: frame {on_screen})")
    print(f"Replayed {shown} frames")


asyncio.run(main())
