"""The field lab from Python: a 4G link between a robot and a viewer namespace, measured with
UDP probes, then a 1 s outage and an address change. Run as root:

    sudo python lab.py

Your own programs run in the lab with ``lab.robot.run([...])`` and ``lab.viewer.run([...])``.
"""

import asyncio
import itertools

from rtcbot.testing.fieldlab import FieldLab


async def main():
    async with FieldLab(profile="4g") as lab:
        print("robot", lab.robot.interfaces, "viewer", lab.viewer.ip, flush=True)

        calm = await lab.udp_probe(lab.robot, lab.viewer, rate_bps=200_000, seconds=1.0)
        print(f"4g: one-way delay {calm['delay_p50'] * 1000:.0f} ms, "
              f"loss {calm['loss']:.1%}", flush=True)

        # a probe runs while the link blacks out for a second
        probe = asyncio.ensure_future(
            lab.udp_probe(lab.robot, lab.viewer, rate_bps=80_000, seconds=3.0))
        await asyncio.sleep(1.0)
        start, end = await lab.outage(1.0)
        arrivals = [arrived for _, _, arrived, _ in (await probe)["records"]]
        gap = max(b - a for a, b in itertools.pairwise(arrivals))
        print(f"outage of {end - start:.1f} s: longest gap between packets {gap:.2f} s",
              flush=True)

        await lab.set_profile("bad4g")
        bad = await lab.udp_probe(lab.robot, lab.viewer, rate_bps=200_000, seconds=1.0)
        print(f"bad4g: one-way delay {bad['delay_p50'] * 1000:.0f} ms", flush=True)

        new = await lab.new_ip("eth0")
        print("the robot's eth0 is now", new, flush=True)


asyncio.run(main())
