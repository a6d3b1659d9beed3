"""``rtcbot relay``: run the signalling relay.

    rtcbot relay [--host HOST] [--port PORT] [--secret SECRET] [--robot NAME=SECRET ...]
                 [--token TOKEN | --no-token] [--origin URL ...] [--ice FILE]
                 [--answer-timeout SECONDS]

Secrets and tokens may also come from ``RTCBOT_RELAY_SECRET`` and ``RTCBOT_RELAY_TOKEN`` (they
stay out of the process list); when none is given a random one is made and printed. ICE
servers handed to robots and browsers come from ``--ice`` or the environment (see
:mod:`rtcbot.ice`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def _robot_secret(text: str) -> tuple[str, str]:
    name, sep, secret = text.partition("=")
    if not sep or not name or not secret:
        raise argparse.ArgumentTypeError(f"expected NAME=SECRET, got {text!r}")
    return name, secret


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``relay`` command to an ``argparse`` subparsers object and return its parser."""
    parser = subparsers.add_parser(
        "relay",
        help="run a signalling relay that robots behind NATs or on 4G connect out to",
        description="Robots connect out to this relay and register under a name with a secret; "
        "browsers and Python programs reach them by name with a token. Media flows peer to "
        "peer (or through your TURN server), never through the relay.",
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    parser.add_argument("--port", type=int, default=8080, help="port (8080)")
    parser.add_argument("--secret", default=os.environ.get("RTCBOT_RELAY_SECRET"),
                        help="secret every robot must present (default: $RTCBOT_RELAY_SECRET, "
                        "or a random one, printed)")
    parser.add_argument("--robot", type=_robot_secret, action="append", default=[],
                        metavar="NAME=SECRET",
                        help="allow robot NAME with its own SECRET (repeatable; with --robot "
                        "only the listed names may register)")
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--token", default=os.environ.get("RTCBOT_RELAY_TOKEN"),
                       help="token clients must present (default: $RTCBOT_RELAY_TOKEN, or a "
                       "random one, printed)")
    token.add_argument("--no-token", action="store_true",
                       help="let anyone who can reach the relay connect to its robots")
    parser.add_argument("--origin", action="append", default=None, metavar="URL",
                        help="browser origin allowed to connect, e.g. https://relay.example.org "
                        "(repeatable; default: the relay's own origin as it sees it -- behind "
                        "an HTTPS reverse proxy, give the public origin here)")
    parser.add_argument("--ice", default=None,
                        help="JSON file of ICE servers for robots and browsers (default: the "
                        "RTCBOT_ICE_* environment)")
    parser.add_argument("--answer-timeout", type=float, default=20.0,
                        help="seconds to wait for a robot's answer before a 504 (20)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the relay until interrupted (Ctrl-C)."""
    from aiohttp import web

    from . import create_relay_app

    secret: Any
    if args.robot:
        secret = dict(args.robot)
        if args.secret:
            print("--secret is ignored when --robot is given", file=sys.stderr)
    else:
        secret = args.secret or secrets.token_urlsafe(16)
    token = None if args.no_token else (args.token or secrets.token_urlsafe(16))
    # print only what was made up here; given secrets stay out of logs
    shown_secret = secret if isinstance(secret, str) and not args.secret else "SECRET"
    shown_token = token if token and not args.token else "TOKEN"
    app = create_relay_app(secret, token=token, ice=args.ice, answer_timeout=args.answer_timeout,
                           allowed_origins=args.origin)
    shown = "localhost" if args.host in ("0.0.0.0", "::") else args.host
    base = f"http://{shown}:{args.port}"
    print(f"rtcbot relay on {base}", flush=True)
    if isinstance(secret, str):
        print(f"  robots:  connect_robot({base!r}, NAME, {shown_secret!r}, on_connection)",
              flush=True)
    else:
        print(f"  robots:  {', '.join(sorted(secret))} (each with its own secret)", flush=True)
    fragment = f"#token={shown_token}" if token else ""
    print(f"  viewers: {base}/robots/NAME/{fragment}", flush=True)
    web.run_app(app, host=args.host, port=args.port)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rtcbot.relay.cli``: the relay command alone."""
    parser = argparse.ArgumentParser(prog="rtcbot")
    commands = parser.add_subparsers(dest="command", required=True)
    add_parser(commands)
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
