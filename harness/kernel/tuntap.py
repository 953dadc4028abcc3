"""Persistent tun/tap devices, made as `ip tuntap add` makes them."""
from __future__ import annotations

import fcntl
import os
import struct

TUNSETIFF, TUNSETPERSIST = 0x400454CA, 0x400454CB
IFF_TUN, IFF_TAP, IFF_NO_PI = 0x0001, 0x0002, 0x1000


def make_persistent_tuntap(name: str, kind: str) -> None:
    """Create a persistent tun or tap device in the calling thread's namespace.

    What `ip tuntap add NAME mode tun|tap` does: TUNSETIFF with IFF_NO_PI (no
    packet-information header), then TUNSETPERSIST so it outlives the descriptor.
    """
    flags = (IFF_TUN if kind == "tun" else IFF_TAP) | IFF_NO_PI
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), flags))
        fcntl.ioctl(fd, TUNSETPERSIST, 1)
    finally:
        os.close(fd)
