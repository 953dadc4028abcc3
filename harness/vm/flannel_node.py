"""Document 004's Flannel VXLAN on a real node: what flanneld programs, for the two-host lab.

Document 004, "Flannel": the cluster network 10.244.0.0/16 is split into one /24 per node,
keyed by the node's public IP; the node's pods are on the bridge cni0 (gateway 10.244.N.1),
and cross-node traffic goes to flannel.1 (VXLAN, the default backend). The document shows no
flannel.1 commands: this module programs, in the namespace it runs in (a VM's own, in the
two-host lab; a test's namespace otherwise), what flanneld's VXLAN backend programs:

- flannel.1: vxlan VNI 1, dstport 8472 (flannel's Linux port), local = the public IP,
  dev = the underlay link, nolearning, MTU 1450 (FLANNEL_MTU: 1500 - 50), address
  10.244.N.0/32; a random MAC set at creation (flanneld publishes it in the lease as VtepMAC);
- per remote node, from its lease (subnet, PublicIP, VtepMAC): the route
  "10.244.M.0/24 via 10.244.M.0 dev flannel.1 onlink", the permanent neighbour
  "10.244.M.0 lladdr VtepMAC" and the FDB entry "VtepMAC dst PublicIP self permanent".

The pods are what the CNI bridge plugin would make: a namespace podNa with eth0 10.244.N.2/24
(MTU 1450) whose veth is a port of cni0 (MTU 1450), default via 10.244.N.1.

``python harness/vm/flannel_node.py up|peer|down|capture|serve`` runs the same on the other
node of the two-host lab, over ssh (fixtures/twohost.py).
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import select
import socket
import sys
import time
import types
from dataclasses import dataclass

if __name__ == "__main__" and not __package__:
    # Run as a file (the two-host suite runs it on node2 over ssh): harness.kernel without harness's
    # __init__, which imports the probe engine and scapy (1.3 s here, about a minute under TCG).
    sys.modules["harness"] = types.ModuleType("harness")
    sys.modules["harness"].__path__ = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    sys.path.remove(os.path.dirname(os.path.abspath(__file__)))  # not this folder's modules as top-level ones

from harness.kernel import nsutil  # noqa: E402
from harness.kernel.constants import AF_BRIDGE, NTF_SELF, NUD_NOARP, NUD_PERMANENT, RTNH_F_ONLINK

VTEP = "flannel.1"
BRIDGE = "cni0"
VXLAN_PORT = 8472  # flannel's default on Linux (not IANA's 4789)
FLANNEL_MTU = 1450  # 1500 - 50 bytes of VXLAN encapsulation
PEER_FILE = "/var/tmp/netconform-twohost.json"  # written on node1 by the two-host run: who the other node is
ETH_P_ALL = 0x0003


@dataclass(frozen=True)
class NodePlan:
    """One node of the cluster: its subnet 10.244.N.0/24 and its public IP on the underlay link."""
    index: int
    public_ip: str  # with its prefix: 192.168.1.10/24
    underlay: str = "eth1"
    vni: int = 1

    @property
    def address(self) -> str:
        return self.public_ip.split("/")[0]

    @property
    def subnet(self) -> str:
        return f"10.244.{self.index}.0/24"

    @property
    def vtep_address(self) -> str:
        return f"10.244.{self.index}.0"

    @property
    def gateway(self) -> str:
        return f"10.244.{self.index}.1"

    @property
    def pod(self) -> str:
        return f"pod{self.index}a"

    @property
    def pod_address(self) -> str:
        return f"10.244.{self.index}.2"

    def vxlan(self, underlay_index: int) -> dict:
        """flannel.1 as flanneld makes it (pyroute2's RTM_NEWLINK attributes)."""
        return {"ifname": VTEP, "kind": "vxlan", "vxlan_id": self.vni, "vxlan_port": VXLAN_PORT,
                "vxlan_local": self.address, "vxlan_link": underlay_index, "vxlan_learning": 0, "mtu": FLANNEL_MTU}


def lease_of(plan: NodePlan, vtep_mac: str) -> dict:
    """What flanneld publishes for the node (its subnet lease): subnet, PublicIP, VtepMAC."""
    return {"subnet": plan.subnet, "public_ip": plan.address, "vtep_mac": vtep_mac}


def peer_entries(remote: dict) -> dict:
    """What a node programs for a remote node's lease: route, permanent neighbour, FDB entry."""
    vtep_ip = str(ipaddress.ip_network(remote["subnet"]).network_address)
    return {"route": {"dst": remote["subnet"], "gateway": vtep_ip, "flags": RTNH_F_ONLINK},
            "neighbour": {"dst": vtep_ip, "lladdr": remote["vtep_mac"], "state": NUD_PERMANENT},
            "fdb": {"lladdr": remote["vtep_mac"], "dst": remote["public_ip"], "family": AF_BRIDGE,
                    "state": NUD_PERMANENT | NUD_NOARP, "flags": NTF_SELF}}


def _ipr():
    from pyroute2 import IPRoute
    return IPRoute()


def _index(ipr, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def random_mac() -> str:
    """A random locally administered unicast MAC, as flanneld makes for flannel.1 before creating it."""
    octets = bytearray(os.urandom(6))
    octets[0] = (octets[0] & 0xFE) | 0x02
    return ":".join(f"{octet:02x}" for octet in octets)


def up(plan: NodePlan, vtep_mac: str | None = None) -> dict:
    """Program the node in the calling thread's namespace; return its lease. flannel.1 is made with a
    MAC of its own, random unless ``vtep_mac`` (the one this node published before: a node rebuilt
    keeps its lease), as flanneld has done since flannel-io/flannel#1485: left to the kernel, systemd's
    MACAddressPolicy=persistent derives it from /etc/machine-id and the interface's name
    (flannel-io/flannel#1155), the same on two VMs of one image, and each node drops the other's
    frames as its own (measured: the two-host lab's first run, both VMs of one box)."""
    down(plan)  # what a run before left (nothing, normally)
    vtep_mac = vtep_mac or random_mac()
    nsutil.write_sysctl("net.ipv4.ip_forward", 1)
    pod_fd = nsutil.create_netns(plan.pod)
    try:
        with _ipr() as ipr:
            underlay = _index(ipr, plan.underlay)
            if underlay is None:
                raise RuntimeError(f"node {plan.index}: no underlay link {plan.underlay!r}")
            address, prefix = plan.public_ip.split("/")
            if address not in [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=underlay)]:
                ipr.addr("add", index=underlay, address=address, prefixlen=int(prefix))
            ipr.link("set", index=underlay, state="up")
            ipr.link("add", **plan.vxlan(underlay), address=vtep_mac)
            vtep = _index(ipr, VTEP)
            ipr.addr("add", index=vtep, address=plan.vtep_address, prefixlen=32)
            ipr.link("set", index=vtep, state="up")
            ipr.link("add", ifname=BRIDGE, kind="bridge", mtu=FLANNEL_MTU)
            bridge = _index(ipr, BRIDGE)
            ipr.addr("add", index=bridge, address=plan.gateway, prefixlen=24)
            veth = f"veth-{plan.pod}"
            inside = f"{plan.pod}-eth0"  # eth0 once in the pod (the node has an eth0 of its own)
            ipr.link("add", ifname=veth, kind="veth", mtu=FLANNEL_MTU, peer={"ifname": inside, "mtu": FLANNEL_MTU})
            ipr.link("set", index=_index(ipr, inside), net_ns_fd=pod_fd)
            ipr.link("set", index=_index(ipr, veth), master=bridge, state="up")
            ipr.link("set", index=bridge, state="up")
            vtep_mac = ipr.get_links(vtep)[0].get_attr("IFLA_ADDRESS")
        with nsutil.entered(pod_fd), _ipr() as ipr:
            eth0 = _index(ipr, f"{plan.pod}-eth0")
            ipr.link("set", index=eth0, ifname="eth0")
            ipr.addr("add", index=eth0, address=plan.pod_address, prefixlen=24)
            ipr.link("set", index=eth0, state="up")
            ipr.link("set", index=_index(ipr, "lo"), state="up")
            ipr.route("add", dst="0.0.0.0/0", gateway=plan.gateway)
    finally:
        os.close(pod_fd)
    return lease_of(plan, vtep_mac)


def add_peer(plan: NodePlan, remote: dict) -> None:
    """The remote node's route, neighbour and FDB entry on flannel.1, as flanneld adds them."""
    entries = peer_entries(remote)
    with _ipr() as ipr:
        vtep = _index(ipr, VTEP)
        ipr.route("add", oif=vtep, **entries["route"])
        ipr.neigh("add", ifindex=vtep, **entries["neighbour"])
        ipr.fdb("append", ifindex=vtep, **entries["fdb"])


def down(plan: NodePlan) -> None:
    """Remove what ``up`` made (flannel.1 and cni0 take their routes, neighbours and FDB entries)."""
    with _ipr() as ipr:
        for name in (VTEP, BRIDGE, f"veth-{plan.pod}"):
            index = _index(ipr, name)
            if index is not None:
                ipr.link("del", index=index)
        underlay = _index(ipr, plan.underlay)
        address, prefix = plan.public_ip.split("/")
        if underlay is not None and address in [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=underlay)]:
            ipr.addr("del", index=underlay, address=address, prefixlen=int(prefix))
    if os.path.exists(os.path.join(nsutil.NETNS_RUN_DIR, plan.pod)):
        nsutil.release_netns_name(plan.pod)


# -- evidence and traffic, for the suite on the other node (over ssh) ----------------------------

def packet_socket(interface: str, netns: str | None = None) -> socket.socket:
    """An AF_PACKET socket on ``interface`` (in the named namespace ``netns``), drained."""
    def make():
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.bind((interface, 0))
        return sock
    if netns is None:
        sock = make()
    else:
        fd = os.open(os.path.join(nsutil.NETNS_RUN_DIR, netns), os.O_RDONLY)
        try:
            with nsutil.entered(fd):
                sock = make()
        finally:
            os.close(fd)
    sock.setblocking(False)
    while True:
        try:
            sock.recv(65535)
        except BlockingIOError:
            return sock


def describe(frame: bytes) -> dict | None:
    """A frame as the suites judge it: outer IPs, and for VXLAN its VNI and the inner packet."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN
    packet = Ether(frame)
    if not frame or not packet.haslayer(IP):
        return None
    ip = packet[IP]
    seen = {"src": ip.src, "dst": ip.dst, "proto": ip.proto}
    if packet.haslayer(UDP) and packet[UDP].dport == VXLAN_PORT:
        vxlan = VXLAN(bytes(packet[UDP].payload))  # decoded explicitly: not by scapy's port bindings
        inner = vxlan.payload
        seen["vxlan"] = {"vni": vxlan.vni, "flags": int(vxlan.flags), "inner_src_mac": inner.src,
                         "inner_dst_mac": inner.dst}
        if inner.haslayer(IP):
            seen["vxlan"].update(inner_src=inner[IP].src, inner_dst=inner[IP].dst, inner_proto=inner[IP].proto)
            for layer in (TCP, UDP):
                if inner.haslayer(layer):
                    seen["vxlan"]["inner_dport"] = inner[layer].dport
    return seen


def queued(sock: socket.socket) -> list[dict]:
    """Every IP frame the socket holds already (what crossed before a probe returned)."""
    seen = []
    while True:
        try:
            frame = describe(sock.recv(65535))
        except BlockingIOError:
            return seen
        if frame is not None:
            seen.append(frame)


def collect(sockets: dict[str, socket.socket], window: float) -> dict[str, list[dict]]:
    """Every IP frame each socket sees during ``window`` seconds (a named negative window)."""
    seen: dict[str, list[dict]] = {name: [] for name in sockets}
    by_fd = {sock.fileno(): name for name, sock in sockets.items()}
    end = time.monotonic() + window
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select(list(sockets.values()), [], [], left)
        for sock in ready:
            frame = describe(sock.recv(65535))
            if frame is not None:
                seen[by_fd[sock.fileno()]].append(frame)
    return seen


def serve(pod: str, port: int, deadline: float, out=sys.stdout) -> None:
    """In ``pod``: answer one TCP and one UDP message on ``port`` with "<message> from <sender's IP>"."""
    fd = os.open(os.path.join(nsutil.NETNS_RUN_DIR, pod), os.O_RDONLY)
    try:
        with nsutil.entered(fd):
            tcp = socket.create_server(("0.0.0.0", port))
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("0.0.0.0", port))
    finally:
        os.close(fd)
    print("ready", file=out, flush=True)
    pending, end = {tcp, udp}, time.monotonic() + deadline
    while pending and (left := end - time.monotonic()) > 0:
        for sock in select.select(list(pending), [], [], left)[0]:
            if sock is udp:
                message, sender = udp.recvfrom(4096)
                udp.sendto(message + f" from {sender[0]}".encode(), sender)
            else:
                connection, sender = tcp.accept()
                with connection:
                    connection.settimeout(left)
                    connection.sendall(connection.recv(4096) + f" from {sender[0]}".encode())
            pending.discard(sock)
    tcp.close()
    udp.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python harness/vm/flannel_node.py", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("up", "peer", "down", "capture", "serve"))
    parser.add_argument("--index", type=int, required=True, help="N of the node's subnet 10.244.N.0/24")
    parser.add_argument("--public-ip", required=True, help="the node's underlay address with its prefix")
    parser.add_argument("--underlay", default="eth1")
    parser.add_argument("--vni", type=int, default=1)
    parser.add_argument("--lease", help="up, peer: the remote node's lease (JSON)")
    parser.add_argument("--window", type=float, default=3.0, help="capture: seconds")
    parser.add_argument("--port", type=int, default=5000, help="serve: the TCP and UDP port")
    args = parser.parse_args(argv)
    plan = NodePlan(args.index, args.public_ip, args.underlay, args.vni)
    if args.action == "up":  # with --lease: and the remote node's entries, in one ssh round trip
        lease = up(plan)
        if args.lease:
            add_peer(plan, json.loads(args.lease))
        print(json.dumps(lease))
    elif args.action == "peer":
        add_peer(plan, json.loads(args.lease))
    elif args.action == "down":
        down(plan)
    elif args.action == "capture":
        describe(b"")  # scapy imported before the window opens, not in it
        sockets = {"underlay": packet_socket(plan.underlay), "vtep": packet_socket(VTEP),
                   "pod": packet_socket("eth0", plan.pod)}
        print("ready", flush=True)
        print(json.dumps(collect(sockets, args.window)))
    else:
        serve(plan.pod, args.port, deadline=args.window)
    return 0


if __name__ == "__main__":
    sys.exit(main())
