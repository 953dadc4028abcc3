"""Reading and checking lab files.

A lab file is YAML, validated against ``LAB_SCHEMA`` (unknown keys are errors) and
then checked for meaning: unknown nodes, interface names over 15 characters,
invalid CIDRs, duplicate addresses, masters that are not bridges, gateways no
connected subnet reaches. Every fault is one line: ``FILE: FIELD: what is wrong``.
"""
from __future__ import annotations

import ipaddress
import os
import pickle
import re
import shlex
from typing import Any

import jsonschema
import yaml

from harness import paths
from harness.errors import LabError
from harness.kernel.constants import IFNAMSIZ, LINK_KINDS, LINK_MODES, ROUTE_TYPES, TABLE_NAMES
from harness.lab.schema import LAB_SCHEMA
from harness.lab.model import (
    BridgeOptions,
    FdbEntry,
    Lab,
    Link,
    Neighbour,
    Node,
    Peer,
    PortOptions,
    Route,
    Rule,
)

_NAME_OK = re.compile(r"^[^/:\s]+$")
_VALIDATOR = jsonschema.Draft202012Validator(LAB_SCHEMA)
# libyaml's parser when PyYAML has it (9x faster here; a lab is read for every test).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
IPTABLES_ARITY = {"-t": 1, "--table": 1, "-A": 1, "--append": 1, "-I": 1, "--insert": 1,
                  "-N": 1, "--new-chain": 1, "-P": 2, "--policy": 2}


class _LabLoader(_YAML_LOADER):
    """The safe loader, refusing a key given twice in one mapping (the second would replace the first)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the constructor reports it itself
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _where(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def _port_options(data: dict | None) -> PortOptions | None:
    return PortOptions(**data) if data else None


def lab_from_dict(data: Any, source: str = "<dict>") -> Lab:
    """Validate a parsed lab document and turn it into a checked ``Lab``."""
    errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        first = errors[0]
        raise LabError(f"{source}: {_where(first.absolute_path)}: {first.message}")
    nodes = []
    for node_name, body in data["nodes"].items():
        body = body or {}
        links = []
        for spec in body.get("links", []):
            peer = spec.get("peer")
            vxlan = spec.get("vxlan") or {}
            parent, parent_node = spec.get("parent"), None
            if parent and ":" in parent:
                parent_node, parent = parent.split(":", 1)
            links.append(Link(
                name=spec["name"], kind=spec["kind"], addresses=list(spec.get("addresses", [])),
                mac=spec.get("mac"), mtu=spec.get("mtu"), up=spec.get("up", True), master=spec.get("master"),
                port=_port_options(spec.get("port")),
                peer=Peer(name=peer["name"], node=peer.get("node"), addresses=list(peer.get("addresses", [])),
                          mac=peer.get("mac"), mtu=peer.get("mtu"), up=peer.get("up", True),
                          master=peer.get("master"), port=_port_options(peer.get("port"))) if peer else None,
                bridge=BridgeOptions(**spec["bridge"]) if "bridge" in spec else None,
                parent=parent, parent_node=parent_node, mode=spec.get("mode"),
                vni=vxlan.get("id", spec.get("id")), port_udp=vxlan.get("port"), local=vxlan.get("local"),
                remote=vxlan.get("remote"), vxlan_learning=vxlan.get("learning"), table=spec.get("table"),
            ))
        nodes.append(Node(
            name=node_name, links=links,
            routes=[Route(**r) for r in body.get("routes", [])],
            rules=[Rule(priority=r.get("priority"), src=r.get("from"), dst=r.get("to"), iif=r.get("iif"),
                        oif=r.get("oif"), table=r["table"]) for r in body.get("rules", [])],
            neighbours=[Neighbour(**n) for n in body.get("neighbours", [])],
            fdb=[FdbEntry(**f) for f in body.get("fdb", [])],
            sysctls=dict(body.get("sysctls", {})),
            iptables=list(body.get("iptables", [])),
            nftables=body.get("nftables"),
        ))
    lab = Lab(name=data["lab"], nodes=nodes, document=data.get("document"), section=data.get("section"),
              summary=data.get("summary"), source=source)
    validate(lab)
    return lab


_parsed: dict[tuple[str, str], bytes] = {}  # (path, its text) -> the valid Lab, pickled


def load_lab_file(path: str) -> Lab:
    """The lab in file ``path``, checked. Text already parsed and checked from this path is
    not parsed and checked again: a fresh copy of its Lab comes back in ~15 us instead of
    ~0.6 ms (a suite builds the same labs over and over)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        key = (os.path.abspath(path), text)
        if key in _parsed:
            return pickle.loads(_parsed[key])
        data = yaml.load(text, Loader=_LabLoader)  # noqa: S506 - a safe loader
    except OSError as exc:
        raise LabError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise LabError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(top)"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise LabError(f"{path}: {where}: broken YAML: {problem}") from None
    if data is None:
        raise LabError(f"{path}: (top): the file is empty (a lab file is a mapping with lab and nodes)")
    lab = lab_from_dict(data, source=path)
    _parsed[key] = pickle.dumps(lab)
    return lab


def bundled_lab_dir() -> str:
    return paths.LAB_DATA


def bundled_labs() -> list[str]:
    return sorted(name[:-5] for name in os.listdir(bundled_lab_dir()) if name.endswith(".yaml"))


def load_lab(name_or_path: str) -> Lab:
    """A bundled lab by name (``001-vbridge``) or a lab file by path."""
    if os.sep in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        return load_lab_file(name_or_path)
    path = os.path.join(bundled_lab_dir(), name_or_path + ".yaml")
    if not os.path.exists(path):
        raise LabError(f"{name_or_path}: no such lab (bundled labs: {', '.join(bundled_labs())})")
    return load_lab_file(path)


# ---------------------------------------------------------------- meaning checks

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


def validate(lab: Lab) -> None:
    """Check a lab for meaning; raise ``LabError`` naming the first fault."""
    src = lab.source
    lab.ensure_host()
    names = lab.node_names
    for name in names:
        if names.count(name) > 1:
            raise LabError(f"{src}: nodes.{name}: node {name!r} is defined twice")
    for name in names:
        if not _NAME_OK.match(name) or len(name) > 255 or name in (".", ".."):
            raise LabError(f"{src}: nodes.{name}: not a usable namespace name")
    # Which links exist where, and which addresses are connected where.
    links_in: dict[str, dict[str, tuple[str, object]]] = {n: {} for n in names}
    connected: dict[str, list] = {n: [] for n in names}
    seen_addresses: dict[str, str] = {}

    def add_link(node: str, name: str, kind: str, where: str, addresses: list[str]):
        if node not in links_in:
            raise LabError(f"{src}: {where}: unknown node {node!r} (nodes: {', '.join(names)})")
        if not isinstance(name, str):
            raise LabError(f"{src}: {where}.name: {name!r} is not a string")
        if not name or len(name) > IFNAMSIZ:
            raise LabError(f"{src}: {where}.name: {name!r} is {len(name)} characters; "
                           f"Linux interface names are 1 to {IFNAMSIZ}")
        if not _NAME_OK.match(name) or name in (".", ".."):
            raise LabError(f"{src}: {where}.name: {name!r} is not a valid interface name")
        if name in links_in[node]:
            raise LabError(f"{src}: {where}.name: {name!r} is defined twice in node {node!r}")
        links_in[node][name] = (kind, where)
        for i, text in enumerate(addresses):
            iface = _interface(text, f"{where}.addresses[{i}]", src)
            key = str(iface.ip)
            if key in seen_addresses:
                raise LabError(f"{src}: {where}.addresses[{i}]: duplicate address {key} "
                               f"(already at {seen_addresses[key]})")
            seen_addresses[key] = f"{node}/{name}"
            connected[node].append((iface.network, name))

    for node in lab.nodes:
        for i, link in enumerate(node.links):
            where = f"nodes.{node.name}.links[{i}]"
            if link.kind not in LINK_KINDS:
                raise LabError(f"{src}: {where}.kind: unknown kind {link.kind!r}")
            add_link(node.name, link.name, link.kind, where, link.addresses)
            if link.kind == "veth":
                if link.peer is None:
                    raise LabError(f"{src}: {where}.peer: a veth needs a peer (veths are made in pairs)")
                add_link(link.peer.node or node.name, link.peer.name, "veth", f"{where}.peer", link.peer.addresses)
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
    for node in lab.nodes:
        mine = links_in[node.name]
        for i, link in enumerate(node.links):
            where = f"nodes.{node.name}.links[{i}]"
            for owner, master, w in ((node.name, link.master, where),
                                     (link.peer.node or node.name if link.peer else None,
                                      link.peer.master if link.peer else None, f"{where}.peer")):
                if master is None:
                    continue
                kind = links_in[owner].get(master, (None,))[0]
                if kind is None:
                    raise LabError(f"{src}: {w}.master: no link {master!r} in node {owner!r}")
                if kind not in ("bridge", "vrf"):
                    raise LabError(f"{src}: {w}.master: {master!r} is a {kind}, not a bridge")
            if link.parent:
                pnode = link.parent_node or node.name
                if pnode not in links_in:
                    raise LabError(f"{src}: {where}.parent: unknown node {pnode!r}")
                if link.parent not in links_in[pnode]:
                    raise LabError(f"{src}: {where}.parent: no link {link.parent!r} in node {pnode!r}")
        for i, route in enumerate(node.routes):
            where = f"nodes.{node.name}.routes[{i}]"
            dst_net = _network(route.dst, f"{where}.dst", src)
            _table(route.table, f"{where}.table", src)
            if route.type not in ROUTE_TYPES:
                raise LabError(f"{src}: {where}.type: unknown route type {route.type!r}")
            if route.dev is not None and route.dev not in mine:
                raise LabError(f"{src}: {where}.dev: no link {route.dev!r} in node {node.name!r}")
            hops = route.nexthops or ([{"via": route.via, "dev": route.dev}] if route.via else [])
            for j, hop in enumerate(hops):
                hw = f"{where}.nexthops[{j}]" if route.nexthops else f"{where}.via"
                if hop.get("dev") is not None and hop["dev"] not in mine:
                    raise LabError(f"{src}: {hw}: no link {hop['dev']!r} in node {node.name!r}")
                if hop.get("via") is None:
                    continue
                gateway = _address(hop["via"], hw, src)
                if gateway.version != dst_net.version:
                    raise LabError(f"{src}: {hw}: gateway {gateway} is IPv{gateway.version} but the destination "
                                   f"{route.dst} is IPv{dst_net.version}")
                if route.onlink:
                    continue
                reach = [dev for net, dev in connected[node.name]
                         if gateway in net and (hop.get("dev") is None or hop.get("dev") == dev)]
                # A /32 host route "X dev D scope link" makes X reachable on D (Calico's 169.254.1.1).
                reach += [r.dev for r in node.routes if r.dev and r.via is None and r.type == "unicast"
                          and r.dst != "default" and gateway in ipaddress.ip_network(r.dst, strict=False)
                          and (hop.get("dev") is None or hop.get("dev") == r.dev)]
                if not reach:
                    raise LabError(f"{src}: {hw}: gateway {gateway} is unreachable from node {node.name!r} "
                                   "(no connected subnet or link route holds it; add an address or onlink)")
            if route.src is not None:
                _address(route.src, f"{where}.src", src)
        for i, rule in enumerate(node.rules):
            where = f"nodes.{node.name}.rules[{i}]"
            _table(rule.table, f"{where}.table", src)
            for key, value in (("from", rule.src), ("to", rule.dst)):
                if value is not None and value != "all":
                    _network(value, f"{where}.{key}", src)
            for key, value in (("iif", rule.iif), ("oif", rule.oif)):
                if value is not None and value not in mine:
                    raise LabError(f"{src}: {where}.{key}: no link {value!r} in node {node.name!r}")
        for i, neigh in enumerate(node.neighbours):
            where = f"nodes.{node.name}.neighbours[{i}]"
            _address(neigh.dst, f"{where}.dst", src)
            if neigh.dev not in mine:
                raise LabError(f"{src}: {where}.dev: no link {neigh.dev!r} in node {node.name!r}")
        for i, entry in enumerate(node.fdb):
            where = f"nodes.{node.name}.fdb[{i}]"
            if entry.dev not in mine:
                raise LabError(f"{src}: {where}.dev: no link {entry.dev!r} in node {node.name!r}")
            if entry.dst is not None:
                _address(entry.dst, f"{where}.dst", src)
        for i, rule in enumerate(node.iptables):
            try:
                argv = shlex.split(rule)
            except ValueError as exc:
                raise LabError(f"{src}: nodes.{node.name}.iptables[{i}]: {exc}") from None
            for at, arg in enumerate(argv):
                need = IPTABLES_ARITY.get(arg, 0)
                if len(argv) - at - 1 < need:
                    raise LabError(f"{src}: nodes.{node.name}.iptables[{i}]: {arg} needs {need} "
                                   f"argument{'s' if need > 1 else ''}: {rule!r}")
            if not any(a in ("-A", "-I", "-N", "-P", "--append", "--insert", "--new-chain", "--policy")
                       for a in argv):
                raise LabError(f"{src}: nodes.{node.name}.iptables[{i}]: a rule must add something "
                               f"(-A, -I, -N or -P): {rule!r}")
        for key in node.sysctls:
            if not re.match(r"^[a-z0-9_]+(\.[A-Za-z0-9_.@-]+)+$", key) and "/" not in key:
                raise LabError(f"{src}: nodes.{node.name}.sysctls: {key!r} is not a sysctl name")
