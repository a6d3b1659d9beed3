"""Print the events of the keyboard plugged into this computer (Linux; evdev).

    python examples/inputs/keyboard.py [device]

``device`` is an index among the keyboards found (default 0) or a path such as
/dev/input/event5. Reading /dev/input needs the 'input' group (``sudo usermod -aG input $USER``,
then log in again). Stop with Ctrl-C.
"""

import asyncio
import sys

from rtcbot import Keyboard

device = sys.argv[1] if len(sys.argv) > 1 else 0
keyboard = Keyboard(device=int(device) if str(device).isdigit() else device)
print("reading", keyboard)


@keyboard.subscribe
def onEvent(event):
    print(event)  # {'timestamp': ..., 'code': ..., 'state': ..., 'event': ...}


async def main():
    await keyboard  # until the device is closed or unplugged


try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
finally:
    keyboard.close()
