"""What a lab means, checked section by section: one small function per section of a node.

Each check reads the lab and raises ``LabError`` with one line (``FILE: FIELD: what is
wrong``) at the first fault; none changes anything. ``check(lab)`` runs them in the
order a reader meets the file: node names, then every node's links (so that any node
may name any link), then each node's masters and parents, routes, rules, neighbours,
FDB, iptables and sysctls.
"""
from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field

from harness.errors import LabError
from harness.kernel.constants import IFNAMSIZ, LINK_KINDS, LINK_MODES, ROUTE_TYPES, TABLE_NAMES
from harness.lab.model import Lab, Node

_NAME_OK = re.compile(r"^[^/:\s]+$")
_SYSCTL_OK = re.compile(r"^[a-z0-9_]+(\.[A-Za-z0-9_.@-]+)+$")
IPTABLES_ARITY = {"-t": 1, "--table": 1, "-A": 1, "--append": 1, "-I": 1, "--insert": 1,
                  "-N": 1, "--new-chain": 1, "-P": 2, "--policy": 2}
IPTABLES_ADDING = ("-A", "-I", "-N", "-P", "--append", "--insert", "--new-chain", "--policy")


# ---------------------------------------------------------------- values

def _interface(text: str, where: str, source: str):
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        raise LabError(f"{source}: {where}: invalid CIDR {text!r}") from None


def _address(text: str, where: str, source: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise LabError(f"{source}: {where}: invalid IP address {text!r}") from None


def _network(text: str, where: str, source: str):
    if text == "default":
        return ipaddress.ip_network("0.0.0.0/0")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise LabError(f"{source}: {where}: invalid destination {text!r} ({exc})") from None


def _table(value, where: str, source: str) -> None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32):
        return
    if isinstance(value, str) and (value.isdigit() or value in TABLE_NAMES):
        return
    raise LabError(f"{source}: {where}: unknown table {value!r} (a number or one of {', '.join(TABLE_NAMES)})")


def _no_link(src: str, where: str, name, node: str) -> LabError:
    return LabError(f"{src}: {where}: no link {name!r} in node {node!r}")


# ---------------------------------------------------------------- the links of the lab

@dataclass
class Links:
    """Which links exist where (node -> name -> (kind, field)), and the subnets connected in each node."""
    source: str
    names: list[str]
    where: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    connected: dict[str, list] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)  # address -> node/link holding it

    def add(self, node: str, name, kind: str, where: str, addresses: list[str]) -> None:
        src = self.source
        if node not in self.where:
            raise LabError(f"{src}: {where}: unknown node {node!r} (nodes: {', '.join(self.names)})")
        if not isinstance(name, str):
            raise LabError(f"{src}: {where}.name: {name!r} is not a string")
        if not name or len(name) > IFNAMSIZ:
            raise LabError(f"{src}: {where}.name: {name!r} is {len(name)} characters; "
                           f"Linux interface names are 1 to {IFNAMSIZ}")
        if not _NAME_OK.match(name) or name in (".", ".."):
            raise LabError(f"{src}: {where}.name: {name!r} is not a valid interface name")
        if name in self.where[node]:
            raise LabError(f"{src}: {where}.name: {name!r} is defined twice in node {node!r}")
        self.where[node][name] = (kind, where)
        for i, text in enumerate(addresses):
            iface = _interface(text, f"{where}.addresses[{i}]", src)
            key = str(iface.ip)
            if key in self.addresses:
                raise LabError(f"{src}: {where}.addresses[{i}]: duplicate address {key} "
                               f"(already at {self.addresses[key]})")
            self.addresses[key] = f"{node}/{name}"
            self.connected[node].append((iface.network, name))


def check_node_names(lab: Lab) -> None:
    src, names = lab.source, lab.node_names
    for name in names:
        if names.count(name) > 1:
            raise LabError(f"{src}: nodes.{name}: node {name!r} is defined twice")
    for name in names:
        if not _NAME_OK.match(name) or len(name) > 255 or name in (".", ".."):
            raise LabError(f"{src}: nodes.{name}: not a usable namespace name")


def check_links(lab: Lab) -> Links:
    """Every node's links (kinds, names, addresses, what each kind needs); the index of them."""
    src = lab.source
    links = Links(src, lab.node_names, {n: {} for n in lab.node_names}, {n: [] for n in lab.node_names})
    for node in lab.nodes:
        for i, link in enumerate(node.links):
            where = f"nodes.{node.name}.links[{i}]"
            if link.kind not in LINK_KINDS:
                raise LabError(f"{src}: {where}.kind: unknown kind {link.kind!r}")
            links.add(node.name, link.name, link.kind, where, link.addresses)
            if link.kind == "veth":
                if link.peer is None:
                    raise LabError(f"{src}: {where}.peer: a veth needs a peer (veths are made in pairs)")
                links.add(link.peer.node or node.name, link.peer.name, "veth", f"{where}.peer", link.peer.addresses)
            elif link.peer is not None:
                raise LabError(f"{src}: {where}.peer: only a veth has a peer, not a {link.kind}")
            if link.kind in ("macvlan", "ipvlan", "vlan") and not link.parent:
                raise LabError(f"{src}: {where}.parent: a {link.kind} needs a parent link")
            if link.kind == "vxlan" and link.vni is None:
                raise LabError(f"{src}: {where}.vxlan.id: a vxlan needs a VNI")
            if link.mode is not None and link.mode not in LINK_MODES.get(link.kind, ()):
                known = LINK_MODES.get(link.kind)
                raise LabError(f"{src}: {where}.mode: {link.mode!r} is not a {link.kind} mode"
                               + (f" ({', '.join(known)})" if known else f" (a {link.kind} has no mode)"))
            for key, value in (("local", link.local), ("remote", link.remote)):
                if value is not None:
                    _address(value, f"{where}.vxlan.{key}", src)
    return links


# ---------------------------------------------------------------- one node's sections

def check_masters_and_parents(lab: Lab, node: Node, links: Links) -> None:
    src = lab.source
    for i, link in enumerate(node.links):
        where = f"nodes.{node.name}.links[{i}]"
        for owner, master, w in ((node.name, link.master, where),
                                 (link.peer.node or node.name if link.peer else None,
                                  link.peer.master if link.peer else None, f"{where}.peer")):
            if master is None:
                continue
            kind = links.where[owner].get(master, (None,))[0]
            if kind is None:
                raise _no_link(src, f"{w}.master", master, owner)
            if kind not in ("bridge", "vrf"):
                raise LabError(f"{src}: {w}.master: {master!r} is a {kind}, not a bridge")
        if link.parent:
            pnode = link.parent_node or node.name
            if pnode not in links.where:
                raise LabError(f"{src}: {where}.parent: unknown node {pnode!r}")
            if link.parent not in links.where[pnode]:
                raise _no_link(src, f"{where}.parent", link.parent, pnode)


def _reachable(node: Node, links: Links, gateway, dev: str | None) -> list[str]:
    """The links of ``node`` that reach ``gateway`` (on ``dev`` if given): a connected subnet, or a
    link route with no gateway (a /32 "X dev D scope link" makes X reachable on D: Calico's 169.254.1.1)."""
    reach = [name for net, name in links.connected[node.name] if gateway in net and dev in (None, name)]
    return reach + [r.dev for r in node.routes if r.dev and r.via is None and r.type == "unicast"
                    and r.dst != "default" and gateway in ipaddress.ip_network(r.dst, strict=False)
                    and dev in (None, r.dev)]


def check_routes(lab: Lab, node: Node, links: Links) -> None:
    src, mine = lab.source, links.where[node.name]
    for i, route in enumerate(node.routes):
        where = f"nodes.{node.name}.routes[{i}]"
        dst_net = _network(route.dst, f"{where}.dst", src)
        _table(route.table, f"{where}.table", src)
        if route.type not in ROUTE_TYPES:
            raise LabError(f"{src}: {where}.type: unknown route type {route.type!r}")
        if route.dev is not None and route.dev not in mine:
            raise _no_link(src, f"{where}.dev", route.dev, node.name)
        hops = route.nexthops or ([{"via": route.via, "dev": route.dev}] if route.via else [])
        for j, hop in enumerate(hops):
            hw = f"{where}.nexthops[{j}]" if route.nexthops else f"{where}.via"
            if hop.get("dev") is not None and hop["dev"] not in mine:
                raise _no_link(src, hw, hop["dev"], node.name)
            if hop.get("via") is None:
                continue
            gateway = _address(hop["via"], hw, src)
            if gateway.version != dst_net.version:
                raise LabError(f"{src}: {hw}: gateway {gateway} is IPv{gateway.version} but the destination "
                               f"{route.dst} is IPv{dst_net.version}")
            if not route.onlink and not _reachable(node, links, gateway, hop.get("dev")):
                raise LabError(f"{src}: {hw}: gateway {gateway} is unreachable from node {node.name!r} "
                               "(no connected subnet or link route holds it; add an address or onlink)")
        if route.src is not None:
            _address(route.src, f"{where}.src", src)


def check_rules(lab: Lab, node: Node, links: Links) -> None:
    src, mine = lab.source, links.where[node.name]
    for i, rule in enumerate(node.rules):
        where = f"nodes.{node.name}.rules[{i}]"
        _table(rule.table, f"{where}.table", src)
        for key, value in (("from", rule.src), ("to", rule.dst)):
            if value is not None and value != "all":
                _network(value, f"{where}.{key}", src)
        for key, value in (("iif", rule.iif), ("oif", rule.oif)):
            if value is not None and value not in mine:
                raise _no_link(src, f"{where}.{key}", value, node.name)


def check_neighbours(lab: Lab, node: Node, links: Links) -> None:
    for i, neigh in enumerate(node.neighbours):
        where = f"nodes.{node.name}.neighbours[{i}]"
        _address(neigh.dst, f"{where}.dst", lab.source)
        if neigh.dev not in links.where[node.name]:
            raise _no_link(lab.source, f"{where}.dev", neigh.dev, node.name)


def check_fdb(lab: Lab, node: Node, links: Links) -> None:
    for i, entry in enumerate(node.fdb):
        where = f"nodes.{node.name}.fdb[{i}]"
        if entry.dev not in links.where[node.name]:
            raise _no_link(lab.source, f"{where}.dev", entry.dev, node.name)
        if entry.dst is not None:
            _address(entry.dst, f"{where}.dst", lab.source)


def check_iptables(lab: Lab, node: Node, links: Links) -> None:
    for i, rule in enumerate(node.iptables):
        where = f"{lab.source}: nodes.{node.name}.iptables[{i}]"
        try:
            argv = shlex.split(rule)
        except ValueError as exc:
            raise LabError(f"{where}: {exc}") from None
        for at, arg in enumerate(argv):
            need = IPTABLES_ARITY.get(arg, 0)
            if len(argv) - at - 1 < need:
                raise LabError(f"{where}: {arg} needs {need} argument{'s' if need > 1 else ''}: {rule!r}")
        if not any(a in IPTABLES_ADDING for a in argv):
            raise LabError(f"{where}: a rule must add something (-A, -I, -N or -P): {rule!r}")


def check_sysctls(lab: Lab, node: Node, links: Links) -> None:
    for key in node.sysctls:
        if not _SYSCTL_OK.match(key) and "/" not in key:
            raise LabError(f"{lab.source}: nodes.{node.name}.sysctls: {key!r} is not a sysctl name")


NODE_CHECKS = (check_masters_and_parents, check_routes, check_rules, check_neighbours, check_fdb, check_iptables,
               check_sysctls)


def check(lab: Lab) -> None:
    """Every check, once, in the order the first fault is reported."""
    check_node_names(lab)
    links = check_links(lab)
    for node in lab.nodes:
        for node_check in NODE_CHECKS:
            node_check(lab, node, links)
