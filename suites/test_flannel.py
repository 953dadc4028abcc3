"""Flannel: document 004, "Flannel" with its VXLAN (default) and UDP (deprecated) backends.

Two nodes with public IPs 172.16.0.1 and 172.16.0.2 on an underlay; pods on each
node's cni0. Same-node traffic is bridged on cni0; cross-node traffic is seen on the
underlay as the backend wraps it: a whole Ethernet frame in VXLAN (VNI 1, UDP 8472),
or the bare IP packet in UDP 8285 by the user-space encapsulator (harness.emulate.tunnel).
"""
import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vxlan import VXLAN

from pytest_netconform import lab_fixture
from pytest_netconform.labs import build_for
from harness import QUIET_WINDOW, Port, tunnel

pytestmark = pytest.mark.area("VXLAN")

flannel_vxlan = lab_fixture("004-flannel-vxlan")
flannel_udp = lab_fixture("004-flannel-udp")

NODE1_IP, NODE2_IP = "172.16.0.1", "172.16.0.2"  # the nodes' public IPs
POD1A, POD1B, POD2A = "10.244.1.2", "10.244.1.3", "10.244.2.2"
VTEP1_MAC, VTEP2_MAC = "02:f1:a0:00:01:00", "02:f1:a0:00:02:00"  # flannel.1 on node1, node2
UNDERLAY1, UNDERLAY2 = Port("node1", "eth0"), Port("node2", "eth0")
VTEP1 = Port("node1", "flannel.1")
POD1A_VETH = Port("node1", "veth-pod1a")  # where pod1a's packets reach node1 (cni0's port)
LEASES = {"10.244.1.0/24": ("node1", NODE1_IP), "10.244.2.0/24": ("node2", NODE2_IP)}


def vxlan_from_node1():
    return Ether() / IP(src=NODE1_IP, dst=NODE2_IP) / UDP(dport=8472)


def udp_from_node1():
    return Ether() / IP(src=NODE1_IP, dst=NODE2_IP) / UDP(sport=tunnel.FLANNEL_UDP_PORT, dport=tunnel.FLANNEL_UDP_PORT)


def pod_traffic(packet):
    """VXLAN, or an IP packet from or to a pod (not the bridges' own IGMP reports)."""
    if packet.haslayer(UDP) and 8472 in (packet[UDP].sport, packet[UDP].dport):
        return True
    return packet.haslayer(IP) and any(a.startswith("10.244.") for a in (packet[IP].src, packet[IP].dst))


def echo_to_pod2a(packet):
    """pod1a's echo request to pod2a, bare (as pod2a or flannel.1 would get it)."""
    return packet.haslayer(ICMP) and packet[ICMP].type == 8 and (packet[IP].src, packet[IP].dst) == (POD1A, POD2A)


def encapsulated_by_node1(packet):
    """Anything node1 sends in UDP (VXLAN or flanneld's 8285): a tunnel carried it."""
    return packet.haslayer(UDP) and packet[IP].src == NODE1_IP


def build_changed(request, name, change):
    """Build lab ``name`` after ``change(lab)``, with the evidence of any lab; torn down with the test."""
    live = build_for(request, name, change)
    request.addfinalizer(live.teardown)
    return live


def link_of(lab, node, name):
    return next(link for link in lab.node(node).links if link.name == name)


def tx_dropped(lab, node, name):
    """The interface's own count of packets it was given to send and dropped (``ip -s link``)."""
    return lab.link(node, name).get_attr("IFLA_STATS64")["tx_dropped"]


# ---------------------------------------------------------------- VXLAN backend

@pytest.mark.requires("vxlan")
@pytest.mark.document("004", "Flannel VXLAN: 跨节点的 pod 流量封装在 UDP 中经底层网络发送")
def test_cross_node_pod_traffic_is_the_pods_frame_in_vxlan_vni_1_on_udp_8472(flannel_vxlan):
    probe = flannel_vxlan.probe
    probe.listen(UNDERLAY2)
    result = probe.ping("pod1a", POD2A)
    assert result, result.error
    seen = probe.expect(UNDERLAY2, vxlan_from_node1())
    assert seen, "no UDP 8472 from node1 to node2 on the underlay\n" + probe.evidence(UNDERLAY2)
    vxlan = VXLAN(bytes(seen.packet[UDP].payload))  # decoded explicitly: no reliance on scapy's port bindings
    inner = vxlan.payload
    assert vxlan.vni == 1 and vxlan.flags & 0x08, vxlan.summary()  # I flag: the VNI is valid
    assert (inner.src, inner.dst) == (VTEP1_MAC, VTEP2_MAC), inner.summary()  # flannel.1 to flannel.1
    assert (inner[IP].src, inner[IP].dst, inner[ICMP].type) == (POD1A, POD2A, 8), inner.summary()


@pytest.mark.requires("vxlan")
@pytest.mark.document("004", "「Flannel」: 同节点的 pod 在 cni0 网桥走二层转发")
def test_same_node_pod_traffic_stays_on_cni0(flannel_vxlan):
    probe = flannel_vxlan.probe
    probe.listen(Port("node1", "veth-pod1b"), UNDERLAY1, VTEP1)
    result = probe.ping("pod1a", POD1B)
    assert result, result.error
    echo = Ether() / IP(src=POD1A, dst=POD1B) / ICMP(type=8)
    assert probe.expect(Port("node1", "veth-pod1b"), echo, inbound=False), "the echo did not go out cni0's port"
    assert probe.expect_none(UNDERLAY1, pod_traffic) == [], "same-node traffic came back on the underlay"
    # Both directions, everything since the ping (the probe listened on every port before it).
    for port in (UNDERLAY1, VTEP1):
        assert [s for s in probe.seen(port) if pod_traffic(s.packet)] == [], probe.evidence(port)


@pytest.mark.requires("vxlan")
@pytest.mark.document("004", "Flannel VXLAN: flanneld 写入的静态邻居, flannel.1 上没有 ARP")
def test_the_static_neighbour_means_no_arp_on_flannel_1(flannel_vxlan):
    probe = flannel_vxlan.probe
    probe.listen(VTEP1)
    result = probe.ping("pod1a", POD2A)
    assert result, result.error
    crossed = probe.expect(VTEP1, Ether() / IP(src=POD1A, dst=POD2A) / ICMP(type=8), inbound=False)
    assert crossed, "the ping did not cross flannel.1\n" + crossed.format()
    assert [s for s in probe.seen(VTEP1) if s.packet.haslayer(ARP)] == [], probe.evidence(VTEP1)


@pytest.mark.requires("vxlan")
@pytest.mark.document("004", "Flannel VXLAN: flanneld 写入的静态邻居")
def test_without_the_static_neighbour_node1_arps_into_flannel_1_and_nothing_crosses(flannel_vxlan):
    flannel_vxlan.ipr("node1").neigh("del", dst="10.244.2.0", ifindex=flannel_vxlan.ifindex("node1", "flannel.1"))
    probe = flannel_vxlan.probe
    probe.listen(VTEP1, UNDERLAY1)
    result = probe.ping("pod1a", POD2A, timeout=QUIET_WINDOW)
    assert not result, "pod2a answered although node1 had no neighbour for 10.244.2.0"
    who_has = Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, pdst="10.244.2.0")
    assert probe.expect(VTEP1, who_has, inbound=False), probe.evidence(VTEP1)
    # nolearning and no all-zeros FDB entry: the broadcast has nowhere to go.
    assert probe.expect_none(UNDERLAY1, vxlan_from_node1(), inbound=False) == []


@pytest.mark.requires("vxlan")
@pytest.mark.document("004", "Flannel VXLAN: FDB 条目把对端 VTEP MAC 映射到节点公网 IP")
def test_without_the_fdb_entry_nothing_crosses(flannel_vxlan):
    flannel_vxlan.ipr("node1").fdb("del", ifindex=flannel_vxlan.ifindex("node1", "flannel.1"), lladdr=VTEP2_MAC,
                                   dst=NODE2_IP)
    probe = flannel_vxlan.probe
    probe.listen(VTEP1, UNDERLAY1)
    dropped_before = tx_dropped(flannel_vxlan, "node1", "flannel.1")
    result = probe.ping("pod1a", POD2A, timeout=QUIET_WINDOW)
    assert not result, "pod2a answered although node1's flannel.1 had no FDB entry for node2's VTEP"
    # Where it went: node1 routed the echo into flannel.1 (its static neighbour still names node2's
    # VTEP MAC), and the VXLAN device, with no FDB entry to say which node holds that MAC, dropped it.
    entered = probe.expect(VTEP1, Ether(dst=VTEP2_MAC) / IP(src=POD1A, dst=POD2A) / ICMP(type=8), inbound=False)
    assert entered, "the echo never went into flannel.1\n" + entered.format()
    strays = probe.expect_none(UNDERLAY1, vxlan_from_node1(), inbound=False)
    assert strays == [], strays.format()
    dropped = tx_dropped(flannel_vxlan, "node1", "flannel.1") - dropped_before
    assert dropped >= 1, f"the echo went into flannel.1 and never left eth0, yet flannel.1 counted no drop ({dropped})"


@pytest.mark.requires("vxlan")
@pytest.mark.document("004", "Flannel VXLAN: VNI")
def test_a_different_vni_on_node2_breaks_cross_node_delivery(request):
    live = build_changed(request, "004-flannel-vxlan", lambda lab: setattr(link_of(lab, "node2", "flannel.1"), "vni", 2))
    probe = live.probe
    probe.listen(UNDERLAY2, Port("node2", "flannel.1"), Port("pod2a", "eth0"))
    result = probe.ping("pod1a", POD2A, timeout=QUIET_WINDOW)
    assert not result, "pod2a answered across a VNI mismatch"
    # It does reach node2 in VNI 1, and node2, whose flannel.1 has VNI 2, hands it to nobody.
    seen = probe.expect(UNDERLAY2, vxlan_from_node1())
    assert seen, seen.format()
    assert VXLAN(bytes(seen.packet[UDP].payload)).vni == 1, seen.summary()
    for port in (Port("node2", "flannel.1"), Port("pod2a", "eth0")):
        strays = probe.expect_none(port, echo_to_pod2a)
        assert strays == [], strays.format()


@pytest.mark.requires("vxlan")
@pytest.mark.document("004", "VXLAN: 「3. 数据封装：Flannel 使用 VXLAN 协议将原始数据包封装在 UDP 报文中」 "
                        "(1450 = 1500 - 50 is flannel's VXLAN MTU and the kernel's overhead; the document gives none)")
def test_a_1450_byte_df_packet_crosses_in_a_1500_byte_underlay_packet(flannel_vxlan):
    probe = flannel_vxlan.probe
    probe.listen(UNDERLAY2)
    result = probe.ping("pod1a", POD2A, size=1450, df=True)
    assert result, result.error
    seen = probe.expect(UNDERLAY2, vxlan_from_node1())
    assert seen, probe.evidence(UNDERLAY2)
    # 1450 + 50 bytes of VXLAN encapsulation: exactly the underlay's 1500.
    assert seen.packet[IP].len == 1450 + tunnel.VXLAN_OVERHEAD == 1500, seen.summary()


def too_big_for_the_tunnel(lab, pod_mtu, refusal, size):
    """pod1a sends ``size`` bytes with DF to pod2a; ``refusal`` is the error it must get.

    With the pod at FLANNEL_MTU (``pod_mtu`` None) the state is the claim: in document 004
    flanneld writes "FLANNEL_MTU=1472" into subnet.env (line 342), and "flannel 插件在读取了
    .conflist 和 subnet.env 后 ... 调用 ... bridge 插件" (line 347): flannel's plugin passes
    FLANNEL_MTU as the delegate's mtu, and the bridge plugin sets it on the pod's interface.
    The lab writes that MTU as they would, and the pod's own kernel refusing the send reads
    that value: nothing is sent, so there is nothing on any wire to show. With the pod at
    Docker's 1500 the packet does leave: it must reach node1 on the pod's veth and be
    dropped there, with frag-needed, never going out to the underlay."""
    echo = Ether() / IP(src=POD1A, dst=POD2A, flags="DF") / ICMP(type=8)
    if pod_mtu is not None:
        for node, name in (("pod1a", "eth0"), ("node1", "veth-pod1a")):
            lab.ipr(node).link("set", index=lab.ifindex(node, name), mtu=pod_mtu)
    probe = lab.probe
    probe.listen(UNDERLAY1, POD1A_VETH)
    result = probe.ping("pod1a", POD2A, size=size, df=True)
    assert not result and result.error == refusal, result
    if pod_mtu is not None:
        reached = probe.expect(POD1A_VETH, echo)
        assert reached and len(reached.packet[IP]) == size, "the packet never reached node1\n" + reached.format()
        strays = probe.expect_none(UNDERLAY1, encapsulated_by_node1, inbound=False)
        assert strays == [], strays.format()


@pytest.mark.requires("vxlan")
@pytest.mark.document("004", "VXLAN: 「3. 数据封装」 (flannel's VXLAN MTU 1450; the document shows only 「# FLANNEL_MTU=1472」, UDP's)")
@pytest.mark.parametrize("pod_mtu,refusal", [
    # The pod's eth0 has FLANNEL_MTU: its own kernel refuses the send (ping -M do: "message too long").
    pytest.param(None, "Message too long", id="the-pod-with-flannel-mtu-refuses-it-itself"),
    # As if the pod kept Docker's 1500: node1 cannot forward it into flannel.1 (MTU 1450) with DF set,
    # so ICMP frag-needed comes from its cni0 gateway.
    pytest.param(1500, "ICMP type 3 code 4 from 10.244.1.1, mtu 1450", id="a-pod-without-flannel-mtu-gets-frag-needed"),
])
def test_a_1451_byte_df_packet_never_reaches_the_underlay(flannel_vxlan, pod_mtu, refusal):
    too_big_for_the_tunnel(flannel_vxlan, pod_mtu, refusal, 1451)


# ---------------------------------------------------------------- UDP backend

@pytest.mark.requires("tun")
@pytest.mark.document("004", "「Flannel UDP」: 发出端的 IP 包进行 UDP 封装, 接收端解封装")
def test_udp_backend_carries_the_bare_ip_packet_in_udp_8285(flannel_udp):
    flanneld = tunnel.UdpTunnel(flannel_udp, LEASES)
    probe = flannel_udp.probe
    probe.listen(UNDERLAY2)
    result = probe.ping("pod1a", POD2A)
    assert result, f"{result.error}; encapsulator {flanneld.counts}, error {flanneld.error!r}"
    seen = probe.expect(UNDERLAY2, udp_from_node1())
    assert seen, "no UDP 8285 from node1 to node2 on the underlay\n" + probe.evidence(UNDERLAY2)
    payload = bytes(seen.packet[UDP].payload)
    assert payload[0] >> 4 == 4, f"the payload is not a bare IPv4 packet: {payload[:16].hex()}"  # no Ethernet
    inner = IP(payload)
    assert (inner.src, inner.dst, inner[ICMP].type) == (POD1A, POD2A, 8), inner.summary()


@pytest.mark.requires("tun")
@pytest.mark.document("004", "「Flannel UDP」: 用户态封装 (flanneld)")
def test_with_the_encapsulator_stopped_nothing_crosses(flannel_udp):
    flanneld = tunnel.UdpTunnel(flannel_udp, LEASES)
    flanneld.close()
    assert not flanneld.running and flanneld.error is None, flanneld.error
    probe = flannel_udp.probe
    probe.listen(POD1A_VETH, UNDERLAY1)
    dropped_before = tx_dropped(flannel_udp, "node1", "flannel0")
    result = probe.ping("pod1a", POD2A, timeout=QUIET_WINDOW)
    assert not result, "pod2a answered with no encapsulator running"
    # Where it went: the echo reached node1 and was routed into flannel0, a TUN nobody holds (no
    # carrier), which dropped it; nothing encapsulated left eth0.
    reached = probe.expect(POD1A_VETH, Ether() / IP(src=POD1A, dst=POD2A) / ICMP(type=8))
    assert reached, "the echo never reached node1\n" + reached.format()
    strays = probe.expect_none(UNDERLAY1, udp_from_node1(), inbound=False)
    assert strays == [], strays.format()
    dropped = tx_dropped(flannel_udp, "node1", "flannel0") - dropped_before
    assert dropped >= 1, f"the echo reached node1 and never left eth0, yet flannel0 counted no drop ({dropped})"


@pytest.mark.requires("tun")
@pytest.mark.document("004", "「Flannel UDP」: 「FLANNEL_MTU=1472」 (IP 20 + UDP 8)")
def test_a_1472_byte_df_packet_crosses_in_a_1500_byte_udp_packet(flannel_udp):
    tunnel.UdpTunnel(flannel_udp, LEASES)
    probe = flannel_udp.probe
    probe.listen(UNDERLAY2)
    result = probe.ping("pod1a", POD2A, size=1472, df=True)
    assert result, result.error
    seen = probe.expect(UNDERLAY2, udp_from_node1())
    assert seen and seen.packet[IP].len == 1472 + tunnel.UDP_OVERHEAD == 1500, probe.evidence(UNDERLAY2)


@pytest.mark.requires("tun")
@pytest.mark.document("004", "「Flannel UDP」: 「FLANNEL_MTU=1472」")
@pytest.mark.parametrize("pod_mtu,refusal", [
    pytest.param(None, "Message too long", id="the-pod-with-flannel-mtu-refuses-it-itself"),
    # As if the pod kept Docker's 1500: node1 cannot forward it into flannel0 (MTU 1472) with DF set.
    pytest.param(1500, "ICMP type 3 code 4 from 10.244.1.1, mtu 1472", id="a-pod-without-flannel-mtu-gets-frag-needed"),
])
def test_a_1473_byte_df_packet_never_reaches_the_underlay(flannel_udp, pod_mtu, refusal):
    tunnel.UdpTunnel(flannel_udp, LEASES)
    too_big_for_the_tunnel(flannel_udp, pod_mtu, refusal, 1473)
