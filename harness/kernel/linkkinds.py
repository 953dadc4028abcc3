"""The kinds of link a lab can make: for each, how it is made and what it needs, in one table.

The builder (``harness.lab.build``), the shell reproducer (``harness.lab.script``) and the
capability checks (``harness.kernel.capabilities``) each read it, so that a kind is
described once: its creation order, which of three ways makes it, whether it needs a
parent link, and the smallest RTM_NEWLINK that proves this kernel can make it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.kernel.constants import LINK_KINDS

RTNL, TUNTAP, PYROUTE2 = "rtnl", "tuntap", "pyroute2"


@dataclass(frozen=True)
class LinkKind:
    name: str
    order: int  # lowers before uppers: a macvlan/ipvlan/vlan needs its parent, a vxlan its underlay device
    made_by: str  # RTNL: the fast client (harness.kernel.rtnl); TUNTAP: the tun driver's ioctls; PYROUTE2
    parent: bool = False  # made on a lower link, in the lower link's namespace (`ip link add link P`)
    probe: dict = field(default_factory=dict)  # pyroute2 link("add") keywords a capability check tries

    @property
    def capability(self) -> str:
        """The name ``capabilities.missing`` knows this kind's check by."""
        return self.name


KINDS = {kind.name: kind for kind in (
    LinkKind("bridge", 0, RTNL, probe={"kind": "bridge"}),
    LinkKind("vrf", 0, PYROUTE2, probe={"kind": "vrf", "vrf_table": 10}),
    LinkKind("dummy", 0, PYROUTE2, probe={"kind": "dummy"}),
    LinkKind("tun", 0, TUNTAP),
    LinkKind("tap", 0, TUNTAP),
    LinkKind("veth", 1, RTNL, probe={"kind": "veth", "peer": {"ifname": "nc-cap-peer"}}),
    LinkKind("vxlan", 2, PYROUTE2, probe={"kind": "vxlan", "vxlan_id": 42, "vxlan_port": 4789}),
    # remote set: a tunnel of its own, not the fallback tunl0 the module makes in every namespace (EEXIST)
    LinkKind("ipip", 2, RTNL, probe={"kind": "ipip", "ipip_remote": "192.0.2.1"}),
    LinkKind("macvlan", 3, PYROUTE2, parent=True, probe={"kind": "macvlan", "macvlan_mode": "bridge"}),
    LinkKind("ipvlan", 3, PYROUTE2, parent=True, probe={"kind": "ipvlan", "ipvlan_mode": 0}),
    LinkKind("vlan", 3, PYROUTE2, parent=True, probe={"kind": "vlan", "vlan_id": 10}),
)}
assert set(KINDS) == set(LINK_KINDS), "harness.kernel.constants.LINK_KINDS and this table name the same kinds"
CREATION_ORDER = {name: kind.order for name, kind in KINDS.items()}
