"""A second network derived from the configuration under test (another name, bridge and subnets), for
the datapath suite's checks between networks; never overlapping the first."""
from __future__ import annotations

import copy
import ipaddress
from dataclasses import replace

from .conf import NetworkConfig
from .expect import subnets

def sibling(network: NetworkConfig, index: int = 1) -> NetworkConfig:
    """The same configuration as a second network: another name, bridge and subnet.

    Each subnet of either family (host-local's ranges or its older single ``subnet``, static
    addresses, netavark's subnets) moves ``index`` subnets of its own size up (10.88.0.0/24 ->
    10.88.1.0/24, 2001:db8:88::/64 -> 2001:db8:88:1::/64), with its gateway and range bounds; a
    bridge ``cni0`` becomes ``cni1``.
    """
    plugins = copy.deepcopy(network.plugins)
    main = plugins[0]

    def shift(value, size):
        return str(ipaddress.ip_address(value) + index * size) if value else value

    def move(r, keys):
        net = ipaddress.ip_network(r["subnet"])
        r["subnet"] = f"{shift(net.network_address, net.num_addresses)}/{net.prefixlen}"
        for key in keys:  # a gateway outside the subnet (a link-local one) stays where it is
            if r.get(key) and ipaddress.ip_address(r[key]) in net:
                r[key] = shift(r[key], net.num_addresses)

    if main["type"] == "netavark":
        main["network_interface"] = _renamed(main.get("network_interface", "nv0"), index)
        for r in main.get("subnets") or []:
            move(r, ("gateway",))
    else:
        if "bridge" in main or main["type"] == "bridge":
            main["bridge"] = _renamed(main.get("bridge", "cni0"), index)
        ipam = main.get("ipam") or {}
        for rangeset in ipam.get("ranges") or []:
            for r in rangeset:
                move(r, ("gateway", "rangeStart", "rangeEnd"))
        if ipam.get("subnet"):  # host-local's older single-range form
            move(ipam, ("gateway", "rangeStart", "rangeEnd"))
        for a in ipam.get("addresses") or []:  # static
            iface = ipaddress.ip_interface(a["address"])
            a["address"] = f"{shift(iface.ip, iface.network.num_addresses)}/{iface.network.prefixlen}"
            if a.get("gateway") and ipaddress.ip_address(a["gateway"]) in iface.network:
                a["gateway"] = shift(a["gateway"], iface.network.num_addresses)
    return replace(network, name=f"{network.name}-{index + 1}", plugins=plugins,
                   raw=dict(network.raw, name=f"{network.name}-{index + 1}", plugins=plugins))


def one_address(network: NetworkConfig) -> NetworkConfig | None:
    """The same network (another name) whose host-local IPAM has one address to give: its single range
    narrowed to its first allocatable address (rangeStart, else the subnet's second), so that a second
    ADD exhausts it. None when the interface plugin's IPAM is not host-local with one range."""
    plugins = copy.deepcopy(network.plugins)
    ipam = plugins[0].get("ipam") or {}
    ranges = [r for rangeset in ipam.get("ranges") or [] for r in rangeset] or ([ipam] if ipam.get("subnet") else [])
    if ipam.get("type") != "host-local" or len(ranges) != 1:
        return None
    subnet = ipaddress.ip_network(ranges[0]["subnet"])
    first = ranges[0].get("rangeStart") or str(subnet.network_address + 2)  # .1: the gateway's by default
    ranges[0]["rangeStart"] = ranges[0]["rangeEnd"] = first
    name = f"{network.name}-one"
    return replace(network, name=name, plugins=plugins, raw=dict(network.raw, name=name, plugins=plugins))


def overlaps(network: NetworkConfig, other: NetworkConfig) -> list[str]:
    """The subnets of ``other`` (both families) that overlap one of ``network``'s (a derived network must
    have none)."""
    mine = [subnet for subnet, _ in subnets(network, None)]
    return [str(theirs) for theirs, _ in subnets(other, None)
            if any(theirs.version == ours.version and theirs.overlaps(ours) for ours in mine)]


def _renamed(name: str, index: int) -> str:
    stem = name.rstrip("0123456789")
    number = int(name[len(stem):] or 0)
    return f"{stem}{number + index}"
