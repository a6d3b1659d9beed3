"""Arduino, structs: send C structs, receive C structs (the board swaps the two fields).

Upload structs.ino to the board, then::

    python examples/arduino/structs.py /dev/ttyACM0

(the port may also be given as RTCBOT_SERIAL_PORT). No board? ``python
examples/arduino/fake_arduino.py struct`` prints the port of a pretend one.

The formats are Python ``struct`` formats: ``<`` (little-endian, no padding) matches an AVR's
``__attribute__((packed))`` structs; ``H`` is a uint16_t, ``B`` a uint8_t. Every struct the
board sends starts with the bytes 192, 105: ``startByte`` finds each message by them, so a lost
or garbage byte on the line costs at most one message instead of misaligning all later ones.
Opening the port resets an Arduino, which then boots for about 2 s: ``delayWriteStart`` holds
the writes until it listens.
"""

import asyncio
import os
import sys

from rtcbot import SerialConnection

port = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RTCBOT_SERIAL_PORT", "/dev/ttyACM0")

conn = SerialConnection(
    port,
    writeFormat="<HB",
    writeKeys=["value1", "value2"],
    readFormat="<BH",
    readKeys=["value1", "value2"],
    startByte=bytes([192, 105]),
    delayWriteStart=2,
)


async def main():
    for _ in range(3):
        conn.put_nowait({"value1": 1003, "value2": 2})
        print(await conn.get())
        await asyncio.sleep(0.2)


try:
    asyncio.run(main())
finally:
    conn.close()
