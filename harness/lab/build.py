"""Building labs in-process over netlink, and tearing them down.

The lifecycle follows molecule's: build -> ready -> (probe) -> collect -> teardown.
Every node of a lab, the host included, is a fresh network namespace inside the
sandbox, so nothing one lab sets (sysctls, iptables, rules) can leak into the
next, and teardown is the release of those namespaces. Only iptables and nft are
run as programs (with argument lists), because they have no library.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import time
from typing import Callable, ContextManager

from pyroute2.netlink.exceptions import NetlinkError

from harness.kernel import firewall
from harness.kernel import nsutil
from harness.errors import BuildError, CapabilityMissing, LabError
from harness.kernel.tuntap import make_persistent_tuntap
from harness.kernel.tunnels import make_ipip
from harness.lab.file import validate
from harness.lab.live import BR_NETFILTER_SYSCTLS, LiveLab, namespace_defaults
from harness.kernel.rtnl import NetlinkRefused
from harness.lab.model import BridgeOptions, Lab, Link, Node, PortOptions, Route
from harness.kernel.constants import (
    AF_BRIDGE,
    AF_INET,
    IPVLAN_MODES,
    NTF_MASTER,
    NTF_PROXY,
    NTF_SELF,
    NUD_NOARP,
    NUD_PERMANENT,
    ROUTE_TYPES,
    ROUTE_PROTOCOLS,
    RTNH_F_ONLINK,
    RTPROT_BOOT,
    SCOPES,
    table_id,
)
from harness.kernel.linkkinds import CREATION_ORDER, KINDS, PYROUTE2, RTNL, TUNTAP
from harness.kernel.netops import settle_addresses, settle_links

READY_TIMEOUT = 5.0  # seconds for linkwatch to bring carriers up; normally a few ms
LINK_KIND_CAPABILITY_ERRORS = (errno.EOPNOTSUPP, errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT)


def port_flags(port: PortOptions) -> dict:
    """pyroute2's names for bridge port flags (IFLA_BRPORT_*)."""
    names = {"learning": "learning", "flood": "unicast_flood", "hairpin": "mode", "isolated": "isolated",
             "cost": "cost"}
    return {names[key]: int(value) for key, value in vars(port).items() if value is not None}


def _lower_spec(live: LiveLab, node: Node, link: Link) -> dict:
    """macvlan, ipvlan, vlan: made where the parent is, then moved to ``node``."""
    parent_node = link.parent_node or node.name
    spec: dict = {"kind": link.kind, "link": live.ifindex(parent_node, link.parent)}
    if parent_node != node.name:
        spec["net_ns_fd"] = live.fd(node.name)
    if link.kind == "macvlan":
        spec["macvlan_mode"] = link.mode or "bridge"
    elif link.kind == "ipvlan":
        spec["ipvlan_mode"] = {name: number for number, name in IPVLAN_MODES.items()}[link.mode or "l2"]
    else:
        spec["vlan_id"] = link.vni
    return spec


def _vxlan_spec(live: LiveLab, node: Node, link: Link) -> dict:
    spec: dict = {"kind": "vxlan", "vxlan_id": link.vni}
    for key, value in (("vxlan_port", link.port_udp), ("vxlan_local", link.local), ("vxlan_group", link.remote)):
        if value:
            spec[key] = value
    if link.parent:
        spec["vxlan_link"] = live.ifindex(node.name, link.parent)
    if link.vxlan_learning is not None:
        spec["vxlan_learning"] = int(link.vxlan_learning)
    return spec


_PYROUTE2_SPEC = {  # the pyroute2 link("add") keywords of each kind KINDS makes with pyroute2
    "macvlan": _lower_spec, "ipvlan": _lower_spec, "vlan": _lower_spec, "vxlan": _vxlan_spec,
    "vrf": lambda live, node, link: {"kind": "vrf", "vrf_table": link.table or 10},
    "dummy": lambda live, node, link: {"kind": "dummy"},
}
assert set(_PYROUTE2_SPEC) == {name for name, kind in KINDS.items() if kind.made_by == PYROUTE2}


class _Builder:
    def __init__(self, live: LiveLab, stage: Callable[[str], ContextManager] | None):
        self.live = live
        self.lab = live.lab
        self.stage = stage

    def step(self, what: str):
        return _Step(self, what)

    def fail(self, what: str, exc: Exception) -> Exception:
        code = getattr(exc, "code", None) or getattr(exc, "errno", None)
        reason = os.strerror(code) if isinstance(code, int) and code > 0 else str(exc)
        kernel = getattr(exc, "kernel_message", None)
        if kernel and kernel != reason:
            reason = f"{reason} ({kernel})"  # the kernel's extended ack says which part it refused
        return BuildError(f"lab {self.lab.name} ({self.lab.source}): {what}: {reason}")

    def build(self) -> None:
        lab, live = self.lab, self.live
        with self.step("namespaces"):
            for node in lab.nodes:
                live.add_node(node.name, namespace_defaults(node.sysctls))
        # iptables-restore matches interfaces by name, it does not look them up: it can run while
        # the links are made. Its time is mostly the kernel's (an nftables commit, an RCU grace
        # period when it closes its socket), so overlapping it hides it.
        started = [(node, firewall.start_iptables(live, lab, node)) for node in lab.nodes if node.iptables]
        try:
            self.build_links_to_routes(started)
        finally:
            for _, process in started:
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()
        with self.step("ready"):
            for node in lab.nodes:
                self.wait_ready(node.name)

    def build_links_to_routes(self, started) -> None:
        lab, live = self.lab, self.live
        with self.step("links"):
            pending = [(node, link) for node in lab.nodes for link in node.links]
            for node, link in sorted(pending, key=lambda item: CREATION_ORDER[item[1].kind]):
                self.create_link(node, link)
        with self.step("sysctls"):
            for node in lab.nodes:
                if node.sysctls:
                    with live.entered(node.name):
                        for key, value in node.sysctls.items():
                            try:
                                nsutil.write_sysctl(key, value)
                            except FileNotFoundError:
                                if key in BR_NETFILTER_SYSCTLS:
                                    if str(value) == "0":
                                        continue  # no br_netfilter: bridged traffic bypasses iptables anyway
                                    raise CapabilityMissing(f"{key}=1 needs br_netfilter, which this kernel "
                                                            "has not loaded (modprobe br_netfilter)") from None
                                raise self.fail(f"node {node.name}: sysctl {key}",
                                                OSError(errno.ENOENT, "no such sysctl")) from None
                            except OSError as exc:
                                raise self.fail(f"node {node.name}: sysctl {key}={value}", exc) from None
        with self.step("ports and state"):
            for node in lab.nodes:
                for link in node.links:
                    self.configure(node.name, link.name, link.master, link.port, link.up, link.addresses)
                    if link.peer is not None:
                        peer = link.peer
                        self.configure(peer.node or node.name, peer.name, peer.master, peer.port, peer.up,
                                       peer.addresses)
        with self.step("routes"):
            for node in lab.nodes:
                for route in node.routes:
                    self.add_route(node.name, route)
                for rule in node.rules:
                    self.add_rule(node.name, rule)
                for neigh in node.neighbours:
                    self.add_neighbour(node.name, neigh)
                for entry in node.fdb:
                    self.add_fdb(node.name, entry)
        with self.step("firewall"):
            for node, process in started:
                firewall.finish_iptables(lab, node, process)
            for node in lab.nodes:
                if node.nftables:  # after the links: a ruleset may name a device nft resolves now (iif)
                    firewall.load_nftables(self.live, lab, node)

    # -- links ---------------------------------------------------------------
    def create_link(self, node: Node, link: Link) -> None:
        """Make ``link`` in ``node`` the way its kind is made (``harness.kernel.linkkinds``)."""
        kind = KINDS[link.kind]
        spec: dict = {"ifname": link.name}
        if link.mac:
            spec["address"] = link.mac
        if link.mtu:
            spec["mtu"] = link.mtu
        try:
            if kind.made_by == RTNL:
                self._make_on_fast_path(node, link)
            elif kind.made_by == TUNTAP:
                self._make_tuntap(node, link, spec)
            else:
                spec.update(_PYROUTE2_SPEC[link.kind](self.live, node, link))
                # pyroute2 (live.ipr, ~1 ms to open) only for what the fast path does not make
                self.live.ipr(link.parent_node or node.name if kind.parent else node.name).link("add", **spec)
        except (NetlinkError, NetlinkRefused) as exc:
            if exc.code in LINK_KIND_CAPABILITY_ERRORS:
                options = sorted(k for k in spec if k not in ("ifname", "kind", "peer", "link", "net_ns_fd"))
                raise CapabilityMissing(
                    f"the kernel cannot make this {link.kind} link (RTM_NEWLINK kind={link.kind}"
                    + (f" with {', '.join(options)}" if options else "") + f": {os.strerror(exc.code)})"
                ) from None
            raise self.fail(f"node {node.name}: create {link.kind} {link.name}", exc) from None
        except OSError as exc:
            raise self.fail(f"node {node.name}: create {link.kind} {link.name}", exc) from None

    def _make_on_fast_path(self, node: Node, link: Link) -> None:
        live = self.live
        if link.kind == "ipip":  # the fallback tunl0 is the kernel's own: configured, not made (tunnels.py)
            make_ipip(live.rtnl(node.name), link.name, local=link.local, remote=link.remote, ttl=link.ttl,
                      link=live.ifindex(node.name, link.parent) if link.parent else None, mtu=link.mtu)
        elif link.kind == "veth":
            peer = link.peer
            peer_node = peer.node or node.name
            # Made directly in its namespace: moving a veth later costs ~15 ms in the kernel.
            live.rtnl(node.name).add_veth(
                link.name, peer.name, mac=link.mac, mtu=link.mtu, peer_mac=peer.mac, peer_mtu=peer.mtu,
                peer_netns_fd=live.fd(peer_node) if peer_node != node.name else None)
        else:
            options = link.bridge or BridgeOptions()
            centis = lambda seconds: None if seconds is None else int(round(seconds * 100))  # noqa: E731
            live.rtnl(node.name).add_bridge(
                link.name, mac=link.mac, mtu=link.mtu, stp_state=None if options.stp is None else int(options.stp),
                ageing_time=centis(options.ageing_time), forward_delay=centis(options.forward_delay),
                vlan_filtering=None if options.vlan_filtering is None else int(options.vlan_filtering))

    def _make_tuntap(self, node: Node, link: Link, spec: dict) -> None:
        live = self.live
        with live.entered(node.name):
            make_persistent_tuntap(link.name, link.kind)
        extra = {k: v for k, v in spec.items() if k in ("address", "mtu")}
        if extra:
            live.ipr(node.name).link("set", index=live.ifindex(node.name, link.name), **extra)

    def configure(self, node: str, name: str, master: str | None, port: PortOptions | None, up: bool,
                  addresses: list[str]) -> None:
        rtnl = self.live.rtnl(node)
        try:
            index = self.live.ifindex(node, name)
            for text in addresses:
                rtnl.add_address(index, text)
            master_index = self.live.ifindex(node, master) if master else None
            if port is not None:  # port flags need the port enslaved first
                if master_index is not None:
                    rtnl.set_link(index, master=master_index)
                    master_index = None
                self.live.ipr(node).brport("set", index=index, **port_flags(port))
            if master_index is not None or up:
                rtnl.set_link(index, master=master_index, up=True if up else None)
        except (NetlinkError, NetlinkRefused) as exc:
            raise self.fail(f"node {node}: configure {name}", exc) from None

    # -- layer 3 -------------------------------------------------------------
    def add_route(self, node: str, route: Route) -> None:
        ipr = self.live.ipr(node) if route.nexthops else None
        dst = "0.0.0.0/0" if route.dst == "default" else route.dst
        net = ipaddress.ip_network(dst, strict=False)
        spec: dict = {"dst": str(net.network_address), "dst_len": net.prefixlen,
                      "table": table_id(route.table), "type": ROUTE_TYPES[route.type],
                      "proto": RTPROT_BOOT if route.proto is None else ROUTE_PROTOCOLS.get(route.proto, route.proto)}
        if route.nexthops:
            spec["multipath"] = [
                {k: v for k, v in (("gateway", hop.get("via")),
                                   ("oif", self.live.ifindex(node, hop["dev"]) if hop.get("dev") else None),
                                   ("hops", hop.get("weight", 1) - 1)) if v is not None}
                for hop in route.nexthops]
        if route.via:
            spec["gateway"] = route.via
        if route.dev:
            spec["oif"] = self.live.ifindex(node, route.dev)
        scope = route.scope
        if scope is None and route.type == "unicast" and not route.via and not route.nexthops:
            scope = "link"  # as `ip route add X dev D` does
        if scope is not None:
            spec["scope"] = SCOPES[scope]
        if route.metric is not None:
            spec["priority"] = route.metric
        if route.src:
            spec["prefsrc"] = route.src
        if route.onlink:
            spec["flags"] = RTNH_F_ONLINK
        try:
            if route.nexthops:
                ipr.route("add", **spec)
            else:
                self.live.rtnl(node).add_route(
                    dst, table=spec["table"], proto=spec["proto"], scope=spec.get("scope", 0), type=spec["type"],
                    gateway=spec.get("gateway"), oif=spec.get("oif"), metric=spec.get("priority"),
                    prefsrc=spec.get("prefsrc"), flags=spec.get("flags", 0))
        except (NetlinkError, NetlinkRefused) as exc:
            raise self.fail(f"node {node}: route {route.dst}" + (f" via {route.via}" if route.via else ""),
                            exc) from None

    def ipr_request(self, node: str, what: str, command: str, *args, **spec) -> None:
        """One request through ``node``'s pyroute2 socket (``ipr.neigh("add", ...)``); a refusal names ``what``."""
        try:
            getattr(self.live.ipr(node), command)(*args, **spec)
        except NetlinkError as exc:
            raise self.fail(f"node {node}: {what}", exc) from None

    def add_rule(self, node: str, rule) -> None:
        spec: dict = {"table": table_id(rule.table), "action": "FR_ACT_TO_TBL"}
        # pyroute2 would put 32000 on a rule without a priority; `ip rule add` leaves it to
        # the kernel, which takes one below the second rule (fib_default_rule_pref): 32765.
        spec["priority"] = rule.priority if rule.priority is not None else self.default_rule_priority(node)
        for key, value in (("src", rule.src), ("dst", rule.dst)):
            if value is not None and value != "all":
                net = ipaddress.ip_network(value, strict=False)
                spec[key] = str(net.network_address)
                spec[f"{key}_len"] = net.prefixlen
        if rule.iif:
            spec["iifname"] = rule.iif
        if rule.oif:
            spec["oifname"] = rule.oif
        self.ipr_request(node, f"rule table {rule.table}", "rule", "add", **spec)

    def default_rule_priority(self, node: str) -> int:
        prefs = sorted(r.get_attr("FRA_PRIORITY") or 0 for r in self.live.ipr(node).get_rules(family=AF_INET))
        return prefs[1] - 1 if len(prefs) > 1 and prefs[1] > 0 else 0

    def add_neighbour(self, node: str, neigh) -> None:
        spec = {"dst": neigh.dst, "ifindex": self.live.ifindex(node, neigh.dev), "state": NUD_PERMANENT}
        if neigh.lladdr:
            spec["lladdr"] = neigh.lladdr
        if neigh.proxy:
            spec["flags"] = NTF_PROXY
        self.ipr_request(node, f"neighbour {neigh.dst} dev {neigh.dev}", "neigh", "add", **spec)

    def add_fdb(self, node: str, entry) -> None:
        spec = {"family": AF_BRIDGE, "ifindex": self.live.ifindex(node, entry.dev), "lladdr": entry.mac,
                "state": NUD_PERMANENT | NUD_NOARP, "flags": NTF_MASTER if entry.master else NTF_SELF}
        if entry.dst:
            spec["dst"] = entry.dst
        self.ipr_request(node, f"fdb {entry.mac} dev {entry.dev}", "fdb", "append", **spec)

    # -- readiness -------------------------------------------------------------
    def wait_ready(self, node: str) -> None:
        rtnl = self.live.rtnl(node)
        settling = settle_links(self.live.fd(node), rtnl, READY_TIMEOUT)
        if settling:
            raise BuildError(f"lab {self.lab.name}: node {node}: links {', '.join(settling.values())} "
                             f"have carrier but are not running after {READY_TIMEOUT:.0f} s")
        tentative = settle_addresses(self.live.fd(node), rtnl, READY_TIMEOUT)
        if tentative:
            raise BuildError(f"lab {self.lab.name}: node {node}: IPv6 addresses {', '.join(tentative)} "
                             f"still tentative after {READY_TIMEOUT:.0f} s")


class _Step:
    """One build stage: timed into ``live.steps``, and run inside the caller's ``stage``
    context (a report step, say) when one was given."""

    def __init__(self, builder: _Builder, what: str):
        self.builder, self.what = builder, what
        self.outer = builder.stage(what) if builder.stage else None

    def __enter__(self):
        if self.outer is not None:
            self.outer.__enter__()
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.builder.live.steps.append((self.what, time.perf_counter() - self.start))
        if self.outer is not None:
            return self.outer.__exit__(*exc)
        return None


def build(lab: Lab, *, stage: Callable[[str], ContextManager] | None = None) -> LiveLab:
    """Build ``lab`` and wait until it is ready; on any failure leave nothing behind.

    ``stage(name)``, if given, returns a context manager each build stage runs in
    (namespaces, links, sysctls, ports and state, routes, firewall, ready): the
    report plugin makes them steps.
    """
    validate(lab)
    live = LiveLab(lab)
    try:
        _Builder(live, stage).build()
    except FileExistsError as exc:
        live.teardown()
        raise LabError(f"lab {lab.name}: {exc.strerror} (another lab holds that name in this sandbox)") from None
    except BaseException:
        live.teardown()
        raise
    return live
