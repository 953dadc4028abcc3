"""Does a CNI result say what is really there, and did DEL leave anything behind?

``mismatches(live, attachment)`` reads the namespaces (netlink, through the lab's
pyroute2 sockets) and lists every claim of the ADD result that is not true: an
interface in another sandbox than CNI_NETNS, a MAC or MTU the link does not have, an
address that is not on its interface, a route the pod does not have.

``snapshot(live, state_dir)`` records what a DEL must take away (links, addresses and
routes of every node of the lab, read with ``harness.kernel.state``, the host's iptables, ip6tables and nftables, the files of the runtime's state
directory); ``leftovers(live, before, after)`` lists what ``after`` has that ``before``
had not. Take ``before`` once the network's shared infrastructure exists (after a first
attachment: the bridge, the shared iptables chains, host-local's last_reserved_ip), so
that what remains is what one attachment made and its DEL did not remove.
"""
from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass

from harness.kernel import state
from harness.kernel.constants import RT_TABLE_LOCAL


def _links(ipr) -> dict[str, object]:
    return {msg.get_attr("IFLA_IFNAME"): msg for msg in ipr.get_links()}


def _addresses(ipr, index: int) -> list[str]:
    return [f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}" for msg in ipr.get_addr(index=index)]


def _routes(ipr, family: int, table: int | None = None) -> list[tuple[str, str | None, int]]:
    """(dst/len, gateway, table) of every route of ``family`` (in ``table`` if given)."""
    return [(route.dst, route.via, route.table) for route in state.routes(ipr, (family,))
            if table is None or route.table == table]


def mismatches(live, attachment, host: str = "host") -> list[str]:
    """Every claim of ``attachment.result`` the namespaces contradict (empty: it is all true)."""
    result, pod, netns = attachment.result or {}, attachment.pod, attachment.netns
    problems: list[str] = []
    interfaces = result.get("interfaces") or []
    sandboxed = [intf for intf in interfaces if isinstance(intf, dict) and intf.get("sandbox")]
    if interfaces and not any(intf.get("sandbox") == netns for intf in sandboxed):
        problems.append(f"no interface of the result has sandbox {netns!r} (CNI_NETNS); sandboxes: "
                        f"{[intf.get('sandbox', '') for intf in interfaces if isinstance(intf, dict)]}")
    where: list[tuple[str, object] | None] = []  # per interface: (node, link message) or None
    links = {node: _links(live.ipr(node)) for node in (pod, host)}
    for i, intf in enumerate(interfaces):
        if not isinstance(intf, dict) or not isinstance(intf.get("name"), str):
            where.append(None)
            continue
        name, sandbox = intf["name"], intf.get("sandbox") or ""
        label = f"interfaces[{i}] ({name})"
        if sandbox and sandbox != netns:
            problems.append(f"{label}: sandbox is {sandbox!r}, but CNI_NETNS was {netns!r}")
        node = pod if sandbox else host
        link = links[node].get(name)
        if link is None:
            problems.append(f"{label}: no link {name!r} in {node} (it has {', '.join(sorted(links[node]))})")
            where.append(None)
            continue
        where.append((node, link))
        mac = link.get_attr("IFLA_ADDRESS")
        if isinstance(intf.get("mac"), str) and mac and intf["mac"].lower() != mac.lower():
            problems.append(f"{label}: mac: the result says {intf['mac']}, {node} has {mac}")
        if isinstance(intf.get("mtu"), int) and intf["mtu"] != link.get_attr("IFLA_MTU"):
            problems.append(f"{label}: mtu: the result says {intf['mtu']}, {node} has {link.get_attr('IFLA_MTU')}")
    for j, ip in enumerate(result.get("ips") or []):
        if not isinstance(ip, dict) or not isinstance(ip.get("interface"), int):
            continue
        index = ip["interface"]
        if not 0 <= index < len(interfaces):
            problems.append(f"ips[{j}] ({ip.get('address')}): interface {index} is not in interfaces")
            continue
        if where[index] is None:
            continue
        node, link = where[index]
        have = _addresses(live.ipr(node), link["index"])
        if ip.get("address") not in have:
            problems.append(f"ips[{j}]: {ip.get('address')} is not on {interfaces[index]['name']} in {node} "
                            f"(it has {', '.join(have) or 'no address'})")
    if any(intf.get("sandbox") == netns for intf in sandboxed):  # routes are the sandbox interface's
        for k, route in enumerate(result.get("routes") or []):
            if not isinstance(route, dict) or not isinstance(route.get("dst"), str):
                continue
            try:
                dst = ipaddress.ip_network(route["dst"], strict=False)
            except ValueError:
                continue
            family = socket.AF_INET if dst.version == 4 else socket.AF_INET6
            table = route.get("table") if isinstance(route.get("table"), int) else None
            have = _routes(live.ipr(pod), family, table)
            same = [r for r in have if ipaddress.ip_network(r[0], strict=False) == dst]
            if not same:
                problems.append(f"routes[{k}]: no route to {dst} in {pod} "
                                f"(routes: {', '.join(r[0] + (' via ' + r[1] if r[1] else '') for r in have)})")
            elif route.get("gw") and not any(r[1] == route["gw"] for r in same):
                problems.append(f"routes[{k}]: the route to {dst} in {pod} is not via {route['gw']} "
                                f"(via {', '.join(str(r[1]) for r in same)})")
    return problems


# -- what DEL must take away -----------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """Facts about a lab, one line each ("host: link veth1234 (veth)")."""
    facts: frozenset[str]
    state_dir: str | None = None


def _firewall(live, node: str) -> list[str]:
    """``node``'s iptables and ip6tables rules and chains, and the nftables tables plugins make (bridge's
    and ptp's ipMasqBackend nftables, portmap's backend), each a fact: an IPv6 masquerade or DNAT left
    by DEL is as much a leftover as an IPv4 one."""
    found, facts = state.snapshot(live.fd(node), ("iptables", "ip6tables", "nft")), []
    for tool in ("iptables", "ip6tables"):
        table = "?"
        for line in found[tool] or ():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                chain, policy = line[1:].split()[:2]
                if policy == "-":  # a chain of someone's
                    facts.append(f"{node}: {tool} -t {table} chain {chain}")
                elif policy != "ACCEPT":  # a built-in chain comes with its table: only a policy changed says much
                    facts.append(f"{node}: {tool} -t {table} chain {chain} policy {policy}")
            elif line.startswith("-A"):
                facts.append(f"{node}: {tool} -t {table} {line}")
    return facts + [f"{node}: {fact}" for fact in sorted(nft_facts(found["nft"] or ()))]


IPTABLES_NFT_TABLES = re.compile(r"(ip|ip6) (filter|nat|mangle|raw|security)")  # iptables-nft's: read as iptables


def nft_facts(lines) -> set[str]:
    """``nft list ruleset`` as facts ``nft FAMILY TABLE CHAIN LINE`` (a table, a chain and each rule or
    declaration in it), for the tables a plugin's nftables backend makes (bridge and ptp's
    ipMasqBackend, portmap's backend); the tables iptables-nft keeps are read with iptables-save."""
    facts, table, chain = set(), None, None
    for line in lines:
        words = line.strip()
        if words.startswith("table "):
            table, chain = words[len("table "):].rstrip(" {"), None
            if not IPTABLES_NFT_TABLES.fullmatch(table):
                facts.add(f"nft {table}")
        elif words.startswith("chain "):
            chain = words[len("chain "):].rstrip(" {")
            if table and not IPTABLES_NFT_TABLES.fullmatch(table):
                facts.add(f"nft {table} {chain}")
        elif words == "}":
            chain = None
        elif table and not IPTABLES_NFT_TABLES.fullmatch(table):
            facts.add(f"nft {table} {chain or '-'} {words}")
    return facts



def _netlink_facts(live, node: str) -> list[str]:
    """Links (with their kind), addresses and routes (both families, every table but the local one) of
    ``node``, each a fact; read on the lab's raw rtnetlink socket, as ``state.snapshot`` and
    ``state.routes`` read them over pyroute2 (tests/test_cni_reality.py holds the two equal), at a
    tenth of the cost: a DEL check takes two of these per node."""
    rtnl = live.rtnl(node)
    links = rtnl.link_kinds()
    names = {index: name for index, name, _ in links}
    facts = [f"{node}: link {name} ({kind or 'device'})" for _, name, kind in links if name != "lo"]
    for family in (socket.AF_INET, socket.AF_INET6):
        facts += [f"{node}: address {prefix} on {names.get(index)}" for index, prefix in rtnl.prefixes(family)
                  if names.get(index) != "lo"]
        facts += [f"{node}: route {dst}{f' via {via}' if via else ''} dev {names.get(oif, oif)} table {table}"
                  for table, dst, via, oif in rtnl.routes(family) if table != RT_TABLE_LOCAL]
    return facts


def snapshot(live, state_dir: str | None = None, host: str = "host") -> Snapshot:
    """Links, addresses and routes (IPv4 and IPv6) of every node, the host's iptables, ip6tables and
    plugin-made nftables, the state dir's files."""
    facts: list[str] = []
    for node in live.nodes:
        facts += _netlink_facts(live, node)
    facts += _firewall(live, host)
    if state_dir and os.path.isdir(state_dir):
        for directory, _, files in os.walk(state_dir):
            for name in files:
                facts.append(f"state: file {os.path.relpath(os.path.join(directory, name), state_dir)}")
    return Snapshot(frozenset(facts), state_dir)


def leftovers(live, before: Snapshot, after: Snapshot | None = None) -> list[str]:
    """What ``after`` (default: the lab now) has that ``before`` had not, sorted."""
    if after is None:
        after = snapshot(live, before.state_dir)
    return sorted(after.facts - before.facts)
