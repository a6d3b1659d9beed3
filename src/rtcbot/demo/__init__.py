"""``rtcbot demo``: a robot page with live video and keyboard/gamepad control."""

from ._app import DemoOptions, make_app, run_demo

__all__ = ["DemoOptions", "make_app", "run_demo"]
