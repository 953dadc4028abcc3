"""The kernel's numbers and names, each defined once (linux/if.h, rtnetlink.h, neighbour.h, if_addr.h).

Every other module imports them from here; netlink message and attribute numbers of
the small client stay in ``harness.kernel.rtnl``, which encodes them.
"""
from __future__ import annotations

import socket

# -- families -------------------------------------------------------------------------
AF_INET, AF_INET6 = socket.AF_INET, socket.AF_INET6
AF_BRIDGE = 7  # PF_BRIDGE: the bridge's FDB entries are neighbours of this family

# -- link flags (IFF_*, linux/if.h) -------------------------------------------------------
IFF_UP = 0x1
IFF_NOARP = 0x80
IFF_RUNNING = 0x40
IFF_LOWER_UP = 0x10000
IFNAMSIZ = 15  # usable characters of IFNAMSIZ (16 with the NUL)

# -- multicast groups (RTMGRP_*) -------------------------------------------------------------
RTMGRP_LINK = 0x1
RTMGRP_NEIGH = 0x4
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100

# -- addresses (IFA_F_*, if_addr.h) ------------------------------------------------------------
IFA_F_TENTATIVE = 0x40  # an IPv6 address before duplicate address detection ends (or is skipped)

# -- neighbours (NUD_* states, NTF_* flags) -----------------------------------------------
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NTF_SELF, NTF_MASTER, NTF_PROXY = 0x02, 0x04, 0x08

# -- IPv6 in lab namespaces (net.ipv6.conf.*, Documentation/networking/ip-sysctl.rst) -------------
# Labs keep IPv6 (a dual-stack plugin puts its addresses on their links); only the noise is
# silenced, for `all` and for `default` (each link made afterwards copies it): no router
# advertisement taken or solicited, no autoconfigured address, no duplicate address detection
# (its neighbour solicitations). MLD reports have no sysctl (measured on 6.18: a link sends an
# MLDv2 report for its solicited-node group when it comes up and when an address is added), and
# they teach a bridge's FDB the sender's MAC (suites/test_bridge.py's learning and flooding
# checks failed with them): so no link-local address by default (addr_gen_mode 1), which is the
# one group a link without addresses would report. A lab whose links need one (cni-host: ptp's
# IPv6 gateway is the host veth's link-local address) declares net.ipv6.conf.default.addr_gen_mode
# 0 in its node's sysctls, written when the node is made (harness.lab.live.namespace_defaults).
# The unsolicited report's repetition comes within 10 ms instead of up to 1 s later, so a burst
# ends with the build instead of landing in a test's window.
IPV6_QUIET_SYSCTLS = {
    f"net.ipv6.conf.{scope}.{key}": value
    for scope in ("all", "default")
    for key, value in (("accept_ra", 0), ("autoconf", 0), ("router_solicitations", 0), ("accept_dad", 0),
                       ("dad_transmits", 0), ("addr_gen_mode", 1), ("mldv1_unsolicited_report_interval", 10),
                       ("mldv2_unsolicited_report_interval", 10))
}

# -- routes ---------------------------------------------------------------------------------
RT_TABLE_DEFAULT, RT_TABLE_MAIN, RT_TABLE_LOCAL = 253, 254, 255
TABLES = {"main": RT_TABLE_MAIN, "local": RT_TABLE_LOCAL, "default": RT_TABLE_DEFAULT}
TABLE_NAMES = tuple(TABLES)
SCOPES = {"link": 253, "host": 254, "global": 0}  # RT_SCOPE_*
ROUTE_TYPES = {"unicast": 1, "blackhole": 6, "unreachable": 7, "prohibit": 8}  # RTN_*
RTPROT_KERNEL = 2  # a route the kernel made for an address (a connected subnet)
RTPROT_BOOT = 3  # what `ip route add` marks its routes with
RTPROT_BIRD = 12  # a route the BIRD daemon installed (Calico's BGP: `proto bird`)
ROUTE_PROTOCOLS = {"kernel": RTPROT_KERNEL, "boot": RTPROT_BOOT, "static": 4, "bird": RTPROT_BIRD}
RTNH_F_ONLINK = 4
DEFAULT_RULES = {(0, RT_TABLE_LOCAL), (32766, RT_TABLE_MAIN), (32767, RT_TABLE_DEFAULT)}  # (priority, table), fresh netns


def table_id(table) -> int:
    """A routing table's number, from a number, a digit string or a name (main when None)."""
    if table is None:
        return RT_TABLE_MAIN
    if isinstance(table, int):
        return table
    if str(table).isdigit():
        return int(table)
    return TABLES[table]


# -- link kinds (how each is made: harness.kernel.linkkinds) ----------------------------------
LINK_KINDS = ("veth", "bridge", "macvlan", "ipvlan", "vxlan", "tun", "tap", "vlan", "dummy", "vrf", "ipip")
LINK_MODES = {"macvlan": ("private", "vepa", "bridge", "passthru", "source"), "ipvlan": ("l2", "l3", "l3s")}
MACVLAN_MODES = {1: "private", 2: "vepa", 4: "bridge", 8: "passthru", 16: "source"}  # MACVLAN_MODE_* bits
IPVLAN_MODES = {0: "l2", 1: "l3", 2: "l3s"}
TUN_TYPES = {1: "tun", 2: "tap"}  # IFF_TUN, IFF_TAP
BRIDGE_PORT_STATES = {0: "disabled", 1: "listening", 2: "learning", 3: "forwarding", 4: "blocking"}
