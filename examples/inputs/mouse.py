"""Print the events of the mouse plugged into this computer (Linux; evdev).

    python examples/inputs/mouse.py [device]

``device`` is an index among the mouses found (default 0) or a path such as
/dev/input/event5. Reading /dev/input needs the 'input' group (``sudo usermod -aG input $USER``,
then log in again). Stop with Ctrl-C.
"""

import asyncio
import sys

from rtcbot import Mouse

device = sys.argv[1] if len(sys.argv) > 1 else 0
mouse = Mouse(device=int(device) if str(device).isdigit() else device)
print("reading", mouse)


@mouse.subscribe
def onEvent(event):
    print(event)  # {'timestamp': ..., 'code': ..., 'state': ..., 'event': ...}


async def main():
    await mouse  # until the device is closed or unplugged


try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
finally:
    mouse.close()
