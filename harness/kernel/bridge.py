"""Reading and steering a Linux bridge of a live lab: FDB, port state, port flags."""
from __future__ import annotations

from dataclasses import dataclass

from harness.kernel.constants import AF_BRIDGE, NUD_PERMANENT, RTMGRP_LINK, RTMGRP_NEIGH
from harness.kernel.constants import BRIDGE_PORT_STATES as PORT_STATES
from harness.kernel.netops import NetlinkWatch


@dataclass(frozen=True)
class FdbEntry:
    """One FDB entry: as a lab file asks for it (``fdb:``), or as a bridge's FDB holds it (``fdb()``)."""
    mac: str
    dev: str  # the port (or the bridge itself, or a vxlan device) the MAC sits behind
    dst: str | None = None  # a vxlan remote
    master: bool = False  # in the bridge's FDB rather than the device's own
    local: bool = False  # a port's own address (permanent, never ages)
    vlan: int | None = None

    @property
    def port(self) -> str:
        """The bridge port: what ``dev`` is called when the entry is a bridge's."""
        return self.dev


def fdb(live, node: str, bridge: str) -> list[FdbEntry]:
    """The bridge's forwarding database, as `bridge fdb show br BRIDGE` lists its master entries."""
    ipr = live.ipr(node)
    bridge_index = live.ifindex(node, bridge)
    names = {msg["index"]: msg.get_attr("IFLA_IFNAME") for msg in ipr.get_links()}
    entries = []
    for msg in ipr.get_neighbours(family=AF_BRIDGE):
        master = msg.get_attr("NDA_MASTER")
        on_bridge = msg["ifindex"] == bridge_index and master in (None, bridge_index)
        if master != bridge_index and not on_bridge:
            continue
        entries.append(FdbEntry(mac=msg.get_attr("NDA_LLADDR"), dev=names.get(msg["ifindex"], "?"), master=True,
                                local=bool(msg["state"] & NUD_PERMANENT), vlan=msg.get_attr("NDA_VLAN")))
    return entries


def learned(live, node: str, bridge: str) -> dict[str, str]:
    """MAC -> port for entries the bridge learned (not the ports' own local entries)."""
    return {e.mac: e.port for e in fdb(live, node, bridge) if not e.local}


def wait_fdb(live, node: str, bridge: str, predicate, timeout: float) -> bool:
    """Wait on neighbour notifications until ``predicate(learned_entries)`` holds."""
    with NetlinkWatch(live.fd(node), RTMGRP_NEIGH) as watch:
        return watch.wait_for(lambda: predicate(learned(live, node, bridge)), timeout)


def _port_data(live, node: str, port: str):
    """The bridge_slave data of a port (what `ip -d link show` prints after bridge_slave)."""
    info = live.link(node, port).get_attr("IFLA_LINKINFO")
    if info is None or info.get_attr("IFLA_INFO_SLAVE_KIND") != "bridge":
        return None
    return info.get_attr("IFLA_INFO_SLAVE_DATA")


def port_state(live, node: str, port: str) -> str:
    data = _port_data(live, node, port)
    if data is None:
        return "not a port"
    return PORT_STATES.get(data.get_attr("IFLA_BRPORT_STATE"), "unknown")


def wait_port_state(live, node: str, port: str, state: str, timeout: float) -> bool:
    with NetlinkWatch(live.fd(node), RTMGRP_LINK) as watch:
        return watch.wait_for(lambda: port_state(live, node, port) == state, timeout)


def set_ageing_time(live, node: str, bridge: str, seconds: float) -> None:
    live.ipr(node).link("set", index=live.ifindex(node, bridge), kind="bridge",
                        br_ageing_time=int(round(seconds * 100)))


def ageing_time(live, node: str, bridge: str) -> float:
    data = live.link(node, bridge).get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
    return data.get_attr("IFLA_BR_AGEING_TIME") / 100.0


def set_port(live, node: str, port: str, **flags) -> None:
    """Set bridge port flags: learning, flood (unknown unicast), hairpin, isolated."""
    names = {"flood": "unicast_flood", "hairpin": "mode"}
    live.ipr(node).brport("set", index=live.ifindex(node, port),
                          **{names.get(k, k): int(v) for k, v in flags.items()})


def port_flags(live, node: str, port: str) -> dict[str, bool]:
    data = _port_data(live, node, port)
    return {"learning": bool(data.get_attr("IFLA_BRPORT_LEARNING")),
            "flood": bool(data.get_attr("IFLA_BRPORT_UNICAST_FLOOD")),
            "hairpin": bool(data.get_attr("IFLA_BRPORT_MODE")),
            "isolated": bool(data.get_attr("IFLA_BRPORT_ISOLATED"))}
