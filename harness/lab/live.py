"""A lab standing in the kernel: its namespaces, the sockets bound in them, a way to
run commands there, and the small "arrange" steps suites take on it."""
from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from typing import Callable

from pyroute2 import IPRoute

from harness.kernel import nsutil
from harness.kernel.constants import AF_INET, AF_INET6, IPV6_QUIET_SYSCTLS
from harness.errors import LabError
from harness.lab.model import HOST, Lab
from harness.kernel.deadline import DEADLINE
from harness.kernel.netops import close_quietly, ipr_in, safe_close_fd, settle_addresses, settle_links
from harness.kernel.rtnl import NetlinkRefused, Rtnl

BR_NETFILTER_SYSCTLS = ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
                        "net.bridge.bridge-nf-call-arptables")


NAMESPACE_DEFAULTS = re.compile(r"net\.ipv6\.conf\.(all|default)\.[\w.-]+")


def namespace_defaults(sysctls: dict) -> dict:
    """Of a node's ``sysctls``, those each link copies when it is made (net.ipv6.conf.default.*, and
    .all.* with them): written when the node is made, before its links, as well as with the others."""
    return {key: value for key, value in sysctls.items() if NAMESPACE_DEFAULTS.fullmatch(key)}


class LiveLab:
    """A lab standing in the kernel: its namespaces, sockets and a way to run commands.

    ``nodes`` names the lab's namespaces (``host`` first); ``run(node, argv)`` runs a
    command in a node and returns the completed process; ``ipr(node)`` is an IPRoute
    bound in that node.
    """

    def __init__(self, lab: Lab):
        self.lab = lab
        self.name = lab.name
        self._fds: dict[str, int] = {}
        self._iprs: dict[str, IPRoute] = {}  # pyroute2, made on first use (reads, rare writes)
        self._rtnls: dict[str, Rtnl] = {}  # the builder's fast path
        self._named: list[str] = []
        self._closers: list[Callable[[], None]] = []
        self.steps: list[tuple[str, float]] = []  # (what, seconds): the build, stage by stage
        self.probe = None  # the harness.probe.Probe tests drive on this lab (attach_probe), if any
        self.closed = False

    # -- access ---------------------------------------------------------------
    @property
    def nodes(self) -> list[str]:
        return list(self._fds)

    def fd(self, node: str) -> int:
        try:
            return self._fds[node]
        except KeyError:
            raise LabError(f"lab {self.name}: no node {node!r} (nodes: {', '.join(self._fds)})") from None

    def ipr(self, node: str) -> IPRoute:
        if node not in self._iprs:
            self._iprs[node] = ipr_in(self.fd(node))
        return self._iprs[node]

    def rtnl(self, node: str) -> Rtnl:
        """The minimal rtnetlink client bound in ``node`` (see harness.kernel.rtnl)."""
        if node not in self._rtnls:
            self._rtnls[node] = Rtnl(self.fd(node))
        return self._rtnls[node]

    def entered(self, node: str):
        """Context manager: the calling thread inside ``node``'s network namespace."""
        return nsutil.entered(self.fd(node))

    def run(self, node: str, argv: list[str], *, check: bool = False, input: str | None = None,
            timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Run ``argv`` inside ``node``'s network namespace; return the completed process."""
        if isinstance(argv, str):
            raise TypeError("lab.run takes an argument list, not a shell string")
        with self.entered(node):
            return subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout,
                                  check=check)

    def ifindex(self, node: str, name: str) -> int:
        try:
            return self.rtnl(node).ifindex(name)
        except NetlinkRefused:
            raise LabError(f"lab {self.name}: no link {name!r} in node {node!r}") from None

    def link(self, node: str, name: str):
        return self.ipr(node).get_links(self.ifindex(node, name))[0]

    def mac(self, node: str, name: str) -> str:
        return self.link(node, name).get_attr("IFLA_ADDRESS")

    def addresses(self, node: str, name: str) -> list[str]:
        index = self.ifindex(node, name)
        return [f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}" for m in self.ipr(node).get_addr(index=index)]

    def neighbour(self, node: str, address: str) -> str | None:
        """The link-layer address ``node`` has learnt for ``address`` (ARP for IPv4, neighbour
        discovery for IPv6), or None when it has no entry."""
        family = AF_INET6 if ipaddress.ip_address(address).version == 6 else AF_INET
        wanted = ipaddress.ip_address(address)
        return next((n.get_attr("NDA_LLADDR") for n in self.ipr(node).get_neighbours(family=family)
                     if n.get_attr("NDA_DST") and ipaddress.ip_address(n.get_attr("NDA_DST")) == wanted), None)

    def attach_probe(self, probe):
        """Make ``probe`` (a ``harness.probe.Probe`` made on this lab) the lab's ``probe``,
        the one its tests drive; the probe closes with the lab. Returns it."""
        if probe.live is not self:
            raise LabError(f"lab {self.name}: the probe was made on another lab ({probe.live.name})")
        self.probe = probe
        return probe

    def on_teardown(self, closer: Callable[[], None]) -> None:
        """Register something to close before the namespaces go (a socket holds its netns)."""
        self._closers.append(closer)

    # -- lifecycle ---------------------------------------------------------------
    def add_node(self, name: str, sysctls: dict | None = None) -> int:
        """Make the node ``name`` (a namespace; named in /run/netns unless it is the host), with the
        labs' IPv6 defaults and then ``sysctls`` (namespace_defaults) written before any link."""
        if name in self._fds:
            raise LabError(f"lab {self.name}: node {name!r} exists already")
        # The host is kept by fd only; the others are also named in /run/netns.
        fd = nsutil.create_netns(None if name == HOST else name)
        self._fds[name] = fd
        if name != HOST:
            self._named.append(name)
        with nsutil.entered(fd):
            # IPv6 stays on, its noise off (RS, RA, autoconf, DAD; MLD's repeat early): before any link
            # is made here, so each copies `default` (harness.kernel.constants.IPV6_QUIET_SYSCTLS).
            for key, value in {**IPV6_QUIET_SYSCTLS, **(sysctls or {})}.items():
                nsutil.write_sysctl(key, value)
            # Bridged traffic bypasses iptables, as on a kernel without br_netfilter loaded
            # (the documents' machines, Debian's default). This kernel has it built in with
            # bridge-nf-call-iptables=1, which would MASQUERADE 001's ns1->ns2 traffic.
            # A lab that wants it sets net.bridge.bridge-nf-call-iptables: 1.
            for key in BR_NETFILTER_SYSCTLS:
                if os.path.exists(nsutil.sysctl_path(key)):
                    nsutil.write_sysctl(key, 0)
            rtnl = Rtnl()
        self._rtnls[name] = rtnl
        # lo up in every node: a deviation, stated in README's table of them. Documents 001 and 002 show
        # a new namespace's lo DOWN (their own commands bring it up, or never use it); the kernel's
        # default is checked on a bare namespace (suites/test_namespaces.py).
        rtnl.set_link(1, up=True)
        return fd

    def delete_node(self, name: str) -> None:
        """Remove a node's namespace (as `ip netns del`): its links and their peers go too."""
        fd = self._fds.pop(name)
        close_quietly(*(table.pop(name) for table in (self._iprs, self._rtnls) if name in table))
        if name in self._named:
            nsutil.release_netns_name(name)
            self._named.remove(name)
        safe_close_fd(fd)

    def teardown(self) -> None:
        if self.closed:
            return
        self.closed = True
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:  # noqa: BLE001 - teardown must finish whatever a closer does
                pass
        self._closers.clear()
        close_quietly(*self._iprs.values(), *self._rtnls.values())
        self._iprs.clear()
        self._rtnls.clear()
        for name in self._named:
            nsutil.release_netns_name(name)
        self._named.clear()
        for fd in self._fds.values():
            safe_close_fd(fd)
        self._fds.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.teardown()


# -- small "arrange" steps for suites (thin over netlink) ----------------------------
def set_link(live: LiveLab, node: str, name: str, *, up: bool | None = None, master: str | None = None,
             nomaster: bool = False) -> None:
    """`ip link set NAME up|down|master M|nomaster` in ``node``."""
    rtnl, index = live.rtnl(node), live.ifindex(node, name)
    if nomaster or master is not None:
        rtnl.set_link(index, master=0 if nomaster else live.ifindex(node, master))
    if up is not None:
        rtnl.set_link(index, up=up)
        for other in live.nodes:  # a carrier change lands on the peer, maybe in another node
            settle_links(live.fd(other), live.rtnl(other), DEADLINE)


def address(live: LiveLab, node: str, name: str, cidr: str, *, add: bool = True) -> None:
    """`ip addr add|del CIDR dev NAME` in ``node`` (an IPv6 one: usable when this returns)."""
    if add:
        live.rtnl(node).add_address(live.ifindex(node, name), cidr)
        if ipaddress.ip_interface(cidr).version == 6:
            tentative = settle_addresses(live.fd(node), live.rtnl(node), DEADLINE)
            if tentative:
                raise LabError(f"lab {live.name}: {node}: {', '.join(tentative)} still tentative after {DEADLINE:g} s")
        return
    iface = ipaddress.ip_interface(cidr)
    live.ipr(node).addr("del", index=live.ifindex(node, name), address=str(iface.ip),
                        prefixlen=iface.network.prefixlen)


def delete_link(live: LiveLab, node: str, name: str) -> None:
    live.ipr(node).link("del", index=live.ifindex(node, name))
