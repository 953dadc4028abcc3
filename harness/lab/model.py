"""Labs as data: the objects a lab is made of.

A lab is a set of nodes (network namespaces; ``host`` is the lab's host) holding
links, addresses, routes, policy rules, neighbours, FDB entries, sysctls and
firewall rules. It is usually read from a YAML file (see ``labfile``) but can be
built in Python directly::

    Lab("demo", nodes=[Node("host"), Node("ns1", links=[Link("eth0", "veth",
        addresses=["10.0.0.2/24"], peer=Peer("veth0", node="host"))])])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.kernel.bridge import FdbEntry  # noqa: F401 - a lab's fdb entries are the kernel's kind

HOST = "host"


@dataclass
class PortOptions:
    """Bridge port flags (``bridge link set``)."""
    learning: bool | None = None
    flood: bool | None = None
    hairpin: bool | None = None
    isolated: bool | None = None
    cost: int | None = None


@dataclass
class BridgeOptions:
    stp: bool | None = None
    ageing_time: float | None = None  # seconds
    forward_delay: float | None = None  # seconds
    vlan_filtering: bool | None = None


@dataclass(kw_only=True)
class Settings:
    """What a link and a veth's peer both set: addresses, MAC, MTU, state, bridge (or VRF) and port flags."""
    addresses: list[str] = field(default_factory=list)
    mac: str | None = None
    mtu: int | None = None
    up: bool = True
    master: str | None = None
    port: PortOptions | None = None


@dataclass
class Peer(Settings):
    """The other end of a veth: its name, node and settings."""
    name: str
    node: str | None = None  # default: the node of the veth


@dataclass
class Link(Settings):
    name: str
    kind: str  # veth bridge macvlan ipvlan vxlan tun tap vlan dummy vrf ipip
    peer: Peer | None = None  # veth
    bridge: BridgeOptions | None = None  # bridge
    parent: str | None = None  # macvlan/ipvlan/vlan: the lower link; vxlan, ipip: the underlay device
    parent_node: str | None = None  # where the parent lives (default: this node)
    mode: str | None = None  # macvlan/ipvlan mode
    vni: int | None = None  # vxlan id, vlan id
    port_udp: int | None = None  # vxlan dstport
    local: str | None = None  # vxlan, ipip local
    remote: str | None = None  # vxlan, ipip remote
    ttl: int | None = None  # ipip ttl (none: the inner packet's)
    vxlan_learning: bool | None = None
    table: int | None = None  # vrf


@dataclass
class Route:
    dst: str  # CIDR or "default"
    via: str | None = None
    dev: str | None = None
    type: str = "unicast"  # unicast blackhole unreachable prohibit
    scope: str | None = None  # link host global
    table: int | str | None = None
    metric: int | None = None
    src: str | None = None
    onlink: bool = False
    proto: str | int | None = None  # who installed it (`proto bird`): a ROUTE_PROTOCOLS name or number; boot
    nexthops: list[dict[str, Any]] = field(default_factory=list)  # multipath: [{via, dev, weight}]


@dataclass
class Rule:
    priority: int | None = None
    src: str | None = None  # "from"
    dst: str | None = None  # "to"
    iif: str | None = None
    oif: str | None = None
    table: int | str = "main"


@dataclass
class Neighbour:
    dst: str
    dev: str
    lladdr: str | None = None
    proxy: bool = False


@dataclass
class Node:
    name: str
    links: list[Link] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    fdb: list[FdbEntry] = field(default_factory=list)
    sysctls: dict[str, Any] = field(default_factory=dict)
    iptables: list[str] = field(default_factory=list)  # "-t nat -A POSTROUTING ..."
    nftables: str | None = None  # a ruleset for ``nft -f``


@dataclass
class Lab:
    name: str
    nodes: list[Node] = field(default_factory=list)
    document: str | None = None
    section: str | None = None
    summary: str | None = None
    source: str = "<python>"  # the file it was read from

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def node_names(self) -> list[str]:
        return [node.name for node in self.nodes]

    def ensure_host(self) -> None:
        if HOST not in self.node_names:
            self.nodes.insert(0, Node(HOST))
        else:  # the host always comes first: peers and parents may live there
            self.nodes.sort(key=lambda node: node.name != HOST)

    def interfaces(self):
        """Every (node, link name) the lab creates, veth peers included."""
        for node in self.nodes:
            for link in node.links:
                yield node.name, link.name
                if link.peer is not None:
                    yield link.peer.node or node.name, link.peer.name
