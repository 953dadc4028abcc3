"""What one network namespace holds, as comparable data, and where two such readings differ.

``snapshot(fd, sections)`` reads a namespace over netlink (links, addresses, routes,
rules, neighbours, FDB), plus sysctls and the firewall tools' rulesets (iptables-save,
ip6tables-save, nft: they have no library). Every netlink section is a dict
``{identity: details}`` (``"veth0"``, ``"10.0.0.1/24 dev eth0"``...), so that two readings
line up entry by entry; the rulesets are lists of lines, since order matters in them.
IPv4 and IPv6 are both representable: ``families`` picks which are read.

``differences(a, b)`` lists, one line each, where two ``{node: snapshot}`` disagree.
``routes(ipr)`` is the routes of a namespace as ``Route`` values (what `ip route show
table all` prints, without the local table).

What is left out, because the kernel makes it and no lab decides it: ``lo``, the local
routing table, the default policy rules, neighbours that are not permanent, FDB entries
a bridge makes for its ports' own addresses, multicast FDB entries and a device's
unicast filter (FDB entries without a bridge or a remote), MAC addresses the
caller does not name (random ones), counters.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from harness.kernel import nsutil
from harness.kernel.constants import (
    AF_BRIDGE,
    AF_INET,
    AF_INET6,
    DEFAULT_RULES,
    IFF_LOWER_UP,
    IFF_UP,
    IPVLAN_MODES,
    MACVLAN_MODES,
    NUD_NOARP,
    NUD_PERMANENT,
    ROUTE_TYPES,
    RT_TABLE_LOCAL,
    RTNH_F_ONLINK,
    TUN_TYPES,
)
from harness.kernel.netops import close_quietly, ipr_in, sync_linkwatch
from harness.kernel.rtnl import Rtnl

NETLINK_SECTIONS = ("links", "addresses", "routes", "rules", "neighbours", "fdb")
TOOL_SECTIONS = {"iptables": ["iptables-save"], "ip6tables": ["ip6tables-save"], "nft": ["nft", "list", "ruleset"]}
SECTIONS = NETLINK_SECTIONS + ("iptables", "nft")  # the default: what a lab build decides
# The IFLA_INFO_DATA attributes a lab decides, per kind, and the bridge port flags.
INFO_KEYS = {
    "bridge": ("IFLA_BR_STP_STATE", "IFLA_BR_AGEING_TIME", "IFLA_BR_FORWARD_DELAY", "IFLA_BR_VLAN_FILTERING"),
    "vxlan": ("IFLA_VXLAN_ID", "IFLA_VXLAN_PORT", "IFLA_VXLAN_LEARNING", "IFLA_VXLAN_GROUP", "IFLA_VXLAN_LOCAL",
              "IFLA_VXLAN_LINK"),
    "macvlan": ("IFLA_MACVLAN_MODE",), "ipvlan": ("IFLA_IPVLAN_MODE",), "vlan": ("IFLA_VLAN_ID",),
    "vrf": ("IFLA_VRF_TABLE",), "tun": ("IFLA_TUN_TYPE", "IFLA_TUN_PI"),
}
PORT_KEYS = ("IFLA_BRPORT_LEARNING", "IFLA_BRPORT_UNICAST_FLOOD", "IFLA_BRPORT_MODE", "IFLA_BRPORT_ISOLATED",
             "IFLA_BRPORT_COST")
NAMED_VALUES = {"IFLA_MACVLAN_MODE": MACVLAN_MODES, "IFLA_IPVLAN_MODE": IPVLAN_MODES, "IFLA_TUN_TYPE": TUN_TYPES}
TYPE_NAMES = {number: name for name, number in ROUTE_TYPES.items()}
ZERO = {AF_INET: "0.0.0.0", AF_INET6: "::"}


class StateError(RuntimeError):
    """A namespace could not be read (a firewall tool failed): one line saying which and why."""


@dataclass(frozen=True)
class Route:
    """One route, family-agnostic; ``dst`` is always ``address/length`` (``0.0.0.0/0``, ``::/0``)."""
    family: int
    table: int
    dst: str
    type: str = "unicast"
    scope: int = 0
    proto: int = 0
    via: str | None = None
    dev: str | None = None
    metric: int | None = None
    src: str | None = None
    onlink: bool = False
    nexthops: tuple = ()  # (via, dev, weight - 1, flags) of each hop of a multipath route

    @property
    def key(self) -> str:
        """What tells it apart from the other routes of its namespace: for IPv6 its device too (every
        link with IPv6 has its own fe80::/64, same table, same metric)."""
        word = "" if self.type == "unicast" else f"{self.type} "
        return (f"{word}{self.dst} table {self.table}" + ("" if self.metric is None else f" metric {self.metric}")
                + (f" dev {self.dev}" if self.family == AF_INET6 and self.dev else ""))


def _settle(fd: int) -> None:
    """Make pending linkwatch work effective (a port's carrier, then its bridge's)."""
    rtnl = Rtnl(fd)
    try:
        for _ in range(5):
            if not sync_linkwatch(rtnl):
                return
    finally:
        rtnl.close()


def _nested(msg, *names):
    for name in names:
        if msg is None or isinstance(msg, (bytes, str)):
            return None
        msg = msg.get_attr(name)
    return msg


def _links(raw, names: dict[int, str], macs) -> dict[str, dict]:
    out = {}
    for msg in raw:
        name = msg.get_attr("IFLA_IFNAME")
        if name == "lo":
            continue
        info = msg.get_attr("IFLA_LINKINFO")
        kind = _nested(info, "IFLA_INFO_KIND")
        flags = msg["flags"]
        entry = {"kind": kind, "master": names.get(msg.get_attr("IFLA_MASTER")), "up": bool(flags & IFF_UP),
                 "carrier": bool(flags & IFF_LOWER_UP), "mtu": msg.get_attr("IFLA_MTU")}
        lower = msg.get_attr("IFLA_LINK")
        if lower and lower != msg["index"] and msg.get_attr("IFLA_LINK_NETNSID") is None:
            # Its parent (or veth peer) here. One in another namespace is not named: how a veth
            # was made (in place, or moved) decides whether the kernel reports it at all.
            entry["lower"] = names.get(lower)
        if macs is None or name in macs:
            entry["mac"] = msg.get_attr("IFLA_ADDRESS")
        data = _nested(info, "IFLA_INFO_DATA")
        for key in INFO_KEYS.get(kind, ()):
            value = _nested(data, key)
            if key.endswith("_LINK"):
                value = names.get(value)
            entry[key] = NAMED_VALUES.get(key, {}).get(value, value) if not isinstance(value, str) else value
        port = _nested(info, "IFLA_INFO_SLAVE_DATA")
        if port is not None and not isinstance(port, (bytes, str)):
            entry.update({key: port.get_attr(key) for key in PORT_KEYS})
        out[name] = entry
    return out


def _route(msg, family: int, names: dict[int, str]) -> Route:
    return Route(
        family=family, table=msg.get_attr("RTA_TABLE") or msg["table"],
        dst=f"{msg.get_attr('RTA_DST') or ZERO[family]}/{msg['dst_len']}",
        type=TYPE_NAMES.get(msg["type"], f"type{msg['type']}"), scope=msg["scope"], proto=msg["proto"],
        via=msg.get_attr("RTA_GATEWAY"), dev=names.get(msg.get_attr("RTA_OIF"), msg.get_attr("RTA_OIF")),
        metric=msg.get_attr("RTA_PRIORITY"), src=msg.get_attr("RTA_PREFSRC"),
        onlink=bool(msg["flags"] & RTNH_F_ONLINK),
        nexthops=tuple((hop.get_attr("RTA_GATEWAY"), names.get(hop["oif"]), hop["hops"], hop["flags"])
                       for hop in msg.get_attr("RTA_MULTIPATH") or ()))


def link_names(ipr) -> dict[int, str]:
    return {msg["index"]: msg.get_attr("IFLA_IFNAME") for msg in ipr.get_links()}


def routes(ipr, families: Iterable[int] = (AF_INET, AF_INET6), names: dict[int, str] | None = None) -> list[Route]:
    """Every route of ``families`` but the local table's, read with pyroute2's ``ipr``."""
    names = link_names(ipr) if names is None else names
    found = []
    for family in families:
        for msg in ipr.get_routes(family=family):
            route = _route(msg, family, names)
            if route.table != RT_TABLE_LOCAL:
                found.append(route)
    return found


def _keyed(items) -> dict[str, dict]:
    """{key: details}; a key met twice gets ``#2``, ``#3``... so that nothing is lost."""
    out: dict[str, dict] = {}
    for key, details in sorted(items, key=lambda item: (item[0], repr(item[1]))):
        unique, n = key, 1
        while unique in out:
            n += 1
            unique = f"{key} #{n}"
        out[unique] = details
    return out


def _netlink(ipr, sections, families, macs) -> dict:
    raw = list(ipr.get_links())
    names = {msg["index"]: msg.get_attr("IFLA_IFNAME") for msg in raw}
    out: dict = {}
    if "links" in sections:
        out["links"] = _links(raw, names, macs)
    if "addresses" in sections:
        out["addresses"] = _keyed(
            (f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']} dev {names.get(msg['index'])}",
             {"scope": msg["scope"]})
            for family in families for msg in ipr.get_addr(family=family) if names.get(msg["index"]) != "lo")
    if "routes" in sections:
        out["routes"] = _keyed((route.key, {k: v for k, v in asdict(route).items()
                                            if k not in ("dst", "table", "metric", "family")})
                               for route in routes(ipr, families, names))
    if "rules" in sections:
        items = []
        for family in families:
            for msg in ipr.get_rules(family=family):
                priority, table = msg.get_attr("FRA_PRIORITY") or 0, msg.get_attr("FRA_TABLE") or msg["table"]
                if (priority, table) in DEFAULT_RULES:
                    continue
                key = (f"{priority}: from {msg.get_attr('FRA_SRC') or 'all'}/{msg['src_len']} "
                       f"to {msg.get_attr('FRA_DST') or 'all'}/{msg['dst_len']}")
                for word, attr in (("iif", "FRA_IIFNAME"), ("oif", "FRA_OIFNAME")):
                    if msg.get_attr(attr):
                        key += f" {word} {msg.get_attr(attr)}"
                items.append((key, {"table": table, "action": msg["action"], "proto": msg.get_attr("FRA_PROTOCOL")}))
        out["rules"] = _keyed(items)
    if "neighbours" in sections:
        out["neighbours"] = _keyed(
            (f"{msg.get_attr('NDA_DST')} dev {names.get(msg['ifindex'])}",
             {"lladdr": msg.get_attr("NDA_LLADDR"), "state": msg["state"], "flags": msg["flags"]})
            for family in families for msg in ipr.get_neighbours(family=family) if msg["state"] & NUD_PERMANENT)
    if "fdb" in sections:
        own = {str(msg.get_attr("IFLA_ADDRESS")).lower() for msg in raw}
        items = []
        for msg in ipr.get_neighbours(family=AF_BRIDGE):
            mac, dst = str(msg.get_attr("NDA_LLADDR")).lower(), msg.get_attr("NDA_DST")
            if not msg["state"] & (NUD_PERMANENT | NUD_NOARP):
                continue  # learned: it comes and goes with traffic
            if dst is None and (mac in own or int(mac[:2], 16) & 1 or msg.get_attr("NDA_MASTER") is None):
                # a port's own address, the multicast addresses every device listens to, or a
                # device's unicast filter (a macvlan's address on its parent)
                continue
            key = f"{mac} dev {names.get(msg['ifindex'])}" + (f" dst {dst}" if dst else "")
            if msg.get_attr("NDA_VLAN"):
                key += f" vlan {msg.get_attr('NDA_VLAN')}"
            items.append((key, {"master": names.get(msg.get_attr("NDA_MASTER")), "state": msg["state"],
                                "flags": msg["flags"]}))
        out["fdb"] = _keyed(items)
    return out


def _tool_lines(argv: list[str]) -> list[str] | None:
    """The ruleset a firewall tool prints, without comments, counters and COMMIT; None if it is missing."""
    if shutil.which(argv[0]) is None:
        return None
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise StateError(f"{' '.join(argv)}: {(done.stderr.strip().splitlines() or ['failed'])[0]}")
    text = re.sub(r"\[\d+:\d+\]", "", done.stdout)  # iptables-save counters
    text = re.sub(r"counter packets \d+ bytes \d+", "counter", text)
    return [line.rstrip() for line in text.splitlines()
            if line.strip() and not line.startswith("#") and line.strip() != "COMMIT"]


def snapshot(fd: int, sections: Iterable[str] = SECTIONS, *, families: Iterable[int] = (AF_INET, AF_INET6),
             macs: Iterable[str] | None = None, sysctls: Iterable[str] = (), ipr=None) -> dict:
    """What the namespace ``fd`` holds, section by section (``SECTIONS`` by default).

    ``macs`` names the links whose MAC counts (None: every link's); ``sysctls`` adds a
    section ``sysctls`` with those keys (None for one this kernel lacks); ``ipr``, a
    pyroute2 socket already bound in the namespace, saves opening one.
    """
    sections = tuple(sections)
    unknown = set(sections) - set(NETLINK_SECTIONS) - set(TOOL_SECTIONS)
    if unknown:
        known = ", ".join(NETLINK_SECTIONS + tuple(TOOL_SECTIONS))
        raise ValueError(f"unknown sections {sorted(unknown)} (known: {known})")
    families = tuple(families)
    macs = None if macs is None else set(macs)
    out: dict = {}
    if set(sections) & set(NETLINK_SECTIONS):
        if "links" in sections:
            _settle(fd)
        own = ipr is None
        ipr = ipr_in(fd) if own else ipr
        try:
            out.update(_netlink(ipr, sections, families, macs))
        finally:
            if own:
                close_quietly(ipr)
    sysctls = tuple(sysctls)
    tools = [section for section in sections if section in TOOL_SECTIONS]
    if sysctls or tools:
        with nsutil.entered(fd):
            if sysctls:
                out["sysctls"] = {key: nsutil.read_sysctl(key) if os.path.exists(nsutil.sysctl_path(key)) else None
                                  for key in sysctls}
            for section in tools:
                out[section] = _tool_lines(TOOL_SECTIONS[section])
    return {section: out[section] for section in (*sections, "sysctls") if section in out}


def _changed(mine, theirs, left: str, right: str) -> str:
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return "; ".join(f"{field} {left} {mine.get(field)!r}, {right} {theirs.get(field)!r}"
                         for field in sorted(set(mine) | set(theirs), key=str) if mine.get(field) != theirs.get(field))
    return f"{left} {mine!r}, {right} {theirs!r}"


def differences(a: dict, b: dict, names: tuple[str, str] = ("script build", "harness build")) -> list[str]:
    """One line per disagreement between two ``{node: snapshot}``; [] when they hold the same.

    Each line starts ``NODE SECTION`` and, for an entry of a netlink section or a sysctl,
    ``NODE SECTION KEY``."""
    left, right = names
    out = []
    for node in sorted(set(a) | set(b)):
        if node not in a or node not in b:
            out.append(f"{node}: namespace only in the {left if node in a else right}")
            continue
        for section in [*a[node], *(s for s in b[node] if s not in a[node])]:
            mine, theirs = a[node].get(section), b[node].get(section)
            if mine == theirs:
                continue
            if isinstance(mine, dict) and isinstance(theirs, dict):
                for key in sorted(set(mine) | set(theirs), key=str):
                    if key not in theirs:
                        out.append(f"{node} {section} {key}: only in the {left} {mine[key]!r}")
                    elif key not in mine:
                        out.append(f"{node} {section} {key}: only in the {right} {theirs[key]!r}")
                    elif mine[key] != theirs[key]:
                        out.append(f"{node} {section} {key}: {_changed(mine[key], theirs[key], left, right)}")
            elif isinstance(mine, list) and isinstance(theirs, list):  # a ruleset: order matters
                only_a = [item for item in mine if item not in theirs]
                only_b = [item for item in theirs if item not in mine]
                out.append(f"{node} {section}: only in the {left} {only_a!r}; only in the {right} "
                           f"{only_b!r}" + ("" if only_a or only_b else "; same lines, other order"))
            else:
                out.append(f"{node} {section}: {left} {mine!r}, {right} {theirs!r}")
    return out
