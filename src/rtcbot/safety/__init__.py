"""A safety gate between the operator and the motors.

:class:`SafetyGate` is a consumer of commands and a producer of safe setpoints: a latched
E-stop, per-axis clamps and rate limits, refusal of malformed, stale or unauthorised commands,
the expiry of commands that are not refreshed, a latency-aware slow-down and one operator at a
time. Its rules are the plain class :class:`SafetyRules` (fed ``now``; no event loop). The
browser half is ``rtcbot.Safety`` in rtcbot.js. See the "Safety" guide.
"""

from ._gate import SafetyGate
from ._rules import LOCAL, Axis, Decision, LatencyLimits, SafetyRules

__all__ = ["LOCAL", "Axis", "Decision", "LatencyLimits", "SafetyGate", "SafetyRules"]
