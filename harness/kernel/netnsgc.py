"""Waiting for the kernel to finish destroying network namespaces.

A namespace whose last reference goes (its fd closed, its /run/netns mount gone) is
destroyed later, by one ordered workqueue that takes everything released so far as a
batch and tears it down, holding the RTNL lock for much of it: a netlink request made
meanwhile waits. Tearing down a VXLAN lab costs the kernel 100-250 ms that way, which
lands in whatever builds next. A benchmark that times builds must start each one with
the previous teardown finished, whichever method made it.

There is no event for "destroyed". There is one for its start: when a namespace that
has an id (nsid) in ours is destroyed, ours is sent RTM_DELNSID as its batch begins,
and a batch begins only when the one before it is done. And a namespace is not always
released when its fd is closed: a socket opened in it (netlink, packet) holds it until
the socket is freed, after an RCU grace period. So canaries, one after another, each
released once the one before's DELNSID came:
1. the first's batch ends with rcu_barrier(): every socket freed by then has let go of
   its namespace, which is now queued;
2. the second's batch holds what was queued meanwhile (or it ran before);
3. the third's DELNSID means the second's batch, and so everything released before the
   call, is done.
"""
from __future__ import annotations

import os
import socket
import struct

from harness.kernel import nsutil
from harness.kernel.deadline import Deadline
from harness.kernel.rtnl import SOL_NETLINK, Rtnl, pack_attr, unpack_attrs

RTM_NEWNSID, RTM_DELNSID = 88, 89
NETNSA_NSID, NETNSA_FD = 1, 3
RTNLGRP_NSID = 28
CANARIES = 3
NETLINK_ADD_MEMBERSHIP = 1
_RTGENMSG = struct.pack("=B3x", socket.AF_UNSPEC)


def _nsid_events(sock: socket.socket, deadline: Deadline):
    """(type, nsid) of each NSID notification until ``deadline``."""
    while deadline.wait([sock])[0]:
        data = sock.recv(65536)
        at = 0
        while at + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, at)
            payload = data[at + 16:at + length]
            at += (length + 3) & ~3
            if kind in (RTM_NEWNSID, RTM_DELNSID):
                for attr, value in unpack_attrs(payload[4:]):
                    if attr == NETNSA_NSID:
                        yield kind, struct.unpack("=i", value)[0]


def _release_canary(rtnl: Rtnl, watch: socket.socket, deadline: Deadline) -> int | None:
    """Make a namespace, give it an id here, release it; its nsid (None if none was announced)."""
    canary = nsutil.create_netns()
    try:
        rtnl.request(RTM_NEWNSID, _RTGENMSG + pack_attr(NETNSA_FD, struct.pack("=I", canary))
                     + pack_attr(NETNSA_NSID, struct.pack("=i", -1)))
    finally:
        os.close(canary)
    return next((nsid for kind, nsid in _nsid_events(watch, deadline) if kind == RTM_NEWNSID), None)


def cleanup_barrier(timeout: float = 5.0) -> bool:
    """Return True once every network namespace released before the call is destroyed;
    False if that was not seen within ``timeout`` seconds."""
    deadline = Deadline(timeout)
    watch = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
    rtnl = Rtnl()
    try:
        watch.bind((0, 0))
        watch.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, RTNLGRP_NSID)
        for _ in range(CANARIES):
            nsid = _release_canary(rtnl, watch, deadline)
            if nsid is None or not any(kind == RTM_DELNSID and got == nsid
                                       for kind, got in _nsid_events(watch, deadline)):
                return False
        return True
    finally:
        rtnl.close()
        watch.close()

