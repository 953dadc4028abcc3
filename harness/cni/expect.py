"""What a network configuration promises on the wire, derived from the configuration.

The datapath suite asks these questions instead of knowing profiles by name, so a
user's ``--cni-conf`` gets the same checks. Each answer follows the documented
behaviour of the plugin (containernetworking/plugins) or of netavark:

- bridge: ``isGateway`` puts the gateway address on the bridge (the host answers it),
  ``ipMasq`` masquerades what leaves the pod subnet, the host routes between bridges;
- ptp: the host side of the veth holds the gateway as a /32 and the host routes a
  /32 to each pod, so pod-to-pod traffic is routed (one hop), ``ipMasq`` as bridge;
- macvlan / ipvlan: pods sit on the master's segment; the gateway is a router there,
  the master's own addresses are unreachable from its children (kernel design), and
  macvlan's ``private``/``vepa`` modes keep pods apart without a reflective switch;
- portmap: ``portMappings`` as a capability; ``snat`` (default true) masquerades
  hairpin and localhost connections and sets route_localnet, without which neither works
  (the bridge's ``hairpinMode`` does not enter: a pod dialling the host's address is
  routed by the host back out of the bridge, not reflected by the bridge port);
- netavark bridge: masquerades unless ``internal``, publishes ports (localhost and
  hairpin included), ``options.isolate`` drops traffic between isolated networks.
"""
from __future__ import annotations

import copy
import ipaddress
from dataclasses import replace

from .conf import NetworkConfig

UPLINK_ATTACHED = ("macvlan", "ipvlan")  # pods live on the master's segment
DEFAULT = ipaddress.ip_network("0.0.0.0/0")


def interface_plugin(network: NetworkConfig) -> dict:
    """The plugin that makes the pod's interface: the first of the chain."""
    return network.plugins[0]


def kind(network: NetworkConfig) -> str:
    """``bridge``, ``ptp``, ``macvlan``, ``ipvlan``... or ``netavark-bridge``."""
    plugin = interface_plugin(network)
    if plugin["type"] == "netavark":
        return f"netavark-{plugin.get('driver', 'bridge')}"
    return plugin["type"]


def plugin(network: NetworkConfig, plugin_type: str) -> dict | None:
    return next((p for p in network.plugins if p["type"] == plugin_type), None)


def _true(value) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes")


def subnets(network: NetworkConfig) -> list[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address | None]]:
    """(subnet, gateway) of each range the pods get addresses from (gateway None when unset)."""
    main = interface_plugin(network)
    if main["type"] == "netavark":
        ranges = main.get("subnets") or []
    else:
        ipam = main.get("ipam") or {}
        ranges = [r for rangeset in ipam.get("ranges") or [] for r in rangeset]
        if ipam.get("subnet"):  # host-local's older single-range form
            ranges.append({"subnet": ipam["subnet"], "gateway": ipam.get("gateway")})
        ranges += [{"subnet": str(ipaddress.ip_interface(a["address"]).network), "gateway": a.get("gateway")}
                   for a in ipam.get("addresses") or []]  # static
    found = []
    for r in ranges:
        net = ipaddress.ip_network(r["subnet"], strict=False)
        if net.version != 4:
            continue
        gateway = r.get("gateway")
        if gateway is None and main["type"] != "netavark" and (main.get("ipam") or {}).get("type") == "host-local":
            gateway = str(net.network_address + 1)  # host-local claims .1 when no gateway is given
        found.append((net, ipaddress.ip_address(gateway) if gateway else None))
    return found


def bridge_name(network: NetworkConfig) -> str | None:
    main = interface_plugin(network)
    if main["type"] == "netavark":
        return main.get("network_interface")
    if main["type"] == "bridge":
        return main.get("bridge", "cni0")
    return None


def masquerades(network: NetworkConfig) -> bool:
    """Whether pod traffic leaving the pod network is masqueraded to the host's address."""
    main = interface_plugin(network)
    if main["type"] == "netavark":
        return main.get("driver", "bridge") == "bridge" and not main.get("internal", False)
    return main["type"] in ("bridge", "ptp") and _true(main.get("ipMasq", False))


def default_route(network: NetworkConfig) -> bool:
    """Whether the pod gets a default route (IPAM routes, bridge isDefaultGateway, netavark)."""
    main = interface_plugin(network)
    if main["type"] == "netavark":
        return not main.get("internal", False)
    if main["type"] == "bridge" and _true(main.get("isDefaultGateway", False)):
        return True
    routes = (main.get("ipam") or {}).get("routes") or []
    return any(ipaddress.ip_network(r["dst"], strict=False) == DEFAULT for r in routes if "dst" in r)


def attached_to_uplink(network: NetworkConfig) -> bool:
    main = interface_plugin(network)
    return main["type"] in UPLINK_ATTACHED or (main["type"] == "netavark" and main.get("driver") == "macvlan")


def egress(network: NetworkConfig, uplink: ipaddress.IPv4Network) -> str:
    """What becomes of a pod's packet to the internet beyond ``uplink``:

    ``unrouted`` (no route, or nothing holds the gateway: it never leaves), ``masquerade`` (it leaves
    with the host's address and replies return), ``direct`` (the pod's own address is
    on the uplink's subnet: it leaves as is and replies return), ``unreturned`` (the
    pod's own address leaves, and the outside has no route back).
    """
    if not default_route(network) or gateway_owner(network) is None:
        return "unrouted"
    if masquerades(network):
        return "masquerade"
    if attached_to_uplink(network) and all(net.subnet_of(uplink) for net, _ in subnets(network)):
        return "direct"
    return "unreturned"


def gateway_owner(network: NetworkConfig) -> str | None:
    """Who answers the pod's gateway: ``host``, ``uplink`` (a router on the master's segment) or None."""
    main = interface_plugin(network)
    if main["type"] == "netavark":
        return "uplink" if main.get("driver") == "macvlan" else "host"
    if main["type"] == "bridge":
        return "host" if _true(main.get("isGateway")) or _true(main.get("isDefaultGateway")) else None
    if main["type"] == "ptp":
        return "host"
    if main["type"] in UPLINK_ATTACHED:
        return "uplink"
    return None


def host_reachable(network: NetworkConfig) -> bool:
    """Whether a pod reaches the host's own addresses (its gateway address at least)."""
    return not attached_to_uplink(network) and gateway_owner(network) == "host"


def pods_reach_each_other(network: NetworkConfig) -> bool:
    main = interface_plugin(network)
    if main["type"] == "macvlan":
        return main.get("mode", "bridge") == "bridge"  # private, vepa (no reflective relay), passthru: apart
    return main["type"] in ("bridge", "ptp", "ipvlan", "netavark")


def pod_to_pod_hops(network: NetworkConfig) -> int:
    """Routers between two pods of the network (TTL decrements): ptp routes through the host."""
    return 1 if interface_plugin(network)["type"] == "ptp" else 0


def port_mapping_capable(network: NetworkConfig) -> bool:
    """Whether a plugin of the chain declares the portMappings capability."""
    return any(_true((p.get("capabilities") or {}).get("portMappings")) for p in network.plugins)


def _portmap_snat(network: NetworkConfig) -> bool:
    portmap = plugin(network, "portmap")
    return portmap is not None and _true(portmap.get("snat", True))


def localhost_port_mapping(network: NetworkConfig) -> bool:
    """Whether the host reaches a mapped port on 127.0.0.1 (route_localnet + SNAT)."""
    if not port_mapping_capable(network):
        return False
    return kind(network) == "netavark-bridge" or _portmap_snat(network)


def hairpin_port_mapping(network: NetworkConfig) -> bool:
    """Whether a pod reaches itself through the host's mapped port (hairpin SNAT)."""
    if not port_mapping_capable(network):
        return False
    return kind(network) == "netavark-bridge" or _portmap_snat(network)


def isolated(network: NetworkConfig) -> bool:
    """Whether the network promises to drop traffic to and from other (isolated) networks."""
    main = interface_plugin(network)
    return main["type"] == "netavark" and _true((main.get("options") or {}).get("isolate", False))


def routed_by_host(network: NetworkConfig) -> bool:
    """Whether the host routes the network (so two such networks reach each other unless isolated)."""
    return host_reachable(network) and default_route(network)


def sibling(network: NetworkConfig, index: int = 1) -> NetworkConfig:
    """The same configuration as a second network: another name, bridge and subnet.

    Each subnet (host-local's ranges or its older single ``subnet``, static addresses, netavark's
    subnets) moves ``index`` subnets of its own size up (10.88.0.0/24 -> 10.88.1.0/24), with its
    gateway and range bounds; a bridge ``cni0`` becomes ``cni1``.
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


def overlaps(network: NetworkConfig, other: NetworkConfig) -> list[str]:
    """The subnets of ``other`` that overlap one of ``network``'s (a derived network must have none)."""
    mine = [subnet for subnet, _ in subnets(network)]
    return [str(theirs) for theirs, _ in subnets(other) if any(theirs.overlaps(ours) for ours in mine)]


def _renamed(name: str, index: int) -> str:
    stem = name.rstrip("0123456789")
    number = int(name[len(stem):] or 0)
    return f"{stem}{number + index}"


def switched(network: NetworkConfig) -> bool:
    """Whether pods share a Linux bridge (the bridge plugin): a learning switch, which floods a frame for
    an unknown MAC to its other ports and sends one for a learned MAC out of that MAC's port only."""
    return interface_plugin(network)["type"] == "bridge"


def hairpin(network: NetworkConfig) -> bool:
    """Whether the bridge sends a frame back out of the port it came in on (bridge's ``hairpinMode``,
    default false: the kernel's default for a bridge port)."""
    return switched(network) and _true(interface_plugin(network).get("hairpinMode", False))


MTU_TYPES = ("bridge", "ptp", "macvlan", "ipvlan", "vlan")  # plugins whose ``mtu`` is the pod interface's


def mtu(network: NetworkConfig) -> int | None:
    """The MTU the configuration gives the pod's interface, or None when it sets none: the interface
    plugin's ``mtu``, unless a later ``tuning`` plugin sets the interface's ``mtu``."""
    tuning = plugin(network, "tuning")
    if tuning is not None and tuning.get("mtu"):
        return int(tuning["mtu"])
    main = interface_plugin(network)
    return int(main["mtu"]) if main["type"] in MTU_TYPES and main.get("mtu") else None
