"""What this kernel and system can do, found by trying each thing once.

Guessing from kernel versions or config files is wrong as often as not (modules,
backports, containers); creating the object in a scratch namespace is what
pyroute2's own ``require_*`` helpers do, and the failure becomes the skip reason.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from harness.kernel import nsutil, xdp
from harness.kernel.linkkinds import KINDS, TUNTAP
from harness.kernel.netops import close_quietly

# The kinds tried with one RTM_NEWLINK; tun and tap have a check of their own (/dev/net/tun).
LINK_KINDS = {name: kind for name, kind in KINDS.items() if kind.made_by != TUNTAP}
TOOLS = {"iptables": "iptables", "nft": "nftables", "tcpdump": "tcpdump", "tshark": "tshark"}


def _errno_text(exc: NetlinkError) -> str:
    return os.strerror(exc.code) if exc.code > 0 else str(exc)


def _try_link(ipr: IPRoute, name: str) -> str | None:
    spec = dict(LINK_KINDS[name].probe)
    if LINK_KINDS[name].parent:
        ipr.link("add", ifname="nc-cap-lower", kind="veth", peer={"ifname": "nc-cap-lower1"})
        spec["link"] = ipr.link_lookup(ifname="nc-cap-lower")[0]
    try:
        ipr.link("add", ifname=f"nc-cap-{name}"[:15], **spec)
    except NetlinkError as exc:
        return f"kernel lacks {name} links (RTM_NEWLINK kind={name}: {_errno_text(exc)})"
    return None


def _try_tun(ipr: IPRoute) -> str | None:
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun (TUN/TAP driver missing)"
    try:
        ipr.link("add", ifname="nc-cap-tap", kind="tuntap", mode="tap")
    except (NetlinkError, OSError) as exc:
        return f"cannot make a TUN/TAP device: {getattr(exc, 'strerror', None) or exc}"
    return None


def _try_netem(ipr: IPRoute) -> str | None:
    ipr.link("add", ifname="nc-cap-q", kind="veth", peer={"ifname": "nc-cap-q1"})
    index = ipr.link_lookup(ifname="nc-cap-q")[0]
    try:
        ipr.tc("add", "netem", index=index, handle="1:", delay=1000)
    except NetlinkError as exc:
        return f"kernel lacks the netem qdisc (RTM_NEWQDISC netem: {_errno_text(exc)})"
    return None


def _try_port_isolation(ipr: IPRoute) -> str | None:
    ipr.link("add", ifname="nc-cap-br", kind="bridge")
    ipr.link("add", ifname="nc-cap-p", kind="veth", peer={"ifname": "nc-cap-p1"})
    port = ipr.link_lookup(ifname="nc-cap-p")[0]
    ipr.link("set", index=port, master=ipr.link_lookup(ifname="nc-cap-br")[0])
    try:
        ipr.brport("set", index=port, isolated=1)
    except NetlinkError as exc:
        return f"kernel lacks bridge port isolation (IFLA_BRPORT_ISOLATED: {_errno_text(exc)})"
    return None


def _try_xdp(ipr: IPRoute) -> str | None:
    try:
        fd = xdp.load(xdp.XDP_DROP)
    except OSError as exc:
        return f"cannot load an XDP program ({exc.strerror})"
    try:
        ipr.link("add", ifname="nc-cap-xdp", kind="veth", peer={"ifname": "nc-cap-xdp1"})
        xdp.attach(ipr, ipr.link_lookup(ifname="nc-cap-xdp")[0], fd)
    except NetlinkError as exc:
        return f"kernel cannot attach XDP to a veth (IFLA_XDP_FD: {_errno_text(exc)})"
    finally:
        os.close(fd)
    return None


def _try_tool(name: str) -> str | None:
    binary = shutil.which(name)
    if binary is None:
        return f"{name} is not installed (apt-get install {TOOLS[name]})"
    if name in ("iptables", "nft"):
        fd = nsutil.create_netns()
        try:
            with nsutil.entered(fd):
                argv = [binary, "-t", "nat", "-S"] if name == "iptables" else [binary, "list", "ruleset"]
                done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        finally:
            os.close(fd)
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[0]
            return f"{name} does not work here: {first}"
    return None


@lru_cache(maxsize=None)
def missing(capability: str) -> str | None:
    """None when ``capability`` works here, else the exact reason it does not."""
    if capability in TOOLS:
        return _try_tool(capability)
    checks = {"tun": _try_tun, "tap": _try_tun, "netem": _try_netem, "port_isolation": _try_port_isolation,
              "xdp": _try_xdp}
    if capability not in LINK_KINDS and capability not in checks:
        raise KeyError(f"unknown capability {capability!r} (known: {', '.join(sorted(known()))})")
    fd = nsutil.create_netns()
    try:
        with nsutil.entered(fd):
            ipr = IPRoute()
        try:
            if capability in LINK_KINDS:
                return _try_link(ipr, capability)
            return checks[capability](ipr)
        finally:
            close_quietly(ipr)
    finally:
        os.close(fd)


def known() -> list[str]:
    return sorted(set(LINK_KINDS) | set(TOOLS) | {"tun", "tap", "netem", "port_isolation", "xdp"})
