"""What a network configuration promises on the wire, derived from the configuration.

The datapath suite asks these questions instead of knowing profiles by name, so a
user's ``--cni-conf`` gets the same checks. The answers come from data: semantics.yaml holds,
for each plugin type the harness knows (containernetworking/plugins' bridge, ptp, macvlan,
ipvlan, host-device, vlan, flannel, tuning, bandwidth, portmap, firewall; netavark), which
configuration keys mean what, with their defaults, citing the plugin's documentation. In short:

- bridge: ``isGateway`` puts the gateway address on the bridge (the host answers it),
  ``ipMasq`` masquerades what leaves the pod subnet, the host routes between bridges;
- ptp: the host side of the veth holds the gateway as a /32 and the host routes a
  /32 to each pod, so pod-to-pod traffic is routed (one hop), ``ipMasq`` as bridge;
- macvlan / ipvlan: pods sit on the master's segment; the gateway is a router there,
  the master's own addresses are unreachable from its children (kernel design), and
  macvlan's ``private``/``vepa`` modes keep pods apart without a reflective switch;
- flannel: delegates to bridge (or ``delegate.type``) with what flanneld's subnet.env says
  (the harness writes it, as flanneld would: ``provided_files``); judged as that delegate;
- portmap: ``portMappings`` as a capability; ``snat`` (default true) masquerades
  hairpin and localhost connections and sets route_localnet, without which neither works
  (the bridge's ``hairpinMode`` does not enter: a pod dialling the host's address is
  routed by the host back out of the bridge, not reflected by the bridge port);
- netavark bridge: masquerades unless ``internal``, publishes ports (localhost and
  hairpin included), ``options.isolate`` drops traffic between isolated networks.

A type not in the data has unknown semantics: a question that needs them raises
UnknownSemantics (one line; the suites skip with it), unless the network declares the type
as a known one (``NetworkConfig.semantics``, from ``--cni-semantics TYPE=KNOWN_TYPE``).
"""
from __future__ import annotations

import copy
import functools
import ipaddress
import re
from importlib import resources

from harness import yamlfile
from harness.errors import NetconformError
from .conf import NetworkConfig

DEFAULT = {4: ipaddress.ip_network("0.0.0.0/0"), 6: ipaddress.ip_network("::/0")}


SEMANTICS_FILE = "semantics.yaml"
# Any plugin that calls iptables makes the table, with its built-in chains: kept by every chain.
ALWAYS_KEPT = (r"ip6?tables \w+ :(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT",)


class UnknownSemantics(NetconformError):
    """The harness does not know what the configuration means here: a test that needs it skips with this line."""


@functools.cache
def _data() -> dict:
    with (resources.files("harness.cni") / SEMANTICS_FILE).open(encoding="utf-8") as handle:
        return yamlfile.load(handle)


def known_types() -> list[str]:
    """The plugin types whose configuration semantics the harness knows (semantics.yaml)."""
    return sorted(_data()["types"])


def unknown_line(plugin_type: str) -> str:
    return (f"config semantics of type {plugin_type!r} are unknown: "
            f"declare them with --cni-semantics {plugin_type}=KNOWN_TYPE")


def semantics_of(network: NetworkConfig, plugin_type: str, table: str = "types") -> dict:
    """The semantics entry of ``plugin_type`` (or of the known type the network declares it as);
    UnknownSemantics when there is none."""
    entry = _data()[table].get(network.semantics.get(plugin_type, plugin_type))
    if entry is None:
        raise UnknownSemantics(unknown_line(plugin_type))
    return entry


def interface_plugin(network: NetworkConfig) -> dict:
    """The configuration of the plugin that makes the pod's interface: the first of the chain, or,
    for a meta plugin of known semantics (flannel), the delegate's configuration as it builds it."""
    first = network.plugins[0]
    try:
        entry = semantics_of(network, first["type"])
    except UnknownSemantics:
        return first
    return _delegated(network, first, entry) if "delegate" in entry else first


def _interface(network: NetworkConfig) -> tuple[dict, dict]:
    """(the effective interface plugin's configuration, its type's semantics); UnknownSemantics if unknown."""
    main = interface_plugin(network)
    entry = semantics_of(network, main["type"])
    if "promises" not in entry or "gateway" not in entry["promises"]:
        raise UnknownSemantics(f"{main['type']} makes no interface of its own: it cannot be first in the chain")
    return main, entry


def _value(config: dict, entry: dict, key: str):
    """The configuration's value of ``key`` (dotted: nested), or the key's documented default."""
    value = config
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return entry["keys"][key]["default"]
        value = value[part]
    return value


def _matches(value, expected) -> bool:
    if isinstance(expected, list):
        return any(_matches(value, one) for one in expected)
    if isinstance(expected, bool):
        return _true(value) == expected
    return str(value) == str(expected)


def _answer(config: dict, entry: dict, spec):
    """A promise's answer for ``config``: a constant, {key}, rules [{when, is}], or {unknown: why}."""
    if isinstance(spec, list):
        return next(rule["is"] for rule in spec
                    if all(_matches(_value(config, entry, key), want) for key, want in (rule.get("when") or {}).items()))
    if isinstance(spec, dict) and "key" in spec:
        value = _value(config, entry, spec["key"])
        return _true(value) if isinstance(entry["keys"][spec["key"]]["default"], bool) else value
    if isinstance(spec, dict) and "unknown" in spec:
        values = {key: _value(config, entry, key) for key in entry["keys"] if "." not in key}
        raise UnknownSemantics(spec["unknown"].format(**values))
    return spec


def _promise(network: NetworkConfig, question: str):
    main, entry = _interface(network)
    return _answer(main, entry, entry["promises"][question])


def _environment(plugin: dict, entry: dict) -> tuple[str, dict]:
    """(the file another component writes for ``plugin``, the values the harness writes there)."""
    env = entry["environment"]
    return _value(plugin, entry, env["key"]), env["values"]


def _delegated(network: NetworkConfig, plugin: dict, entry: dict) -> dict:
    """The delegate's configuration as the meta plugin builds it (flannel_linux.go doCmdAdd, getDelegateIPAM)."""
    rules = entry["delegate"]
    _, env = _environment(plugin, entry)

    def filled(value):
        name = str(value).lstrip("!")
        if not isinstance(value, str) or name not in env:
            return value
        return not _true(env[name]) if value.startswith("!") else env[name]

    delegate = copy.deepcopy(plugin.get(rules["key"]) or {})
    for key, value in rules.get("defaults", {}).items():
        delegate.setdefault(key, filled(value))
    for key, value in (rules.get("defaults_by_type") or {}).get(delegate["type"], {}).items():
        delegate.setdefault(key, value)
    for key, value in (rules.get("set") or {}).items():
        delegate[key] = network.name if value == "$network" else value
    ipam = copy.deepcopy(plugin.get("ipam") or {})
    for key, value in rules["ipam"].get("defaults", {}).items():
        ipam.setdefault(key, value)
    ipam["subnet"] = str(ipaddress.ip_network(env[rules["ipam"]["subnet"]], strict=False))
    ipam["routes"] = list(ipam.get("routes") or []) + [{"dst": env[rules["ipam"]["add_route"]]}]
    delegate["ipam"] = ipam
    return delegate


def provided_files(network: NetworkConfig) -> dict[str, str]:
    """The files another component writes before the chain runs (flanneld's subnet.env), as it writes
    them: path -> content, for the harness to provide."""
    files = {}
    for plugin in network.plugins:
        try:
            entry = semantics_of(network, plugin["type"])
        except UnknownSemantics:
            continue
        if "environment" in entry:
            path, values = _environment(plugin, entry)
            files[path] = "".join(f"{name}={str(value).lower() if isinstance(value, bool) else value}\n"
                                  for name, value in values.items())
    return files


def declares(network: NetworkConfig, capability: str) -> bool:
    """Whether a plugin of the chain declares ``capability`` (SPEC.md: the runtime then passes its runtimeConfig)."""
    return any(_true((p.get("capabilities") or {}).get(capability)) for p in network.plugins)


def kept(network: NetworkConfig) -> list[str]:
    """What the chain keeps, legitimately, after the last DEL (shared, no pod's): regular expressions
    over the DEL snapshot's lines, from each type's ``kept`` (the effective interface plugin's, a meta
    plugin's own, its IPAM's, each chained plugin's). UnknownSemantics if a type of them is unknown."""
    main, _ = _interface(network)
    configs = [main] + ([network.plugins[0]] if main is not network.plugins[0] else []) + network.plugins[1:]
    patterns = list(ALWAYS_KEPT)
    for config in configs:
        entry = semantics_of(network, config["type"])
        patterns += [_filled(pattern, config, entry) for pattern in entry.get("kept") or ()]
        ipam = config.get("ipam")
        if isinstance(ipam, dict) and ipam.get("type"):
            patterns += semantics_of(network, ipam["type"], "ipam").get("kept") or []
    return patterns


def _filled(pattern: str, config: dict, entry: dict) -> str:
    """``pattern`` with each {key} replaced by the configuration's value of it, escaped."""
    return re.sub(r"\{([\w.]+)\}", lambda m: re.escape(str(_value(config, entry, m.group(1))))
                  if m.group(1) in entry["keys"] else m.group(0), pattern)


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


Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ranges(network: NetworkConfig) -> list[dict]:
    """Every range the pods get addresses from, both families, as {subnet, gateway}."""
    main = interface_plugin(network)
    if main["type"] == "netavark":
        return main.get("subnets") or []
    ipam = main.get("ipam") or {}
    ranges = [r for rangeset in ipam.get("ranges") or [] for r in rangeset]
    if ipam.get("subnet"):  # host-local's older single-range form
        ranges.append({"subnet": ipam["subnet"], "gateway": ipam.get("gateway")})
    ranges += [{"subnet": str(ipaddress.ip_interface(a["address"]).network), "gateway": a.get("gateway")}
               for a in ipam.get("addresses") or []]  # static
    return ranges


def subnets(network: NetworkConfig, family: int | None = 4) -> list[tuple[Subnet, ipaddress.IPv4Address | ipaddress.IPv6Address | None]]:
    """(subnet, gateway) of each range of IP version ``family`` (4, 6, or None: both) the pods get
    addresses from (gateway None when unset; host-local claims the range's first address, .1 or ::1,
    when none is given)."""
    main = interface_plugin(network)
    found = []
    for r in _ranges(network):
        net = ipaddress.ip_network(r["subnet"], strict=False)
        if family is not None and net.version != family:
            continue
        gateway = r.get("gateway")
        if gateway is None and main["type"] != "netavark" and (main.get("ipam") or {}).get("type") == "host-local":
            gateway = str(net.network_address + 1)  # host-local claims .1 (::1) when no gateway is given
        found.append((net, ipaddress.ip_address(gateway) if gateway else None))
    return found


def families(network: NetworkConfig) -> list[int]:
    """The IP versions (4, 6) of which the configuration has a range: a pod gets an address of each."""
    return sorted({net.version for net, _ in subnets(network, None)})


def bridge_name(network: NetworkConfig) -> str | None:
    return _promise(network, "bridge")


def masquerades(network: NetworkConfig) -> bool:
    """Whether pod traffic leaving the pod network is masqueraded to the host's address."""
    return bool(_promise(network, "masquerade"))


def default_route(network: NetworkConfig, family: int = 4) -> bool:
    """Whether the pod gets a default route of IP version ``family`` (0.0.0.0/0, ::/0): IPAM routes,
    bridge isDefaultGateway (a default route through each family's gateway), netavark (each subnet's)."""
    if family not in families(network):
        return False
    main = interface_plugin(network)
    if _promise(network, "default_route"):
        return True
    routes = (main.get("ipam") or {}).get("routes") or []
    return any(ipaddress.ip_network(r["dst"], strict=False) == DEFAULT[family] for r in routes if "dst" in r)


def attached_to_uplink(network: NetworkConfig) -> bool:
    return bool(_promise(network, "uplink_attached"))


def egress(network: NetworkConfig, uplink: Subnet) -> str:
    """What becomes of a pod's packet (of ``uplink``'s IP version) to the internet beyond ``uplink``:

    ``unrouted`` (no route, or nothing holds the gateway: it never leaves), ``masquerade`` (it leaves
    with the host's address and replies return), ``direct`` (the pod's own address is
    on the uplink's subnet: it leaves as is and replies return), ``unreturned`` (the
    pod's own address leaves, and the outside has no route back).
    """
    if not default_route(network, uplink.version) or gateway_owner(network) is None:
        return "unrouted"
    if masquerades(network):
        return "masquerade"
    if attached_to_uplink(network) and all(net.subnet_of(uplink) for net, _ in subnets(network, uplink.version)):
        return "direct"
    return "unreturned"


def gateway_owner(network: NetworkConfig) -> str | None:
    """Who answers the pod's gateway: ``host``, ``uplink`` (a router on the master's segment) or None."""
    owner = _promise(network, "gateway")
    return None if owner == "none" else owner


def host_reachable(network: NetworkConfig) -> bool:
    """Whether a pod reaches the host's own addresses (its gateway address at least)."""
    return not attached_to_uplink(network) and gateway_owner(network) == "host"


def pods_reach_each_other(network: NetworkConfig) -> bool:
    return bool(_promise(network, "pods_reach_each_other"))


def pod_to_pod_hops(network: NetworkConfig) -> int:
    """Routers between two pods of the network (TTL decrements): ptp routes through the host."""
    return int(_promise(network, "pod_to_pod_hops"))


def _port_mapper(network: NetworkConfig) -> tuple[dict, dict] | None:
    """(the plugin that maps ports, its semantics): the first that declares the portMappings capability
    and whose type maps ports; None when none does. A mapped port reaches the pod through the host,
    so the interface plugin's semantics are needed too."""
    for p in network.plugins:
        if _true((p.get("capabilities") or {}).get("portMappings")):
            entry = semantics_of(network, p["type"])
            if "port_mappings" in (entry.get("promises") or {}):
                _interface(network)
                return p, entry
    return None


def port_mapping_capable(network: NetworkConfig) -> bool:
    """Whether a plugin of the chain declares the portMappings capability, and maps ports."""
    return _port_mapper(network) is not None


def _port_mapping_promise(network: NetworkConfig, question: str) -> bool:
    mapper = _port_mapper(network)
    return mapper is not None and bool(_answer(*mapper, mapper[1]["promises"]["port_mappings"][question]))


def localhost_port_mapping(network: NetworkConfig) -> bool:
    """Whether the host reaches a mapped port on 127.0.0.1 (route_localnet + SNAT)."""
    return _port_mapping_promise(network, "localhost")


def hairpin_port_mapping(network: NetworkConfig) -> bool:
    """Whether a pod reaches itself through the host's mapped port (hairpin SNAT)."""
    return _port_mapping_promise(network, "hairpin")


def isolated(network: NetworkConfig) -> bool:
    """Whether the network promises to drop traffic to and from other (isolated) networks."""
    return bool(_promise(network, "isolated"))


def routed_by_host(network: NetworkConfig) -> bool:
    """Whether the host routes the network (so two such networks reach each other unless isolated)."""
    return host_reachable(network) and default_route(network)


def switched(network: NetworkConfig) -> bool:
    """Whether pods are ports of a learning switch (the bridge plugin's Linux bridge): it floods a frame for
    an unknown MAC to its other ports and sends one for a learned MAC out of that MAC's port only."""
    return bool(_promise(network, "switched"))


def hairpin(network: NetworkConfig) -> bool:
    """Whether the switch sends a frame back out of the port it came in on (bridge's ``hairpinMode``,
    default false: the kernel's default for a bridge port)."""
    return switched(network) and bool(_promise(network, "hairpin"))


def mtu(network: NetworkConfig) -> int | None:
    """The MTU the configuration gives the pod's interface, or None when it sets none: the interface
    plugin's ``mtu``, unless a later ``tuning`` plugin sets the interface's ``mtu``."""
    tuning = plugin(network, "tuning")
    if tuning is not None and tuning.get("mtu"):
        return int(tuning["mtu"])
    value = _promise(network, "mtu")
    return int(value) if value else None
