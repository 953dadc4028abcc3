"""Reading and checking lab files.

A lab file is YAML, validated against ``LAB_SCHEMA`` (unknown keys are errors) and
then checked for meaning: unknown nodes, interface names over 15 characters,
invalid CIDRs, duplicate addresses, masters that are not bridges, gateways no
connected subnet reaches (``harness.lab.checks``). Every fault is one line:
``FILE: FIELD: what is wrong``.
"""
from __future__ import annotations

import os
import pickle
from typing import Any

import jsonschema
import yaml

from harness import paths
from harness.errors import LabError
from harness.lab import checks
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

_VALIDATOR = jsonschema.Draft202012Validator(LAB_SCHEMA)
# libyaml's parser when PyYAML has it (9x faster here; a lab is read for every test).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


def _settings(spec: dict) -> dict:
    """The keywords of ``model.Settings`` (what a link and a veth's peer both set) from a link's mapping."""
    port = spec.get("port")
    return {"addresses": list(spec.get("addresses", [])), "mac": spec.get("mac"), "mtu": spec.get("mtu"),
            "up": spec.get("up", True), "master": spec.get("master"), "port": PortOptions(**port) if port else None}


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
        for i, spec in enumerate(body.get("links", [])):
            if "ipip" in spec and spec["kind"] != "ipip":
                raise LabError(f"{source}: nodes.{node_name}.links[{i}].ipip: a {spec['kind']} is not an ipip tunnel")
            peer = spec.get("peer")
            vxlan = spec.get("vxlan") or spec.get("ipip") or {}
            parent, parent_node = spec.get("parent"), None
            if parent and ":" in parent:
                parent_node, parent = parent.split(":", 1)
            links.append(Link(
                name=spec["name"], kind=spec["kind"], **_settings(spec),
                peer=Peer(name=peer["name"], node=peer.get("node"), **_settings(peer)) if peer else None,
                bridge=BridgeOptions(**spec["bridge"]) if "bridge" in spec else None,
                parent=parent, parent_node=parent_node, mode=spec.get("mode"),
                vni=vxlan.get("id", spec.get("id")), port_udp=vxlan.get("port"), local=vxlan.get("local"),
                remote=vxlan.get("remote"), vxlan_learning=vxlan.get("learning"), table=spec.get("table"),
                ttl=vxlan.get("ttl"),
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


def validate(lab: Lab) -> None:
    """Check a lab for meaning; raise ``LabError`` naming the first fault.

    It puts the host node first (adding it if the lab has none), then runs the checks of
    ``harness.lab.checks``, which change nothing."""
    lab.ensure_host()
    checks.check(lab)
