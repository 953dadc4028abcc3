"""Calico's routes to another node's pods: document 000, "Calico 路由示例" (lines 295-300).

The document lists a node's routes to the pods of node 192.168.1.102 twice: learned by
BGP, ``10.244.2.0/24 via 192.168.1.102 dev eth0 proto bird`` (the pods' packets cross the
underlay as they are), and in IPIP mode, ``10.244.2.0/24 via 192.168.1.102 dev tunl0 proto
bird onlink``: tunl0 (the ipip module's fallback device, remote any) wraps the pod's packet
in an outer IPv4 header to the route's gateway, protocol 4, and the other node's tunl0
unwraps it. Lab 000-calico-ipip installs the IPIP routes on both nodes; the BGP routes are
the twin.

What is checked on the wire, on the nodes' eth0 (the underlay): the pod's echo in IP-in-IP
from 192.168.1.101 to 192.168.1.102 with the pods' addresses inside, and the reply the same
way back; with the BGP routes instead, the bare packet; without the tunl0 route, the packet
leaves node1 bare for its default gateway (the underlay's router) and node2 never sees it;
with node2's tunl0 down, the capsule arrives and node2 refuses it (port unreachable: no
tunnel takes protocol 4).

Every test needs the ipip link kind; a kernel without it skips with its answer (the VM job
runs them: ``make vm-check``, bookworm's 6.1 and forky's 7.2).
"""
import pytest
from scapy.layers.inet import ICMP, IP, IPerror
from scapy.layers.l2 import Ether

from pytest_netconform import lab_fixture
from pytest_netconform.labs import build_for
from harness import QUIET_WINDOW, Port, Route, set_link

pytestmark = [pytest.mark.area("IPIP"), pytest.mark.requires("ipip")]

calico_ipip = lab_fixture("000-calico-ipip")

NODE1_IP, NODE2_IP = "192.168.1.101", "192.168.1.102"
POD1, POD2 = "10.244.1.2", "10.244.2.2"
UNDERLAY1, UNDERLAY2 = Port("node1", "eth0"), Port("node2", "eth0")
IPPROTO_IPIP, ICMP_PORT_UNREACHABLE = 4, 3
# The document's BGP lines, and node2's mirror of them (the lab's).
BGP_ROUTES = {"node1": Route("10.244.2.0/24", via=NODE2_IP, dev="eth0", proto="bird"),
              "node2": Route("10.244.1.0/24", via=NODE1_IP, dev="eth0", proto="bird")}


def capsule(outer_src, outer_dst, inner_src, inner_dst, icmp_type):
    """An ICMP packet between pods inside an IPv4 header between nodes (protocol 4)."""
    return (Ether() / IP(src=outer_src, dst=outer_dst, proto=IPPROTO_IPIP)
            / IP(src=inner_src, dst=inner_dst) / ICMP(type=icmp_type))


def bare(src, dst, icmp_type):
    return Ether() / IP(src=src, dst=dst) / ICMP(type=icmp_type)


def pod_traffic(packet):
    """Any packet that holds a pod address in any of its IP headers (bare or encapsulated)."""
    layer = packet
    while layer is not None and layer.haslayer(IP):
        layer = layer[IP]
        if layer.src.startswith("10.244.") or layer.dst.startswith("10.244."):
            return True
        layer = layer.payload
    return False


def with_bgp_routes(lab):
    """The document's BGP routes in place of the IPIP ones, on both nodes."""
    for node, route in BGP_ROUTES.items():
        routes = lab.node(node).routes
        routes[:] = [r for r in routes if r.dev != "tunl0"] + [route]


@pytest.mark.document("000", "Calico 路由示例: 「10.244.2.0/24 via 192.168.1.102 dev tunl0 proto bird onlink」 "
                             "(IPIP mode: the pod's packet crosses the underlay inside IP-in-IP)")
def test_a_pod_to_pod_echo_crosses_the_underlay_in_ip_in_ip(calico_ipip):
    probe = calico_ipip.probe
    probe.listen(UNDERLAY1, UNDERLAY2)
    result = probe.ping("pod1", POD2)
    assert result, result.error
    there = probe.expect(UNDERLAY2, capsule(NODE1_IP, NODE2_IP, POD1, POD2, 8))
    assert there, "pod1's echo did not reach node2 in IP-in-IP\n" + there.format()
    back = probe.expect(UNDERLAY1, capsule(NODE2_IP, NODE1_IP, POD2, POD1, 0))
    assert back, "pod2's reply did not reach node1 in IP-in-IP\n" + back.format()
    uncovered = probe.expect_none(UNDERLAY2, bare(POD1, POD2, 8))
    assert uncovered == [], "the echo also crossed bare\n" + uncovered.format()


@pytest.mark.document("000", "Calico 路由示例: 「10.244.2.0/24 via 192.168.1.102 dev eth0 proto bird」 "
                             "(BGP without IPIP: the pod's packet crosses as it is)")
def test_with_the_bgp_route_via_eth0_the_echo_crosses_bare(request):
    # The twin of the IPIP check: the same ping, routed by the document's BGP lines instead.
    lab = build_for(request, "000-calico-ipip", with_bgp_routes)
    request.addfinalizer(lab.teardown)
    probe = lab.probe
    probe.listen(UNDERLAY1, UNDERLAY2)
    result = probe.ping("pod1", POD2)
    assert result, result.error
    crossed = probe.expect(UNDERLAY2, bare(POD1, POD2, 8))
    assert crossed, "pod1's echo did not cross the underlay bare\n" + crossed.format()
    wrapped = probe.expect_none(UNDERLAY2, Ether() / IP(proto=IPPROTO_IPIP))
    assert wrapped == [], "an IP-in-IP packet crossed with no route through tunl0\n" + wrapped.format()


@pytest.mark.document("000", "Calico 路由示例: 「dev tunl0 proto bird onlink」: without it the pod's packet "
                             "leaves bare, by the node's default route")
def test_without_the_tunl0_route_the_echo_leaves_bare_for_the_default_gateway(calico_ipip):
    calico_ipip.ipr("node1").route("del", dst="10.244.2.0", dst_len=24)
    probe = calico_ipip.probe
    probe.listen(UNDERLAY1, UNDERLAY2)
    result = probe.ping("pod1", POD2, timeout=QUIET_WINDOW)
    assert not result, "pod2 answered without node1's route through tunl0"
    # Where it went: out of node1 unwrapped, to the underlay's router (it routes no pod network).
    router = calico_ipip.mac("host", "underlay")
    left = probe.expect(UNDERLAY1, Ether(dst=router) / IP(src=POD1, dst=POD2) / ICMP(type=8), inbound=False)
    assert left, "pod1's echo did not leave node1 bare for 192.168.1.1\n" + left.format()
    reached = probe.expect_none(UNDERLAY2, pod_traffic)
    assert reached == [], "pod traffic reached node2 with no route to it\n" + reached.format()


@pytest.mark.document("000", "Calico 路由示例 (IPIP mode): the other node's tunl0 takes the capsule off")
def test_with_node2s_tunl0_down_the_capsule_arrives_and_is_refused(calico_ipip):
    set_link(calico_ipip, "node2", "tunl0", up=False)
    probe = calico_ipip.probe
    probe.listen(UNDERLAY2)
    result = probe.ping("pod1", POD2, timeout=QUIET_WINDOW)
    assert not result, "pod2 answered with node2's tunl0 down"
    arrived = probe.expect(UNDERLAY2, capsule(NODE1_IP, NODE2_IP, POD1, POD2, 8))
    assert arrived, "the capsule did not reach node2\n" + arrived.format()
    # No tunnel device up takes protocol 4: the kernel answers the sender "port unreachable" (tunnel4_rcv).
    refused = probe.expect(UNDERLAY2, Ether() / IP(src=NODE2_IP, dst=NODE1_IP)
                           / ICMP(type=3, code=ICMP_PORT_UNREACHABLE)
                           / IPerror(src=NODE1_IP, dst=NODE2_IP, proto=IPPROTO_IPIP), inbound=False)
    assert refused, "node2 did not refuse the capsule with port unreachable\n" + refused.format()
