"""Print the events of the gamepad plugged into this computer (Linux; evdev).

    python examples/inputs/gamepad.py [device]

``device`` is an index among the gamepads found (default 0) or a path such as
/dev/input/event5. Reading /dev/input needs the 'input' group (``sudo usermod -aG input $USER``,
then log in again). Stop with Ctrl-C.
"""

import asyncio
import sys

from rtcbot import Gamepad

device = sys.argv[1] if len(sys.argv) > 1 else 0
gamepad = Gamepad(device=int(device) if str(device).isdigit() else device)
print("reading", gamepad)


@gamepad.subscribe
def onEvent(event):
    print(event)  # {'timestamp': ..., 'code': ..., 'state': ..., 'event': ...}


async def main():
    await gamepad  # until the device is closed or unplugged


try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
finally:
    gamepad.close()
