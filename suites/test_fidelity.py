"""Fidelity: each document lab's own checks pass as the document writes them.

The pings the documents run (``ip netns exec ns1 ping -c 3 192.168.28.2``...), and the
tables they print, compared as netlink data. Each lab's negative twin: the same source
gets no answer from an address of the same subnet that nobody holds.
"""
import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from pytest_netconform.labs import build_for
from harness import QUIET_WINDOW, Port

pytestmark = pytest.mark.area("fidelity")

# lab -> the document's pings: (from node, to address)
DOCUMENT_PINGS = {
    "000-veth-basics": [("host", "10.0.0.2"), ("my-namespace", "10.0.0.1")],
    "000-routed-containers": [("container1", "10.0.2.2"), ("container2", "10.0.1.2"), ("container1", "8.8.8.8")],
    "000-calico": [("container1", "10.244.1.3")],
    "001-vbridge": [("ns1", "192.168.28.2"), ("ns1", "192.168.28.3"), ("ns2", "192.168.28.3"),
                    ("ns3", "192.168.28.1"), ("ns3", "192.168.28.2"), ("host", "192.168.28.1"),
                    ("ns1", "192.168.17.10"), ("ns1", "8.8.8.8")],
    "002-veth-pair": [("ns1", "192.168.1.2"), ("ns2", "192.168.1.1")],
    "002-br0": [("ns1", "192.168.1.254")],
    "003-example1": [("ns1", "192.168.1.2"), ("ns2", "192.168.1.1")],
    "004-br0": [("ns1", "192.168.1.12"), ("ns1", "192.168.1.10")],
}
# lab -> (node, an address of its first ping's subnet that nobody holds, the port where the
# node's question for it must arrive): the twin shows the question crossed the lab's links.
NOBODY = {
    "000-veth-basics": ("host", "10.0.0.9", Port("my-namespace", "veth1")),
    "000-routed-containers": ("container1", "10.0.2.9", Port("host", "veth-c1")),
    "000-calico": ("container1", "10.244.1.10", Port("host", "cali0001")),
    "001-vbridge": ("ns1", "192.168.28.9", Port("ns2", "veth-2")),
    "002-veth-pair": ("ns1", "192.168.1.9", Port("ns2", "veth-ns2")),
    "002-br0": ("ns1", "192.168.1.9", Port("host", "br0")),
    "003-example1": ("ns1", "192.168.1.9", Port("ns2", "veth1")),
    "004-br0": ("ns1", "192.168.1.9", Port("ns2", "veth2_ns2")),
}


def about(target, asking: bool):
    """The source's question for ``target`` (an ARP who-has for it, or an IP packet to it)
    or, with ``asking`` False, an answer from it (an ARP is-at, or an IP packet from it)."""
    op, arp_field, ip_field = (1, "pdst", "dst") if asking else (2, "psrc", "src")

    def matches(packet):
        if packet.haslayer(ARP):
            return packet[ARP].op == op and getattr(packet[ARP], arp_field) == target
        return packet.haslayer(IP) and getattr(packet[IP], ip_field) == target
    matches.__name__ = f"{'asks_for' if asking else 'answers_from'}_{target}"
    return matches


@pytest.fixture
def lab(request):
    live = build_for(request, request.param)
    yield live
    live.teardown()


@pytest.mark.parametrize("lab", sorted(DOCUMENT_PINGS), indirect=True)
def test_the_documents_pings_answer(lab):
    failed = []
    for source, target in DOCUMENT_PINGS[lab.name]:
        result = lab.probe.ping(source, target)
        if not result:
            failed.append(f"{source} -> {target}: {result.error}")
    assert not failed, f"{lab.name}: " + "; ".join(failed)


@pytest.mark.parametrize("lab", sorted(DOCUMENT_PINGS), indirect=True)
def test_an_address_nobody_holds_does_not_answer(lab):
    source, target, asked_at = NOBODY[lab.name]
    probe = lab.probe
    probe.listen_all()
    result = probe.ping(source, target, timeout=QUIET_WINDOW)
    assert not result, f"{lab.name}: {target} answered {source} from {result.reply_from}"
    # It was not for want of a link: the question reached the other side, and no answer came.
    asked = probe.expect(asked_at, about(target, asking=True))
    assert asked, f"{lab.name}: {source}'s question for {target} never reached {asked_at}\n" + asked.format()
    for node, ifname in lab.lab.interfaces():
        if node == source:
            answers = probe.expect_none(Port(node, ifname), about(target, asking=False))
            assert answers == [], answers.format()


def main_table(lab, node):
    """(destination, gateway, device, protocol, scope, preferred source) of the main table."""
    names = {msg["index"]: msg.get_attr("IFLA_IFNAME") for msg in lab.ipr(node).get_links()}
    rows = []
    for route in lab.ipr(node).get_routes(family=2, table=254):
        dst = route.get_attr("RTA_DST")
        rows.append((f"{dst}/{route['dst_len']}" if dst else "default", route.get_attr("RTA_GATEWAY"),
                     names.get(route.get_attr("RTA_OIF")), route["proto"], route["scope"],
                     route.get_attr("RTA_PREFSRC")))
    return sorted(rows, key=str)


KERNEL, BOOT, LINK, UNIVERSE = 2, 3, 253, 0


@pytest.mark.document("001", "「step3」: 「route -n」")
@pytest.mark.parametrize("lab", ["001-vbridge"], indirect=True)
def test_001_host_routing_table_reads_as_the_document_prints_it(lab):
    # 0.0.0.0       192.168.17.2  0.0.0.0        UG  ens33
    # 192.168.17.0  0.0.0.0       255.255.255.0  U   ens33
    # 192.168.28.0  0.0.0.0       255.255.255.0  U   vbridge
    assert main_table(lab, "host") == sorted([
        ("default", "192.168.17.2", "ens33", BOOT, UNIVERSE, None),
        ("192.168.17.0/24", None, "ens33", KERNEL, LINK, "192.168.17.10"),
        ("192.168.28.0/24", None, "vbridge", KERNEL, LINK, "192.168.28.5"),
    ], key=str)


@pytest.mark.document("000", "「步骤 7」: 「ip route」 (Calico style)")
@pytest.mark.parametrize("lab", ["000-calico"], indirect=True)
def test_000_calico_routes_carry_a_pods_packet_as_the_document_writes_them(lab):
    """The lab writes these routes itself, so reading them back proves nothing; what they
    mean is checked on the wire instead:
    container1: "169.254.1.1 dev eth0 scope link" and "default via 169.254.1.1 dev eth0",
    so its echo to 10.244.1.3 leaves eth0 to the MAC that answered for 169.254.1.1
    (cali0001's, by proxy ARP); host: "10.244.1.3 dev cali0002 scope link", so the host
    resolves 10.244.1.3 itself on cali0002 and sends the echo out there, not to a gateway."""
    probe = lab.probe
    probe.listen_all()
    result = probe.ping("container1", "10.244.1.3")
    assert result, result.error
    to_gateway = Ether(dst=lab.mac("host", "cali0001")) / IP(src="10.244.1.2", dst="10.244.1.3") / ICMP(type=8)
    left = probe.expect(Port("container1", "eth0"), to_gateway, inbound=False)
    assert left, left.format()
    on_link = Ether(dst=lab.mac("container2", "eth0")) / IP(src="10.244.1.2", dst="10.244.1.3") / ICMP(type=8)
    forwarded = probe.expect_only([Port("host", "cali0002")], on_link, inbound=False)
    assert forwarded, forwarded.format()
    # The reply takes "10.244.1.2 dev cali0001 scope link" back.
    back = Ether(dst=lab.mac("container1", "eth0")) / IP(src="10.244.1.3", dst="10.244.1.2") / ICMP(type=0)
    returned = probe.expect(Port("host", "cali0001"), back, inbound=False)
    assert returned, returned.format()
