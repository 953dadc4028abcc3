"""Small netlink helpers shared by the sandbox, the builder and the probe engine."""
from __future__ import annotations

import os
import socket

from pyroute2 import IPRoute

from harness.kernel import nsutil
from harness.kernel.deadline import Deadline

# Re-exported: suites and older callers import these from here.
from harness.kernel.constants import (  # noqa: F401
    AF_BRIDGE,
    IFA_F_TENTATIVE,
    IFF_LOWER_UP,
    IFF_RUNNING,
    IFF_UP,
    NUD_NOARP,
    NUD_PERMANENT,
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_LINK,
    RTMGRP_NEIGH,
)


def set_link_up_by_name(name: str) -> None:
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")


def ipr_in(fd: int) -> IPRoute:
    """An IPRoute whose socket lives in the namespace ``fd`` (no helper process)."""
    with nsutil.entered(fd):
        return IPRoute()


class NetlinkWatch:
    """Multicast rtnetlink notifications from one namespace, to wait on with a deadline.

    Subscribe first, then check the state, then wait: an event between the check and
    the wait is not lost because the socket was already listening.
    """

    def __init__(self, netns_fd: int, groups: int):
        with nsutil.entered(netns_fd):
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                      socket.NETLINK_ROUTE)
        self.sock.bind((0, groups))
        self.sock.setblocking(False)

    def drain(self) -> int:
        count = 0
        while True:
            try:
                self.sock.recv(65536)
                count += 1
            except BlockingIOError:
                return count

    def wait_for(self, predicate, timeout: float) -> bool:
        """True as soon as ``predicate()`` holds, checked again on every notification."""
        wait = Deadline(timeout, "link wait")
        for _ in wait.rounds([self.sock]):
            self.drain()
            if predicate():
                wait.met()
                return True
        return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def link_state(msg) -> dict:
    flags = msg["flags"]
    return {
        "index": msg["index"],
        "name": msg.get_attr("IFLA_IFNAME"),
        "up": bool(flags & IFF_UP),
        "lower_up": bool(flags & IFF_LOWER_UP),
        "running": bool(flags & IFF_RUNNING),
        "operstate": msg.get_attr("IFLA_OPERSTATE"),
    }


def links_settling(rtnl) -> dict[int, str]:
    """Links (index -> name) that have carrier but whose operstate is not yet UP.

    The kernel's linkwatch makes a carrier change effective (operstate, qdisc
    activation, a bridge port leaving "disabled") from a work queue that it rate
    limits to once a second for non-urgent events, so a lab is not ready while
    this is not empty. ``rtnl`` is a ``harness.kernel.rtnl.Rtnl`` bound in the namespace.
    """
    return {index: name for index, name, flags in rtnl.links()
            if flags & IFF_UP and flags & IFF_LOWER_UP and not flags & IFF_RUNNING}


def addresses_settling(rtnl) -> list[str]:
    """IPv6 addresses still tentative on running links ("ADDR dev INDEX").

    The labs skip duplicate address detection, yet an address stays tentative until the
    kernel's DAD work has run (a few ms, more under load): until then its node neither has
    joined the solicited-node group (a neighbour solicitation for it is dropped, and the
    next comes a second later) nor uses it as a source. A link without carrier keeps its
    addresses tentative until it has one, so only running links count.
    """
    running = {index for index, _, flags in rtnl.links() if flags & IFF_RUNNING}
    return [f"{address} dev {index}" for index, address, flags in rtnl.addresses(socket.AF_INET6)
            if flags & IFA_F_TENTATIVE and index in running]


def settle_addresses(fd: int, rtnl, timeout: float) -> list[str]:
    """Wait (on address notifications, with a deadline) until no IPv6 address is tentative
    on a running link of the namespace ``fd``; return those still tentative (none when settled)."""
    if not addresses_settling(rtnl):
        return []
    with NetlinkWatch(fd, RTMGRP_IPV6_IFADDR | RTMGRP_LINK) as watch:
        watch.wait_for(lambda: not addresses_settling(rtnl), timeout)
    return addresses_settling(rtnl)


def settle_links(fd: int, rtnl, timeout: float) -> dict[int, str]:
    """Make pending linkwatch work effective and, where RTM_GETLINK does not (older kernels: 5.10 and 6.1
    left a just-attached TUN's qdisc inactive, dropping the first packets), wait for it on link
    notifications with a deadline; return the links still settling (none when settled)."""
    if not sync_linkwatch(rtnl):
        return {}
    with NetlinkWatch(fd, RTMGRP_LINK) as watch:
        watch.wait_for(lambda: not sync_linkwatch(rtnl), timeout)
    return links_settling(rtnl)


def sync_linkwatch(rtnl) -> dict[int, str]:
    """Make pending linkwatch events effective now; return the links still settling.

    RTM_GETLINK for one device (not a dump) runs linkwatch_sync_dev() on it, so
    there is no need to wait up to a second for the rate-limited work queue. A
    veth whose ifindex equals its peer's (both 2 in two fresh namespaces) does not
    count as urgent for linkwatch and would otherwise wait the full second.
    """
    pending = links_settling(rtnl)
    for index in pending:
        rtnl.get_link(index)
    return links_settling(rtnl) if pending else pending


def close_quietly(*closables) -> None:
    for item in closables:
        try:
            item.close()
        except (OSError, RuntimeError, ValueError):
            pass


def safe_close_fd(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
