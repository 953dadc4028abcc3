"""The documents' own shell commands for each document lab, and the state they leave.

``harness/lab/data/shell/LAB.sh`` holds, for the lab LAB, the commands its document gives
(verbatim where it gives them, stand-ins and ``# lab:`` additions marked), then a line
``#### teardown`` and the commands that take the lab down again. Each runs with
``sh -e`` as root inside a scratch network namespace that stands in for the
document's host (the lab's ``host`` node); every other node is an ``ip netns add``.

``state(fd)`` reads what one namespace holds, as comparable data, and
``differences(a, b)`` lists, one line each, where two ``{node: state}`` disagree: the
benchmark and tests/test_doc_shell.py use them to hold a script's lab next to the
harness's build of the same lab.
"""
from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable

from harness import paths
from harness.kernel import nsutil
from harness.kernel.constants import (
    AF_BRIDGE,
    AF_INET,
    DEFAULT_RULES,
    IFF_LOWER_UP,
    IFF_UP,
    IPVLAN_MODES,
    MACVLAN_MODES,
    NUD_PERMANENT,
    ROUTE_TYPES,
    RT_TABLE_LOCAL,
    TUN_TYPES,
)
from harness.kernel.netops import close_quietly, ipr_in, sync_linkwatch
from harness.kernel.rtnl import Rtnl

SHELL_DIR = paths.SHELL_DIR
TEARDOWN_MARK = "#### teardown"
ROUTE_TYPE_WORDS = {number: "" if name == "unicast" else f"{name} " for name, number in ROUTE_TYPES.items()}


class ScriptError(ValueError):
    """A shell file without its teardown part, or with two."""


def scripts() -> dict[str, str]:
    """{lab name: path of its shell file}, sorted by lab name."""
    if not os.path.isdir(SHELL_DIR):
        return {}
    return {name[:-3]: os.path.join(SHELL_DIR, name) for name in sorted(os.listdir(SHELL_DIR))
            if name.endswith(".sh")}


def parts(path: str) -> tuple[str, str]:
    """(build, teardown): the text before and after the ``#### teardown`` line."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    pieces = re.split(r"^" + re.escape(TEARDOWN_MARK) + r"[ \t]*\n", text, flags=re.MULTILINE)
    if len(pieces) != 2:
        raise ScriptError(f"{path}: needs exactly one line {TEARDOWN_MARK!r}, found {len(pieces) - 1}")
    return pieces[0], pieces[1]


def commands(script: str) -> int:
    """How many commands a script part runs (its lines that are neither blank nor comments)."""
    return sum(1 for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def run(script: str, what: str, errexit: bool = True) -> None:
    """Run ``script`` with ``sh -e`` in the calling thread's namespace; a failure raises, in one line.

    ``errexit=False`` runs every command whatever fails (a clean-up after a failed build)."""
    argv = ["sh", "-e", "-c", script] if errexit else ["sh", "-c", script]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)
    if errexit and done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ScriptError(f"{what} failed (exit {done.returncode}): {last}")


# -- reading a namespace back --------------------------------------------------------
def _settle(fd: int) -> None:
    """Make pending linkwatch work effective (a port's carrier, then its bridge's)."""
    rtnl = Rtnl(fd)
    try:
        for _ in range(5):
            if not sync_linkwatch(rtnl):
                return
    finally:
        rtnl.close()


def _named(value, names: dict) -> str:
    """A mode as its name: pyroute2 decodes some to names already, others it leaves numbers."""
    return value if isinstance(value, str) else names.get(value, str(value))


def _kind(msg, names: dict[int, str]) -> str:
    info = msg.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info else None
    data = info.get_attr("IFLA_INFO_DATA") if info else None
    if kind is None or data is None or isinstance(data, (bytes, str)):
        return kind or "-"
    if kind == "macvlan":
        return f"macvlan mode {_named(data.get_attr('IFLA_MACVLAN_MODE'), MACVLAN_MODES)}"
    if kind == "ipvlan":
        return f"ipvlan mode {_named(data.get_attr('IFLA_IPVLAN_MODE'), IPVLAN_MODES)}"
    if kind == "tun":
        return _named(data.get_attr("IFLA_TUN_TYPE"), TUN_TYPES)
    if kind == "vxlan":
        learning = "learning" if data.get_attr("IFLA_VXLAN_LEARNING") else "nolearning"
        return (f"vxlan id {data.get_attr('IFLA_VXLAN_ID')} dstport {data.get_attr('IFLA_VXLAN_PORT')} "
                f"local {data.get_attr('IFLA_VXLAN_LOCAL')} dev {names.get(data.get_attr('IFLA_VXLAN_LINK'))} "
                f"{learning}")
    return kind


def _link(msg, names: dict[int, str], macs: set[str]) -> str:
    """'kind [master M [hairpin]] up|down carrier|no-carrier mtu N [mac X]' of one link."""
    words = [_kind(msg, names)]
    master = names.get(msg.get_attr("IFLA_MASTER"))
    if master:
        words.append(f"master {master}")
        info = msg.get_attr("IFLA_LINKINFO")
        port = info.get_attr("IFLA_INFO_SLAVE_DATA") if info else None
        if port is not None and not isinstance(port, (bytes, str)) and port.get_attr("IFLA_BRPORT_MODE"):
            words.append("hairpin")
    flags = msg["flags"]
    words.append("up" if flags & IFF_UP else "down")
    words.append("carrier" if flags & IFF_LOWER_UP else "no-carrier")
    words.append(f"mtu {msg.get_attr('IFLA_MTU')}")
    if msg.get_attr("IFLA_IFNAME") in macs:
        words.append(f"mac {msg.get_attr('IFLA_ADDRESS')}")
    return " ".join(words)


def _tool_lines(argv: list[str]) -> list[str]:
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise ScriptError(f"{' '.join(argv)}: {(done.stderr.strip().splitlines() or ['failed'])[0]}")
    text = re.sub(r"\[\d+:\d+\]", "", done.stdout)  # iptables-save counters
    text = re.sub(r"counter packets \d+ bytes \d+", "counter", text)
    return [line.rstrip() for line in text.splitlines()
            if line.strip() and not line.startswith("#") and line.strip() != "COMMIT"]


def state(fd: int, macs: Iterable[str] = ()) -> dict:
    """What the namespace ``fd`` holds: links (but lo), IPv4 addresses, routes (but the
    local table), policy rules (but the defaults), permanent neighbours, FDB entries
    with a remote, iptables-save and nft rulesets. ``macs`` names the links whose MAC
    counts (those a lab fixes; others are random)."""
    _settle(fd)
    macs = set(macs)
    ipr = ipr_in(fd)
    try:
        raw = list(ipr.get_links())
        names = {msg["index"]: msg.get_attr("IFLA_IFNAME") for msg in raw}
        links = {names[msg["index"]]: _link(msg, names, macs) for msg in raw if names[msg["index"]] != "lo"}
        addresses = sorted(f"{names[m['index']]} {m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}"
                           for m in ipr.get_addr(family=AF_INET) if names[m["index"]] != "lo")
        routes = []
        for m in ipr.get_routes(family=AF_INET):
            table = m.get_attr("RTA_TABLE")
            if table == RT_TABLE_LOCAL:
                continue
            dst = f"{m.get_attr('RTA_DST')}/{m['dst_len']}" if m["dst_len"] else "default"
            text = ROUTE_TYPE_WORDS.get(m["type"], f"type{m['type']} ") + dst
            if m.get_attr("RTA_GATEWAY"):
                text += f" via {m.get_attr('RTA_GATEWAY')}"
            if m.get_attr("RTA_OIF"):
                text += f" dev {names.get(m.get_attr('RTA_OIF'))}"
            routes.append(text + ("" if table == 254 else f" table {table}"))
        rules = sorted(f"{m.get_attr('FRA_PRIORITY')}: from {m.get_attr('FRA_SRC') or 'all'}/{m['src_len']} "
                       f"to {m.get_attr('FRA_DST') or 'all'}/{m['dst_len']} lookup {m.get_attr('FRA_TABLE')}"
                       for m in ipr.get_rules(family=AF_INET)
                       if (m.get_attr("FRA_PRIORITY") or 0, m.get_attr("FRA_TABLE")) not in DEFAULT_RULES)
        neighbours = sorted(f"{m.get_attr('NDA_DST')} lladdr {m.get_attr('NDA_LLADDR')} dev {names.get(m['ifindex'])}"
                            for m in ipr.get_neighbours(family=AF_INET) if m["state"] & NUD_PERMANENT)
        fdb = sorted(f"{m.get_attr('NDA_LLADDR')} dev {names.get(m['ifindex'])} dst {m.get_attr('NDA_DST')}"
                     for m in ipr.get_neighbours(family=AF_BRIDGE) if m.get_attr("NDA_DST"))
    finally:
        close_quietly(ipr)
    with nsutil.entered(fd):
        iptables = _tool_lines(["iptables-save"])
        nft = _tool_lines(["nft", "list", "ruleset"])
    return {"links": links, "addresses": addresses, "routes": sorted(routes), "rules": rules,
            "neighbours": neighbours, "fdb": fdb, "iptables": iptables, "nft": nft}


def differences(a: dict, b: dict, names: tuple[str, str] = ("script", "harness")) -> list[str]:
    """One line per disagreement between two ``{node: state}``; [] when they hold the same."""
    left, right = names
    out = []
    for node in sorted(set(a) | set(b)):
        if node not in a or node not in b:
            out.append(f"{node}: namespace only in the {left if node in a else right} build")
            continue
        for section in a[node]:
            mine, theirs = a[node][section], b[node][section]
            if mine == theirs:
                continue
            if isinstance(mine, dict):
                for key in sorted(set(mine) | set(theirs)):
                    if mine.get(key) != theirs.get(key):
                        out.append(f"{node} {section} {key}: {left} {mine.get(key)!r}, {right} {theirs.get(key)!r}")
            elif section in ("iptables", "nft"):  # order matters within a ruleset
                out.append(f"{node} {section}: {left} {mine!r}, {right} {theirs!r}")
            else:
                only_a = [item for item in mine if item not in theirs]
                only_b = [item for item in theirs if item not in mine]
                out.append(f"{node} {section}: only in the {left} build {only_a!r}; "
                           f"only in the {right} build {only_b!r}")
    return out
