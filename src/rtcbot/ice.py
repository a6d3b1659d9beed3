"""ICE servers (STUN and TURN) from code, a configuration file or the environment.

A robot on a home network or on 4G sits behind a NAT. To reach it, WebRTC peers need a STUN
server (to learn their public address) and, when a NAT does not allow direct connections, a
TURN server that relays the media. :func:`load_ice_config` gathers that configuration once,
for Python (:meth:`IceConfig.rtc_configuration`, accepted by ``RTCConnection(rtcConfiguration=
...)``) and for the browser (:meth:`IceConfig.browser_configuration`, the object that
``new rtcbot.RTCConnection(true, config)`` takes).

Where the configuration comes from, first match wins:

1. the ``value`` given to :func:`load_ice_config` (a list of servers, a dict, a file path, an
   :class:`IceConfig`);
2. ``RTCBOT_ICE_SERVERS``: JSON, either a list of servers or ``{"iceServers": [...],
   "iceTransportPolicy": "relay"}``;
3. ``RTCBOT_ICE_CONFIG``: the path of a JSON file with the same content;
4. ``RTCBOT_STUN_URL`` and ``RTCBOT_TURN_URL`` (comma-separated URLs) with
   ``RTCBOT_TURN_USERNAME`` and ``RTCBOT_TURN_CREDENTIAL``, or ``RTCBOT_TURN_SECRET`` (coturn's
   ``--static-auth-secret``: short-lived credentials are computed for each connection);
5. nothing: no ICE server, only the machine's own addresses (no third-party server is ever
   contacted unless configured).

``RTCBOT_ICE_TRANSPORT_POLICY`` (``all`` or ``relay``) overrides the policy of any source.

A server is a dict as in the browser: ``{"urls": "turn:turn.example.org:3478", "username": "u",
"credential": "p"}`` (``urls`` may be a list), or a URL string for STUN. Note that aiortc uses
only the first ``stun:`` URL and the first ``turn:``/``turns:`` URL of the whole list; browsers
use them all.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "ENV_ICE_CONFIG",
    "ENV_ICE_POLICY",
    "ENV_ICE_SERVERS",
    "ENV_STUN_URL",
    "ENV_TURN_CREDENTIAL",
    "ENV_TURN_SECRET",
    "ENV_TURN_URL",
    "ENV_TURN_USERNAME",
    "IceConfig",
    "IceServer",
    "load_ice_config",
    "rtc_configuration",
    "turn_rest_credentials",
]

_log = logging.getLogger("rtcbot.ice")

ENV_ICE_SERVERS = "RTCBOT_ICE_SERVERS"
ENV_ICE_CONFIG = "RTCBOT_ICE_CONFIG"
ENV_STUN_URL = "RTCBOT_STUN_URL"
ENV_TURN_URL = "RTCBOT_TURN_URL"
ENV_TURN_USERNAME = "RTCBOT_TURN_USERNAME"
ENV_TURN_CREDENTIAL = "RTCBOT_TURN_CREDENTIAL"
ENV_TURN_SECRET = "RTCBOT_TURN_SECRET"
ENV_ICE_POLICY = "RTCBOT_ICE_TRANSPORT_POLICY"

_SCHEMES = ("stun:", "turn:", "turns:")
_POLICIES = ("all", "relay")
#: Lifetime of credentials computed from a TURN secret (seconds).
DEFAULT_TURN_TTL = 24 * 3600


def turn_rest_credentials(
    secret: str, user: str = "rtcbot", ttl: float = DEFAULT_TURN_TTL, now: float | None = None
) -> tuple[str, str]:
    """Time-limited TURN credentials for a server that shares ``secret`` (coturn's
    ``--use-auth-secret --static-auth-secret=SECRET``; the "TURN REST API" scheme).

    Returns ``(username, credential)``: ``username`` is ``"<expiry unix time>:<user>"``, valid
    for ``ttl`` seconds from ``now`` (default: the current time); ``credential`` is the base64
    HMAC-SHA1 of the username keyed by the secret. Hand these to browsers instead of a
    long-lived password.
    """
    if not isinstance(secret, str) or not secret:
        raise ValueError("the TURN secret must be a non-empty str")
    if ":" in user:
        raise ValueError(f"the TURN user name may not contain ':', got {user!r}")
    if not ttl > 0:
        raise ValueError(f"ttl must be positive seconds, got {ttl!r}")
    expiry = int((time.time() if now is None else now) + ttl)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


@dataclasses.dataclass(frozen=True)
class IceServer:
    """One STUN or TURN server: ``urls`` (one or more ``stun:``, ``turn:`` or ``turns:`` URLs)
    with, for TURN, ``username`` and ``credential``, or ``secret`` (coturn's static auth
    secret: fresh time-limited credentials are computed each time a configuration is made)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None
    secret: str | None = dataclasses.field(default=None, repr=False)

    @property
    def is_turn(self) -> bool:
        """True if any URL is a TURN URL (``turn:`` or ``turns:``)."""
        return any(u.startswith(("turn:", "turns:")) for u in self.urls)

    def as_dict(self, user: str = "rtcbot") -> dict[str, Any]:
        """The browser's form: ``{"urls": [...], "username": ..., "credential": ...}``."""
        out: dict[str, Any] = {"urls": list(self.urls)}
        username, credential = self.username, self.credential
        if self.secret is not None:
            username, credential = turn_rest_credentials(self.secret, user)
        if username is not None:
            out["username"] = username
        if credential is not None:
            out["credential"] = credential
        return out


@dataclasses.dataclass(frozen=True)
class IceConfig:
    """ICE servers and the transport policy (``"all"``, or ``"relay"`` to use TURN only).

    Falsy when it has no server."""

    servers: tuple[IceServer, ...] = ()
    transport_policy: str = "all"
    #: where the configuration came from (for messages): "argument", an environment variable...
    source: str = "default"

    def __bool__(self) -> bool:
        return bool(self.servers)

    def ice_servers(self, user: str = "rtcbot") -> list[dict[str, Any]]:
        """The servers as a list of browser-style dicts (credentials from a secret are fresh,
        issued for ``user``)."""
        return [s.as_dict(user) for s in self.servers]

    def browser_configuration(self, user: str = "rtcbot") -> dict[str, Any]:
        """The configuration object of a browser's ``RTCPeerConnection`` (JSON-serialisable):
        ``{"iceServers": [...], "iceTransportPolicy": "all" | "relay"}``."""
        return {"iceServers": self.ice_servers(user), "iceTransportPolicy": self.transport_policy}

    def rtc_configuration(self, user: str = "rtcbot") -> Any:
        """An aiortc ``RTCConfiguration`` for ``RTCConnection(rtcConfiguration=...)``."""
        from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy

        servers = []
        stun = turn = 0
        for server in self.servers:
            data = server.as_dict(user)
            stun += sum(u.startswith("stun:") for u in server.urls)
            turn += sum(u.startswith(("turn:", "turns:")) for u in server.urls)
            servers.append(
                RTCIceServer(
                    urls=data["urls"],
                    username=data.get("username"),
                    credential=data.get("credential"),
                )
            )
        if stun > 1 or turn > 1:
            _log.info(
                "aiortc uses only the first STUN URL and the first TURN URL of %d STUN and %d "
                "TURN URLs configured (browsers use them all)", stun, turn
            )
        policy = RTCIceTransportPolicy(self.transport_policy)
        return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


def _parse_server(value: Any, where: str, index: int) -> IceServer:
    if isinstance(value, IceServer):
        return value
    if isinstance(value, str):
        value = {"urls": value}
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{where}: ICE server {index} must be a dict like {{'urls': 'turn:host:3478', "
            f"'username': ..., 'credential': ...}} or a URL string, got {type(value).__name__}"
        )
    unknown = set(value) - {"urls", "url", "username", "credential", "credentialType", "secret"}
    if unknown:
        raise ValueError(f"{where}: ICE server {index} has unknown keys {sorted(unknown)}")
    urls = value.get("urls", value.get("url"))
    if isinstance(urls, str):
        urls = [urls]
    if (
        not isinstance(urls, (list, tuple))
        or not urls
        or not all(isinstance(u, str) for u in urls)
    ):
        raise ValueError(f"{where}: ICE server {index} needs 'urls', a URL or a list of URLs, "
                         f"got {urls!r}")
    urls = [u.strip() for u in urls]
    for url in urls:
        if not url.startswith(_SCHEMES):
            raise ValueError(
                f"{where}: ICE server {index}: {url!r} is not a stun:, turn: or turns: URL"
            )
    username, credential, secret = (value.get(k) for k in ("username", "credential", "secret"))
    for key, item in (("username", username), ("credential", credential), ("secret", secret)):
        if item is not None and not isinstance(item, str):
            # the type only: the value may be a password
            raise TypeError(
                f"{where}: ICE server {index}: {key} must be a str, got {type(item).__name__}"
            )
    server = IceServer(tuple(urls), username, credential, secret)
    if server.is_turn and secret is None and (username is None or credential is None):
        raise ValueError(
            f"{where}: ICE server {index} ({urls[0]}) is a TURN server: it needs 'username' and "
            "'credential' (or 'secret', coturn's static auth secret)"
        )
    return server


def _parse_policy(value: Any, where: str) -> str:
    if value is None:
        return "all"
    if value not in _POLICIES:
        raise ValueError(f"{where}: iceTransportPolicy must be 'all' or 'relay', got {value!r}")
    return value


def _parse(value: Any, where: str) -> IceConfig:
    if isinstance(value, IceConfig):
        return value
    policy = None
    if isinstance(value, Mapping):
        unknown = set(value) - {"iceServers", "iceTransportPolicy"}
        if unknown:
            raise ValueError(
                f"{where}: expected {{'iceServers': [...], 'iceTransportPolicy': ...}}, got "
                f"unknown keys {sorted(unknown)}"
            )
        policy = value.get("iceTransportPolicy")
        value = value.get("iceServers") or []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{where}: expected a list of ICE servers, got {type(value).__name__}")
    servers = tuple(_parse_server(s, where, i) for i, s in enumerate(value))
    return IceConfig(servers, _parse_policy(policy, where), where)


def _read_json_file(path: Path, where: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{where}: cannot read ICE configuration file {str(path)!r}: {exc}") \
            from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{where}: {str(path)!r} is not JSON: {exc}") from exc


def _from_environment(env: Mapping[str, str]) -> IceConfig:
    text = env.get(ENV_ICE_SERVERS, "").strip()
    if text:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(
                f"{ENV_ICE_SERVERS} must be JSON (a list of servers such as "
                f'[{{"urls": "stun:stun.example.org:3478"}}]); it is not ({exc})'
            ) from exc
        return _parse(data, ENV_ICE_SERVERS)
    path = env.get(ENV_ICE_CONFIG, "").strip()
    if path:
        return _parse(_read_json_file(Path(path), ENV_ICE_CONFIG), f"{ENV_ICE_CONFIG}={path}")
    servers: list[IceServer] = []
    stun = [u.strip() for u in env.get(ENV_STUN_URL, "").split(",") if u.strip()]
    if stun:
        servers.append(_parse_server({"urls": stun}, ENV_STUN_URL, 0))
    turn = [u.strip() for u in env.get(ENV_TURN_URL, "").split(",") if u.strip()]
    if turn:
        entry = {"urls": turn}
        for key, var in (
            ("username", ENV_TURN_USERNAME),
            ("credential", ENV_TURN_CREDENTIAL),
            ("secret", ENV_TURN_SECRET),
        ):
            if env.get(var):
                entry[key] = env[var]
        try:
            servers.append(_parse_server(entry, ENV_TURN_URL, 0))
        except ValueError as exc:
            raise ValueError(
                f"{exc}: set {ENV_TURN_USERNAME} and {ENV_TURN_CREDENTIAL}, or {ENV_TURN_SECRET}"
            ) from None
    if servers:
        return IceConfig(tuple(servers), "all", "RTCBOT_STUN_URL/RTCBOT_TURN_URL")
    return IceConfig()


def load_ice_config(value: Any = None, *, environ: Mapping[str, str] | None = None) -> IceConfig:
    """The ICE configuration, from ``value`` or else the environment (see the module docstring).

    ``value``: None (use the environment), an :class:`IceConfig`, a list of servers (dicts or
    URL strings), a dict ``{"iceServers": [...], "iceTransportPolicy": "all" | "relay"}``, or
    the path (``str`` or ``Path``) of a JSON file holding either. ``environ`` defaults to
    ``os.environ``. Raises ``ValueError``/``TypeError`` naming the source and the bad value.
    """
    env = os.environ if environ is None else environ
    if value is None:
        config = _from_environment(env)
    elif isinstance(value, Path) or (
        isinstance(value, str) and not value.startswith(_SCHEMES)
    ):
        config = _parse(_read_json_file(Path(value), "ICE file"), f"file {str(value)!r}")
    elif isinstance(value, str):
        config = _parse([value], "argument")
    else:
        config = _parse(value, "argument")
    policy = env.get(ENV_ICE_POLICY, "").strip()
    if policy:
        config = dataclasses.replace(config, transport_policy=_parse_policy(policy, ENV_ICE_POLICY))
    if config.transport_policy == "relay" and not any(s.is_turn for s in config.servers):
        raise ValueError(
            f"{config.source}: iceTransportPolicy 'relay' needs a TURN server (none configured)"
        )
    return config


def rtc_configuration(value: Any = None, *, environ: Mapping[str, str] | None = None) -> Any:
    """``load_ice_config(value, environ=environ).rtc_configuration()``: the aiortc
    ``RTCConfiguration`` to pass as ``RTCConnection(rtcConfiguration=...)``."""
    return load_ice_config(value, environ=environ).rtc_configuration()
