"""A lab as a script: the shell reproducer and its teardown.

``shell_script(lab)`` is what a person pastes to build a lab without the harness:
the same steps as ``harness.lab.build`` in the same order, as iproute2, bridge,
sysctl, iptables and nft commands. ``teardown_script(lab)`` undoes it.
"""
from __future__ import annotations

import re
import shlex
import textwrap

from harness.kernel.constants import IPV6_QUIET_SYSCTLS, TABLES, table_id
from harness.kernel.linkkinds import CREATION_ORDER, KINDS, TUNTAP
from harness.kernel.tunnels import is_fallback
from harness.errors import LabError
from harness.lab.file import validate
from harness.lab.live import BR_NETFILTER_SYSCTLS, namespace_defaults
from harness.kernel.firewall import filter_policies
from harness.lab.model import HOST, Lab, Link, Node, PortOptions, Route, Rule



class _Raw(str):
    """A shell word emitted as is (not quoted): the host's namespace, ``"$$"``."""


SELF = _Raw('"$$"')  # `netns PID`: ip resolves the shell's PID to the shell's namespace (the host)


def _sh(argv) -> str:
    return " ".join(a if isinstance(a, _Raw) else shlex.quote(str(a)) for a in argv)


def _ip(node: str, *args) -> list:
    """An iproute2 command (``ip`` or ``bridge``) in ``node``: ``-n NODE`` unless it is the host."""
    tool, rest = (args[0], args[1:]) if args and args[0] == "bridge" else ("ip", args)
    return [tool, *(["-n", node] if node != HOST else []), *rest]


def _in(node: str, *args) -> list:
    """Any other program in ``node``: through ``ip netns exec`` unless it is the host."""
    return [*(["ip", "netns", "exec", node] if node != HOST else []), *args]


def _netns(node: str):
    return SELF if node == HOST else node


def _mac_mtu(mac: str | None, mtu: int | None) -> list:
    return (["address", mac] if mac else []) + (["mtu", mtu] if mtu else [])


def _table(lab: Lab, node: Node, value, where: str) -> str:
    if isinstance(value, str) and value in TABLES:
        return value
    try:
        return str(table_id(value))
    except KeyError:
        raise LabError(f"{lab.source}: nodes.{node.name}.{where}.table: unknown routing table {value!r} "
                       f"(use a number or one of {', '.join(TABLES)})") from None


def oneline(text) -> str:
    return " ".join(str(text).split())


# ---------------------------------------------------------------- commands

def _create(node: Node, link: Link) -> list[list]:
    """The commands that create ``link`` (declared in ``node``), as builder.create_link does."""
    kind, here = link.kind, node.name
    made = KINDS[kind]
    if kind == "veth":
        peer = link.peer
        argv = _ip(here, "link", "add", link.name, *_mac_mtu(link.mac, link.mtu), "type", "veth",
                   "peer", "name", peer.name, *_mac_mtu(peer.mac, peer.mtu))
        if (peer.node or here) != here:
            argv += ["netns", _netns(peer.node)]
        return [argv]
    if made.made_by == TUNTAP:
        extra = _mac_mtu(link.mac, link.mtu)  # `ip tuntap` takes no address or mtu
        return [_ip(here, "tuntap", "add", link.name, "mode", kind)] + (
            [_ip(here, "link", "set", link.name, *extra)] if extra else [])
    if made.parent:
        where = link.parent_node or here
        argv = _ip(where, "link", "add", "link", link.parent, link.name, *_mac_mtu(link.mac, link.mtu),
                   *(["netns", _netns(here)] if where != here else []), "type", kind)
        if kind == "macvlan":
            argv += ["mode", link.mode or "bridge"]
        elif kind == "ipvlan":
            argv += ["mode", link.mode or "l2"]
        else:
            argv += ["id", link.vni]
        return [argv]
    argv = _ip(here, "link", "add", link.name, *_mac_mtu(link.mac, link.mtu), "type", kind)
    if kind == "bridge" and link.bridge is not None:
        options = link.bridge
        if options.stp is not None:
            argv += ["stp_state", int(options.stp)]
        if options.ageing_time is not None:  # IFLA_BR_* times are in centiseconds
            argv += ["ageing_time", int(round(options.ageing_time * 100))]
        if options.forward_delay is not None:
            argv += ["forward_delay", int(round(options.forward_delay * 100))]
        if options.vlan_filtering is not None:
            argv += ["vlan_filtering", int(options.vlan_filtering)]
    elif kind == "vxlan":
        argv += ["id", link.vni]
        for word, value in (("dstport", link.port_udp), ("local", link.local), ("remote", link.remote),
                            ("dev", link.parent)):
            if value:
                argv += [word, value]
        if link.vxlan_learning is not None:
            argv.append("learning" if link.vxlan_learning else "nolearning")
    elif kind == "vrf":
        argv += ["table", link.table or 10]
    elif kind == "ipip":
        for word, value in (("local", link.local), ("remote", link.remote), ("ttl", link.ttl), ("dev", link.parent)):
            if value:
                argv += [word, value]
        if is_fallback(link.name, local=link.local, remote=link.remote, link=link.parent):
            # the ipip module's own tunl0, there already once the module is loaded: EEXIST is fine (as felix)
            return [[_Raw(f"{_sh(argv)} 2>/dev/null || {_sh(_ip(here, 'link', 'show', 'dev', link.name))} "
                          ">/dev/null")]]
    return [argv]


def _configure(node: str, name: str, master: str | None, port: PortOptions | None, up: bool,
               addresses: list[str]) -> list[list]:
    out = []
    if master:
        out.append(_ip(node, "link", "set", "dev", name, "master", master))
    if port is not None:
        flags = []
        for word, value in (("learning", port.learning), ("flood", port.flood), ("hairpin", port.hairpin),
                            ("isolated", port.isolated)):
            if value is not None:
                flags += [word, "on" if value else "off"]
        if port.cost is not None:
            flags += ["cost", port.cost]
        if flags:
            out.append(_ip(node, "bridge", "link", "set", "dev", name, *flags))
    out += [_ip(node, "addr", "add", text, "dev", name) for text in addresses]
    if up:
        out.append(_ip(node, "link", "set", "dev", name, "up"))
    return out


def _route_args(lab: Lab, node: Node, i: int, route: Route) -> list:
    args = ([route.type] if route.type != "unicast" else []) + [route.dst]
    for word, value in (("via", route.via), ("dev", route.dev), ("scope", route.scope)):
        if value:
            args += [word, value]
    if route.table is not None:
        args += ["table", _table(lab, node, route.table, f"routes[{i}]")]
    if route.metric is not None:
        args += ["metric", route.metric]
    if route.src:
        args += ["src", route.src]
    if route.proto is not None:
        args += ["proto", route.proto]
    if route.onlink:
        args.append("onlink")
    for hop in route.nexthops:  # everything after the first `nexthop` belongs to the hops
        args.append("nexthop")
        for word in ("via", "dev", "weight"):
            if hop.get(word) is not None:
                args += [word, hop[word]]
    return args


def _rule_args(lab: Lab, node: Node, i: int, rule: Rule) -> list:
    args = []
    for word, value in (("from", rule.src), ("to", rule.dst), ("iif", rule.iif), ("oif", rule.oif)):
        if value is not None and not (word in ("from", "to") and value == "all"):
            args += [word, value]
    args += ["table", _table(lab, node, rule.table, f"rules[{i}]")]
    return args + (["priority", rule.priority] if rule.priority is not None else [])


def _heredoc(argv: list, body: str) -> list[str]:
    tag, n = "EOF", 0
    while tag in body.splitlines():
        n += 1
        tag = f"EOF{n}"
    return [f"{_sh(argv)} <<'{tag}'", *body.rstrip("\n").splitlines(), tag]


def _header(lab: Lab, what: str) -> list[str]:
    out = ["#!/bin/sh", f"# netconform lab {oneline(lab.name)}: {what}",
           f"# Document {oneline(lab.document or '-')}, section: {oneline(lab.section or '-')}",
           f"# Lab file: {oneline(lab.source)}"]
    if lab.summary:
        out += ["#"] + ["# " + line for line in textwrap.wrap(oneline(lab.summary), 76)]
    return out + [
        "#",
        "# Run it as root in a throwaway VM, or inside `unshare --net --mount`, e.g.",
        f"#   unshare --net --mount sh -c 'mount -t tmpfs none /run && sh {oneline(lab.name)}.sh'",
        "# The node \"host\" is this shell's own network namespace; every other node is",
        "# a named namespace (ip netns add), reached with `ip -n NODE` / `ip netns exec NODE`.",
        "set -e",
    ]


def shell_script(lab: Lab) -> str:
    """A POSIX shell script that builds ``lab`` as ``builder.build`` does, step by step."""
    validate(lab)
    out = _header(lab, "build it with iproute2, sysctl, iptables and nft")
    add = lambda *argvs: out.extend(_sh(a) for a in argvs)  # noqa: E731
    out.append("\n# namespaces: IPv6 without its noise (no RA, RS, autoconf or DAD, no link-local address unless"
               "\n# the node asks; MLD's repeat early), bridged traffic bypasses iptables (no br_netfilter), lo up")
    for node in lab.nodes:
        if node.name != HOST:
            add(["ip", "netns", "add", node.name])
        ipv6 = {**IPV6_QUIET_SYSCTLS, **namespace_defaults(node.sysctls)}
        add(_in(node.name, "sysctl", "-q", "-w", *(f"{key}={value}" for key, value in ipv6.items())))
        out.append("if [ -e /proc/sys/net/bridge ]; then")
        out.append("  " + _sh(_in(node.name, "sysctl", "-q", "-w", *(f"{key}=0" for key in BR_NETFILTER_SYSCTLS))))
        out.append("fi")
        add(_ip(node.name, "link", "set", "dev", "lo", "up"))
    out.append("\n# links")
    pending = [(node, link) for node in lab.nodes for link in node.links]
    for node, link in sorted(pending, key=lambda item: CREATION_ORDER[item[1].kind]):
        add(*_create(node, link))
    if any(node.sysctls for node in lab.nodes):
        out.append("\n# sysctls")
    for node in lab.nodes:
        for key, value in node.sysctls.items():
            line = _sh(_in(node.name, "sysctl", "-q", "-w", f"{key}={value}"))
            if key in BR_NETFILTER_SYSCTLS and str(value) == "0":  # no br_netfilter: nothing to turn off
                line = f"if [ -e /proc/sys/net/bridge ]; then {line}; fi"
            out.append(line)
    out.append("\n# ports, addresses, state")
    for node in lab.nodes:
        for link in node.links:
            add(*_configure(node.name, link.name, link.master, link.port, link.up, link.addresses))
            if link.peer is not None:
                peer = link.peer
                add(*_configure(peer.node or node.name, peer.name, peer.master, peer.port, peer.up,
                                peer.addresses))
    if any(n.routes or n.rules or n.neighbours or n.fdb for n in lab.nodes):
        out.append("\n# routes, rules, neighbours, fdb")
    for node in lab.nodes:
        add(*(_ip(node.name, "route", "add", *_route_args(lab, node, i, r)) for i, r in enumerate(node.routes)))
        add(*(_ip(node.name, "rule", "add", *_rule_args(lab, node, i, r)) for i, r in enumerate(node.rules)))
        for neigh in node.neighbours:
            add(_ip(node.name, "neigh", "add", *(["proxy"] if neigh.proxy else []), neigh.dst,
                    *(["lladdr", neigh.lladdr] if neigh.lladdr else []), "dev", neigh.dev, "nud", "permanent"))
        for entry in node.fdb:
            add(_ip(node.name, "bridge", "fdb", "append", entry.mac, "dev", entry.dev,
                    *(["dst", entry.dst] if entry.dst else []), "master" if entry.master else "self",
                    "permanent"))
    if any(n.iptables or n.nftables for n in lab.nodes):
        out.append("\n# firewall")
    for node in lab.nodes:
        script, rules = filter_policies(node.iptables)
        if script:  # as the harness does: a built-in chain made with its policy (iptables -P costs ~15 ms more)
            out += _heredoc(_in(node.name, "nft", "-f", "-"), script)
        add(*(_in(node.name, "iptables", *shlex.split(rule)) for rule in rules))
        if node.nftables:
            out += _heredoc(_in(node.name, "nft", "-f", "-"), node.nftables)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- teardown

_ADDING = {"-A": "-D", "--append": "-D", "-I": "-D", "--insert": "-D"}


def _iptables_undo(rule: str) -> list[list]:
    argv = shlex.split(rule)
    for i, word in enumerate(argv):
        if word in _ADDING:
            rest = argv[i + 2:]
            if word in ("-I", "--insert") and rest and rest[0].isdigit():
                rest = rest[1:]  # -I CHAIN N RULE: the position is no part of the rule
            return [["iptables", *argv[:i], "-D", argv[i + 1], *rest]]
        if word in ("-N", "--new-chain"):
            table = argv[:i]
            return [["iptables", *table, "-F", argv[i + 1]], ["iptables", *table, "-X", argv[i + 1]]]
        if word in ("-P", "--policy"):  # the default policy of a fresh namespace
            return [["iptables", *argv[:i], "-P", argv[i + 1], "ACCEPT"]]
    return []


def teardown_script(lab: Lab) -> str:
    """A shell script that removes what ``shell_script(lab)`` made.

    In the host it deletes the lab's iptables rules and chains, nftables tables,
    policy rules, routes and links; every other node goes with its namespace.
    Sysctls written in the host namespace are left as they are.
    """
    validate(lab)
    host = lab.node(HOST)
    out = _header(lab, "tear down what its build script made")
    out.insert(-1, "# Sysctls the build wrote in this shell's namespace are not restored.")
    for rule in reversed(host.iptables):
        out += [_sh(argv) for argv in _iptables_undo(rule)]
    tables = re.findall(r"^\s*(?:add\s+)?table\s+(?:(ip6?|inet|arp|bridge|netdev)\s+)?([\w.-]+)",
                        host.nftables or "", re.M)
    out += [_sh(["nft", "delete", "table", family or "ip", name]) for family, name in dict.fromkeys(tables)]
    for i, rule in reversed(list(enumerate(host.rules))):
        out.append(_sh(["ip", "rule", "del", *_rule_args(lab, host, i, rule)]))
    for i, route in reversed(list(enumerate(host.routes))):  # routes through lab links go with the links
        out.append(f"{_sh(['ip', 'route', 'del', *_route_args(lab, host, i, route)])} 2>/dev/null || true")
    # Every interface living in the host, newest first (uppers before their lowers); deleting one end
    # of a veth deletes both, so each is deleted only if it is still there.
    made = sorted([(node, link) for node in lab.nodes for link in node.links],
                  key=lambda item: CREATION_ORDER[item[1].kind])
    resident = [link.name for node, link in made if node.name == HOST]
    resident += [link.peer.name for node, link in made if link.peer and link.peer.node == HOST]
    for name in reversed(resident):
        out.append(f"if ip link show dev {shlex.quote(name)} >/dev/null 2>&1; then "
                   f"{_sh(['ip', 'link', 'del', 'dev', name])}; fi")
    out += [_sh(["ip", "netns", "del", node.name]) for node in reversed(lab.nodes) if node.name != HOST]
    return "\n".join(out) + "\n"
