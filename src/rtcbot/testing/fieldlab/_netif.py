"""Interface settings without the ``ethtool`` binary: offloads off through the ``SIOCETHTOOL``
ioctl, and running a function inside a network namespace (``setns`` on a helper thread)."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

SIOCETHTOOL = 0x8946
CLONE_NEWNET = 0x40000000

# legacy ethtool_value commands: (get, set)
_FEATURES = {
    "tx-checksum": (0x16, 0x17),
    "rx-checksum": (0x14, 0x15),
    "scatter-gather": (0x18, 0x19),
    "tso": (0x1E, 0x1F),
    "gso": (0x23, 0x24),
    "gro": (0x2B, 0x2C),
}
# switched off in this order: without tx checksumming the kernel turns TSO off as well
_OFF_ORDER = ("tx-checksum", "tso", "gso", "gro", "scatter-gather", "rx-checksum")


def _ethtool(sock: socket.socket, ifname: str, cmd: int, data: int = 0) -> int:
    value = ctypes.create_string_buffer(struct.pack("II", cmd, data))
    ifreq = struct.pack("16sP", ifname.encode()[:15], ctypes.addressof(value))
    ifreq += b"\0" * (40 - len(ifreq))
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    return struct.unpack("II", value.raw[:8])[1]


def offloads(ifname: str) -> dict[str, bool]:
    """Which offloads are on for ``ifname`` in the calling thread's namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        return {name: bool(_ethtool(sock, ifname, get)) for name, (get, _) in _FEATURES.items()}


def offloads_off(ifname: str) -> None:
    """Turn checksum and segmentation offloads off on ``ifname`` (a veth), so that a packet
    socket sees wire-sized frames with real checksums. Raises OSError if tx checksumming
    cannot be turned off; the other features are best effort."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name in _OFF_ORDER:
            try:
                _ethtool(sock, ifname, _FEATURES[name][1], 0)
            except OSError as exc:
                if name == "tx-checksum" or exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise


def in_netns(ns: str, fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` run on a new thread that first joined network namespace ``ns`` (named as
    by ``ip netns add``). Sockets made by ``fn`` belong to that namespace."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    code = ctypes.get_errno()
                    raise OSError(code, f"setns({ns}): {os.strerror(code)}")
            finally:
                os.close(fd)
            outcome["value"] = fn(*args)
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"netns-{ns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
