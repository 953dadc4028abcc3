"""IP-in-IP tunnels (kind ipip), and the fallback devices tunnel modules put in every namespace.

When the ipip module is loaded, the kernel gives every network namespace a fallback
device, ``tunl0`` (local any, remote any, down), unless net.core.fb_tunnels_only_for_init_net
says otherwise: it takes every IP-in-IP packet no other tunnel claims. Calico uses it: felix
adds ``tunl0`` type ipip and takes EEXIST as "it is there already" (felix's ipip_mgr.go), then
sets it up and routes ``10.244.2.0/24 via 192.168.1.102 dev tunl0 onlink`` (document 000): the
outer destination is the route's gateway. ``make_ipip`` does the same for a lab's tunl0.
"""
from __future__ import annotations

import errno

from harness.kernel.rtnl import NetlinkRefused, Rtnl

# name -> kind of each fallback device a tunnel module makes in every namespace it runs in
FALLBACK_DEVICES = {"tunl0": "ipip", "sit0": "sit", "gre0": "gre", "gretap0": "gretap", "erspan0": "erspan",
                    "ip_vti0": "vti", "ip6tnl0": "ip6tnl", "ip6gre0": "ip6gre", "ip6_vti0": "vti6"}


def is_fallback(name: str, *, local=None, remote=None, link=None) -> bool:
    """Whether an ipip link so declared is the module's own tunl0 (any local, any remote, no device)."""
    return FALLBACK_DEVICES.get(name) == "ipip" and local is None and remote is None and link is None


def make_ipip(rtnl: Rtnl, name: str, *, local: str | None = None, remote: str | None = None,
              ttl: int | None = None, link: int | None = None, mtu: int | None = None) -> bool:
    """Make the ipip link ``name``; True when made, False when it is the fallback tunl0 the kernel
    had made already (then only its MTU is set). Any other refusal is raised as the kernel's."""
    try:
        rtnl.add_ipip(name, local=local, remote=remote, ttl=ttl, link=link, mtu=mtu)
        return True
    except NetlinkRefused as exc:
        existing = {link_name: kind for _, link_name, kind in rtnl.link_kinds()}.get(name)
        if exc.code != errno.EEXIST or existing != "ipip" or ttl is not None \
                or not is_fallback(name, local=local, remote=remote, link=link):
            raise
    if mtu is not None:
        rtnl.set_link(rtnl.ifindex(name), mtu=mtu)
    return False
