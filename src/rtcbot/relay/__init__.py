"""Reach a robot behind a NAT or on 4G: a signalling relay that robots connect out to.

* :class:`RelayServer` / :func:`create_relay_app` -- the relay (``rtcbot relay`` on the command
  line);
* :func:`connect_robot` -- the robot side in one call: register, answer each client with its own
  ``RTCConnection``, reconnect with backoff;
* :func:`connect_to_robot` -- a Python client (the browser uses the relay's viewer page or
  ``fetch`` in a few lines).
"""

from ._client import RelayError, connect_to_robot, fetch_ice
from ._protocol import NAME_RULE, PROTOCOL_VERSION, ProtocolError
from ._robot import RelayRefused, RelayRobot, connect_robot
from ._server import RELAY_KEY, RelayServer, create_relay_app

__all__ = [
    "NAME_RULE",
    "PROTOCOL_VERSION",
    "RELAY_KEY",
    "ProtocolError",
    "RelayError",
    "RelayRefused",
    "RelayRobot",
    "RelayServer",
    "connect_robot",
    "connect_to_robot",
    "create_relay_app",
    "fetch_ice",
]
