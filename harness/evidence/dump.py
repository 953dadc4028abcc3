"""Evidence for a verdict: a lab's state at the moment of failure, and its picture.

The state dump is for a person reading a failed test: what each namespace of the
lab held (links, addresses, routes, rules, neighbours, FDB, the sysctls that
matter, iptables and nft rulesets, conntrack) when the check failed. It shells out
to the tools a person would use, because their output is what that person reads.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess

from harness.kernel import nsutil
from harness.lab.topology import topology

DUMP = (
    ("links", ["ip", "-d", "link", "show"]),
    ("addresses", ["ip", "addr", "show"]),
    ("routes (all tables)", ["ip", "route", "show", "table", "all"]),
    ("rules", ["ip", "rule", "show"]),
    ("neighbours", ["ip", "neigh", "show"]),
    ("bridge fdb", ["bridge", "fdb", "show"]),
    ("bridge ports", ["bridge", "-d", "link", "show"]),
    ("iptables-save", ["iptables-save"]),
    ("nft list ruleset", ["nft", "list", "ruleset"]),
    ("conntrack", ["conntrack", "-L"]),
)
GLOBAL_SYSCTLS = ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables")
PER_DEVICE_SYSCTLS = ("forwarding", "proxy_arp", "rp_filter", "route_localnet")


def _sysctls() -> list[str]:
    lines = []
    for key in GLOBAL_SYSCTLS:
        try:
            lines.append(f"{key} = {nsutil.read_sysctl(key)}")
        except OSError:
            pass
    for directory in sorted(glob.glob("/proc/sys/net/ipv4/conf/*")):
        device = os.path.basename(directory)
        values = []
        for knob in PER_DEVICE_SYSCTLS:
            try:
                with open(os.path.join(directory, knob)) as handle:
                    values.append(f"{knob}={handle.read().strip()}")
            except OSError:
                pass
        lines.append(f"net.ipv4.conf.{device}: {' '.join(values)}")
    try:
        lines.append(f"net.ipv4.neigh.default.proxy_delay = {nsutil.read_sysctl('net.ipv4.neigh.default.proxy_delay')}")
    except OSError:
        pass
    return lines


def state_dump(live) -> str:
    """Everything each node of ``live`` holds, as the usual tools print it."""
    out = [f"# state of lab {live.name} (nodes: {', '.join(live.nodes)})"]
    for node in live.nodes:
        out.append(f"\n######## node {node} ########")
        for title, argv in DUMP:
            if shutil.which(argv[0]) is None:
                out.append(f"\n--- {title}: {argv[0]} not installed")
                continue
            try:
                done = live.run(node, argv, timeout=10)
            except Exception as exc:  # noqa: BLE001 - a dump must not fail the dump
                out.append(f"\n--- {title}: could not run: {exc}")
                continue
            text = (done.stdout + done.stderr).rstrip()
            out.append(f"\n--- {title}\n{text}" if text else f"\n--- {title}: (empty)")
        with live.entered(node):
            out.append("\n--- sysctls\n" + "\n".join(_sysctls()))
    return "\n".join(out) + "\n"


def topology_svg(lab) -> bytes | None:
    """The lab's topology as SVG (Graphviz), or None when ``dot`` is not installed."""
    dot = shutil.which("dot")
    if dot is None:
        return None
    done = subprocess.run([dot, "-Tsvg"], input=topology(lab, "dot").encode(), capture_output=True, timeout=30)
    return done.stdout if done.returncode == 0 else None
