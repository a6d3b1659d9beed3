"""The field lab: a mobile link (4G, a bad 4G, a capacity drop, outages, address changes,
an interface going down) between a robot and a viewer, on one Linux machine.

Network namespaces (robot, viewer, server) joined through a middle namespace where a
user-space link emulator on ``AF_PACKET`` sockets queues, rate-limits, loses, delays and
jitters packets per direction (no ``netem`` needed). Needs root and ``ip`` (iproute2).

* :class:`FieldLab` -- ``async with FieldLab(profile="4g") as lab: ...``: the namespaces, the
  emulator, and run-time control (:meth:`~FieldLab.set_profile`, :meth:`~FieldLab.outage`,
  :meth:`~FieldLab.new_ip`, :meth:`~FieldLab.iface_down`).
* :data:`PROFILES` -- ``lan``, ``4g``, ``bad4g``, ``drop``; :class:`Profile`,
  :class:`LinkParams` to make your own.
* ``python -m rtcbot.testing.fieldlab run --profile 4g --robot "..." --viewer "..."`` runs your
  own robot and viewer programs under a profile and scripted events.
"""

from __future__ import annotations

from ._lab import FieldLab, Host, cleanup_prefix, missing_requirements
from ._model import PROFILES, Direction, LinkParams, Profile

__all__ = ["PROFILES", "Direction", "FieldLab", "Host", "LinkParams", "Profile",
           "cleanup_prefix", "missing_requirements"]
