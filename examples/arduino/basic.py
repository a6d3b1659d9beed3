"""Arduino, text: send a string, print the lines the board answers.

Upload basic.ino to the board, then::

    python examples/arduino/basic.py /dev/ttyACM0

(the port may also be given as RTCBOT_SERIAL_PORT). No board? ``python
examples/arduino/fake_arduino.py text`` prints the port of a pretend one.

The sketch writes the bytes 192, 105 when it has booted: ``startByte`` makes the connection wait
for them (and discard what came before) before it is ready and sends anything. Each line arrives
as bytes without its ``\\r\\n``.
"""

import asyncio
import os
import sys

from rtcbot import SerialConnection

port = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RTCBOT_SERIAL_PORT", "/dev/ttyACM0")
message = "Hello world!"

conn = SerialConnection(port, startByte=bytes([192, 105]))


@conn.onReady
def ready():
    print("I AM READY")


async def sendAndReceive():
    conn.put_nowait(message)  # kept until the board is ready
    for _ in message:  # the sketch answers each byte with one line
        line = (await conn.get()).decode("ascii")
        print(line)


try:
    asyncio.run(sendAndReceive())
finally:
    conn.close()
