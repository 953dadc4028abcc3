"""Flannel's control plane: document 004, the real flannel CNI plugin over the two-node VXLAN lab.

Document 004 has flanneld write each node's lease into /run/flannel/subnet.env (lines 338-343:
FLANNEL_NETWORK, FLANNEL_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ), and the flannel plugin, "在读取了
.conflist 和 subnet.env 后", calls the bridge plugin (line 347), which makes cni0; line 250 gives every
node a unique subnet its pods take their addresses from. Here the lab 004-flannel-vxlan keeps what
flanneld programs (flannel.1, its route, neighbour and FDB entry towards the other node) and loses
cni0 and the pods' links: those the plugin makes. Each node has a subnet.env of its own, written as
flanneld writes it (at the path the plugin's ``subnetFile`` names, under the sandbox's private /run,
as ``flanneld --subnet-file`` would) and a runtime of its own whose /var/lib/cni (flannel's dataDir
/var/lib/cni/flannel/<id>, host-local's reservations) is that node's, never the machine's.
The plugin is cni-plugins@0.9.0's (bullseye: the last release that carried flannel); its
configuration is the corpus's k3s-flannel.conflist's flannel entry (portmap left out: no port here).
"""
import ipaddress
import os

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from pytest_netconform.labs import build_for
from harness import CapabilityMissing, QUIET_WINDOW, Port, tunnel
from harness.cni import flanneld
from harness.impl import catalogue, fetch
from harness.kernel.constants import AF_BRIDGE, AF_INET

pytestmark = [pytest.mark.area("VXLAN"), pytest.mark.requires("vxlan")]

BUILD = "cni-plugins@0.9.0"
NODE1_IP, NODE2_IP = "172.16.0.1", "172.16.0.2"
VTEP1_MAC, VTEP2_MAC = "02:f1:a0:00:01:00", "02:f1:a0:00:02:00"  # flannel.1 on node1, node2 (the leases' VtepMAC)
LEASES = {"node1": "10.244.1.1/24", "node2": "10.244.2.1/24"}  # FLANNEL_SUBNET: the lease, its .1 for cni0
UNDERLAY1, UNDERLAY2 = Port("node1", "eth0"), Port("node2", "eth0")
PODS_OF = {"node1": ("pod1a", "pod1b"), "node2": ("pod2a",)}


def subnet_env(lease: str, mtu: int = 1450) -> str:
    """subnet.env as flanneld writes it (document 004 lines 340-343; 1450 is its VXLAN MTU, the
    document's 1472 its UDP backend's)."""
    return flanneld.subnet_env(lease, mtu)


def plugins_dir() -> str:
    got = fetch.fetched(catalogue.build_named(BUILD))
    if got is None or not got.runs_here:
        pytest.skip(f"{BUILD} is not fetched here (python -m harness impl fetch {BUILD}): it has the flannel plugin"
                    if got is None else f"{BUILD}: {got.why_not}")
    return got.bin_dir


def without_pods(lab):
    """The lab as flanneld leaves it: flannel.1 and its entries, no cni0, no pod links (the plugin's)."""
    for node in ("node1", "node2"):
        lab.node(node).links = [link for link in lab.node(node).links if link.name in ("eth0", "flannel.1")]
    for pods in PODS_OF.values():
        for pod in pods:
            lab.node(pod).routes = []


@pytest.fixture
def flannel_nodes(request, tmp_path):
    """Build the lab for flanneld's leases ``{node: subnet.env}`` (default: one lease per node)."""
    bin_dir = plugins_dir()

    def make(envs=None):
        live = build_for(request, "004-flannel-vxlan", without_pods)
        request.addfinalizer(live.teardown)
        nodes = {}
        for node, lease in LEASES.items():
            env = (envs or {}).get(node, subnet_env(lease))
            try:
                nodes[node] = flanneld.FlannelNode(live, node, str(tmp_path / node), bin_dir, env,
                                                   f"/run/netconform-flannel/{tmp_path.name}")
            except CapabilityMissing as exc:
                pytest.skip(str(exc))
            request.addfinalizer(nodes[node].close)
        return live, nodes
    return make


def vxlan_from_node1():
    return Ether() / IP(src=NODE1_IP, dst=NODE2_IP) / UDP(dport=8472)


def echo(src, dst):
    return Ether() / IP(src=src, dst=dst) / ICMP(type=8)


def ipv4_of(live, node, name):
    return [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in live.ipr(node).get_addr(
        index=live.ifindex(node, name), family=AF_INET)]


def in_lease(address, node):
    return ipaddress.ip_address(address) in ipaddress.ip_network(LEASES[node], strict=False)


@pytest.mark.document("004", "「2、节点子网分配：Flannel 为每个工作节点分配一个唯一的子网」 (line 250); "
                      "「flannel 插件在读取了 .conflist 和 subnet.env 后」 ... 「bridge 插件」 (line 347)")
def test_each_nodes_pods_take_addresses_from_its_own_lease_and_cross_in_vxlan_vni_1(flannel_nodes):
    live, nodes = flannel_nodes()
    pod1a, pod2a = nodes["node1"].add("pod1a"), nodes["node2"].add("pod2a")
    assert in_lease(pod1a, "node1") and in_lease(pod2a, "node2"), (pod1a, pod2a)
    # The bridge the delegate made holds the lease's .1, and the delegate's configuration is kept for DEL
    # in the node's own dataDir (/var/lib/cni/flannel/<id> of the run, not of the machine).
    assert [ipv4_of(live, node, "cni0") for node in LEASES] == [[lease] for lease in LEASES.values()]
    assert os.listdir(nodes["node1"].data_dir) == ["netconform-pod1a"], nodes["node1"].data_dir
    probe = live.probe
    probe.listen(UNDERLAY2, Port("pod2a", "eth0"))
    result = probe.ping("pod1a", pod2a)
    assert result, result.error
    seen = probe.expect(UNDERLAY2, vxlan_from_node1())
    assert seen, "no UDP 8472 from node1 to node2 on the underlay\n" + probe.evidence(UNDERLAY2)
    vxlan = VXLAN(bytes(seen.packet[UDP].payload))
    assert vxlan.vni == 1 and (vxlan.payload.src, vxlan.payload.dst) == (VTEP1_MAC, VTEP2_MAC), vxlan.summary()
    # FLANNEL_IPMASQ=false: flanneld does not masquerade, so the delegate does (ipMasq = !FLANNEL_IPMASQ) what
    # leaves the pod's /24: the echo crosses from node1's flannel.1 address.
    inner = vxlan.payload[IP]
    assert (inner.src, inner.dst, inner[ICMP].type) == ("10.244.1.0", pod2a, 8), inner.summary()
    # pod1a's gateway, resolved by ARP, is node1's cni0: the lease's .1 answered for itself.
    gateway = {n.get_attr("NDA_DST"): n.get_attr("NDA_LLADDR") for n in live.ipr("pod1a").get_neighbours()}
    assert gateway.get("10.244.1.1") == live.mac("node1", "cni0"), gateway


@pytest.mark.document("004", "「2、节点子网分配：Flannel 为每个工作节点分配一个唯一的子网」 (line 250)")
def test_two_nodes_given_the_same_lease_overlap_and_the_cross_node_probe_stays_on_node1(flannel_nodes):
    live, nodes = flannel_nodes({"node2": subnet_env(LEASES["node1"])})  # node2 given node1's lease
    pod1a, pod1b, pod2a = nodes["node1"].add("pod1a"), nodes["node1"].add("pod1b"), nodes["node2"].add("pod2a")
    assert pod2a == pod1a, f"node2's pod did not take node1's first address: {pod1a}, {pod1b}, {pod2a}"
    assert ipv4_of(live, "node2", "cni0") == [LEASES["node1"]], "node2's cni0 is not node1's gateway too"
    probe = live.probe
    probe.listen(UNDERLAY1, Port("pod1a", "eth0"), Port("pod2a", "eth0"))
    result = probe.ping("pod1b", pod2a)
    assert result, result.error  # answered, by the wrong pod
    # Where it went: node1's cni0 delivered it to pod1a, its own pod of that address; nothing crossed.
    here = probe.expect(Port("pod1a", "eth0"), echo(pod1b, pod2a))
    assert here, "the probe did not reach pod1a on node1's bridge\n" + here.format()
    strays = probe.expect_none_on([UNDERLAY1, Port("pod2a", "eth0")], lambda p: p.haslayer(UDP) and p[UDP].dport == 8472
                                  or p.haslayer(ICMP) and p[IP].dst == pod2a)
    assert all(s == [] for s in strays.values()), strays


@pytest.mark.document("004", "「3. 数据封装：Flannel 使用 `VXLAN` 协议将原始数据包封装在 UDP 报文中，并通过底层网络发送到目标节点」")
def test_without_node2s_fdb_entry_the_cross_node_probe_is_dropped_in_flannel_1(flannel_nodes):
    live, nodes = flannel_nodes()
    pod1a, pod2a = nodes["node1"].add("pod1a"), nodes["node2"].add("pod2a")
    vtep = live.ifindex("node1", "flannel.1")
    for entry in live.ipr("node1").get_neighbours(family=AF_BRIDGE, ifindex=vtep):
        if entry.get_attr("NDA_LLADDR") == VTEP2_MAC:  # flanneld's entry (a fault may have taken it already)
            live.ipr("node1").fdb("del", ifindex=vtep, lladdr=VTEP2_MAC, dst=entry.get_attr("NDA_DST"))
    probe = live.probe
    vtep1 = Port("node1", "flannel.1")
    probe.listen(vtep1, UNDERLAY1)
    dropped_before = live.link("node1", "flannel.1").get_attr("IFLA_STATS64")["tx_dropped"]
    result = probe.ping("pod1a", pod2a, timeout=QUIET_WINDOW)
    assert not result, "pod2a answered although node1's flannel.1 had no FDB entry for node2's VTEP"
    # Where it went: into flannel.1 towards node2's VTEP MAC, which no FDB entry maps to a node: dropped there.
    entered = probe.expect(vtep1, Ether(dst=VTEP2_MAC) / IP(dst=pod2a) / ICMP(type=8), inbound=False)
    assert entered, "the echo never went into flannel.1\n" + entered.format()
    strays = probe.expect_none(UNDERLAY1, vxlan_from_node1(), inbound=False)
    assert strays == [], strays.format()
    dropped = live.link("node1", "flannel.1").get_attr("IFLA_STATS64")["tx_dropped"] - dropped_before
    assert dropped >= 1, f"the echo went into flannel.1 and never left eth0, yet flannel.1 counted no drop ({dropped})"


@pytest.mark.document("004", "「# FLANNEL_MTU=1472」 (line 342: flanneld's MTU in subnet.env, which the plugin gives the "
                      "pod; 1450 for VXLAN)")
@pytest.mark.parametrize("flannel_mtu,size,refusal", [
    pytest.param(1450, 1450, None, id="flannel-mtu-1450-a-1450-byte-df-packet-crosses"),
    # The pod's own kernel refuses 1451 bytes with DF (ping -M do): nothing reaches node1.
    pytest.param(1450, 1451, "Message too long", id="flannel-mtu-1450-the-pod-refuses-1451-bytes-itself"),
    # A subnet.env with the underlay's 1500: the pod sends 1451 bytes, which node1 cannot put into flannel.1.
    pytest.param(1500, 1451, "ICMP type 3 code 4 from 10.244.1.1, mtu 1450", id="flannel-mtu-1500-gets-frag-needed"),
])
def test_the_pods_mtu_is_flannel_mtu(flannel_nodes, flannel_mtu, size, refusal):
    live, nodes = flannel_nodes({"node1": subnet_env(LEASES["node1"], flannel_mtu)})
    pod1a, pod2a = nodes["node1"].add("pod1a"), nodes["node2"].add("pod2a")
    mtu = live.link("pod1a", "eth0").get_attr("IFLA_MTU")
    assert mtu == flannel_mtu, f"the plugin gave pod1a's eth0 MTU {mtu}, subnet.env said {flannel_mtu}"
    probe = live.probe
    probe.listen(UNDERLAY2, Port("node1", "cni0"))
    result = probe.ping("pod1a", pod2a, size=size, df=True)
    if refusal is None:
        assert result, result.error
        seen = probe.expect(UNDERLAY2, vxlan_from_node1())
        assert seen and seen.packet[IP].len == size + tunnel.VXLAN_OVERHEAD == 1500, probe.evidence(UNDERLAY2)
        return
    assert not result and result.error == refusal, result
    if flannel_mtu == 1450:
        strays = probe.expect_none(Port("node1", "cni0"), lambda p: p.haslayer(ICMP) and p[IP].dst == pod2a)
        assert strays == [], strays.format()
        return
    reached = probe.expect(Port("node1", "cni0"), Ether() / IP(src=pod1a, dst=pod2a, flags="DF") / ICMP(type=8))
    assert reached and len(reached.packet[IP]) == size, "the packet never reached node1\n" + reached.format()
    strays = probe.expect_none(UNDERLAY2, vxlan_from_node1())
    assert strays == [], strays.format()
