"""GPS: print the NMEA sentences of a GPS receiver, then the position.

    python examples/gps/gps.py /dev/ttyACM0 [count]

(the port may also be given as RTCBOT_GPS_PORT). No receiver? ``python
examples/gps/fake_gps.py`` replays a recorded session on a pretend one and prints its port.

Each sentence is a pynmea2 object (``pynmea2.GGA``, ``pynmea2.RMC``...). Partial lines, bad
checksums and line noise are skipped and counted in ``gps.statistics()``.
"""

import asyncio
import os
import sys

from rtcbot import GPS

port = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RTCBOT_GPS_PORT", "/dev/ttyACM0")
count = int(sys.argv[2]) if len(sys.argv) > 2 else 10

gps = GPS(port)


async def main():
    for _ in range(count):
        sentence = await gps.get()
        print(repr(sentence))
    print(f"position: latitude={gps.latitude:.6f} longitude={gps.longitude:.6f}", end="")
    print(f" altitude={gps.altitude} m" if gps.altitude is not None else "")
    print("skipped:", {k: v for k, v in gps.statistics().items() if k != "sentences"})


try:
    asyncio.run(main())
finally:
    gps.close()
