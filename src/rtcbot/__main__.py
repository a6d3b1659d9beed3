"""The ``rtcbot`` command (also ``python -m rtcbot``).

    rtcbot demo [--host HOST] [--port PORT] [--token TOKEN | --no-token] [--camera N]
                [--pattern] [--size WxH] [--fps FPS] [--control-timeout SECONDS]
                [--admin-token SECRET] [--slow-ms MS] [--stop-ms MS]
    rtcbot relay ...   (a signalling relay that robots connect out to; --help for options)
"""

from __future__ import annotations

import argparse
import re
import sys


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtcbot", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="serve a robot page with live video and keyboard/gamepad control",
        description="Serve a robot page: live video from the first camera (or a moving test "
        "pattern when there is none), keyboard and gamepad control printed here, and an "
        "overlay of latency, fps, bitrate and round-trip time.",
    )
    demo.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default 127.0.0.1, this machine only; "
                      "0.0.0.0 for the network, which turns the token on)")
    demo.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    token = demo.add_mutually_exclusive_group()
    token.add_argument("--token", help="require this token to connect (default: a random "
                       "one when listening beyond this machine)")
    token.add_argument("--no-token", action="store_true",
                       help="let anyone who can reach the page take control")
    demo.add_argument("--camera", type=int, default=None, help="OpenCV camera index")
    demo.add_argument("--pattern", action="store_true", help="always show the test pattern")
    demo.add_argument("--size", type=_size, default=(640, 480), help="video size (640x480)")
    demo.add_argument("--fps", type=float, default=30.0, help="frames per second (30)")
    demo.add_argument("--control-timeout", type=float, default=0.5,
                      help="seconds without a command before the robot stops (0.5)")
    demo.add_argument("--admin-token", default=None,
                      help="a secret that lets a page take control from the driver at once")
    demo.add_argument("--slow-ms", type=float, default=300.0,
                      help="latency (ms) above which the robot drives at half speed (300)")
    demo.add_argument("--stop-ms", type=float, default=800.0,
                      help="latency (ms) above which the robot stops until it recovers (800)")
    from .relay.cli import add_parser as add_relay

    add_relay(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from .demo import DemoOptions, run_demo

        width, height = args.size
        options = DemoOptions(
            host=args.host,
            port=args.port,
            token=None if args.no_token else (args.token or "auto"),
            camera=args.camera,
            pattern=args.pattern,
            width=width,
            height=height,
            fps=args.fps,
            control_timeout=args.control_timeout,
            admin_token=args.admin_token,
            slow_ms=args.slow_ms,
            stop_ms=args.stop_ms,
        )
        run_demo(options)
        return 0
    return args.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
