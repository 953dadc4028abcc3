"""Document 003, 示例3 "多veth复杂网络拓扑": a router namespace between client1 and
client2 (steps 1-7): the clients reach each other only through the router's
forwarding and their default routes; client1's `ip neigh` then holds the router.
"""
import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from pytest_netconform import lab_fixture
from harness import QUIET_WINDOW, Port, write_sysctl
from harness.kernel.constants import RTPROT_KERNEL

pytestmark = pytest.mark.area("routing")

example3 = lab_fixture("003-example3")

CLIENT1, CLIENT2, R1, R2 = "10.0.1.100", "10.0.2.100", "10.0.1.1", "10.0.2.1"
VETH_R1, VETH_R2 = Port("router", "veth-r1"), Port("router", "veth-r2")


def echo(src, dst):
    return Ether() / IP(src=src, dst=dst) / ICMP(type=8)


def neighbours(lab, node):
    """`ip neigh show` as {address: MAC} (entries still resolving have no MAC)."""
    return {n.get_attr("NDA_DST"): n.get_attr("NDA_LLADDR") for n in lab.ipr(node).get_neighbours(family=2)}


@pytest.mark.document("003", "示例3 步骤6: 「ip netns exec client1 ping -c 3 10.0.2.100」 (and client2 → client1)")
@pytest.mark.parametrize("src,dst", [("client1", CLIENT2), ("client2", CLIENT1)])
def test_clients_ping_each_other_through_the_router(example3, src, dst):
    result = example3.probe.ping(src, dst)
    assert result, result.error
    assert result.reply_from == dst
    assert result.ttl == 63, f"the reply came with TTL {result.ttl}: it did not cross exactly one router"


@pytest.mark.document("003", "示例3 步骤5: 「sysctl -w net.ipv4.ip_forward=1」")
def test_with_ip_forward_0_the_router_does_not_carry_it(example3):
    with example3.entered("router"):
        write_sysctl("net.ipv4.ip_forward", 0)
    probe = example3.probe
    probe.listen_all()
    result = probe.ping("client1", CLIENT2, timeout=QUIET_WINDOW)
    assert not result, "client2 answered although the router does not forward"
    assert probe.expect(VETH_R1, echo(CLIENT1, CLIENT2)), "the echo never reached the router\n" + probe.evidence(VETH_R1)
    assert probe.expect_none(VETH_R2, echo(CLIENT1, CLIENT2), inbound=False) == [], "the router forwarded it"


@pytest.mark.document("003", "示例3 步骤4: 「ip netns exec client1 ip route add default via 10.0.1.1」")
def test_without_its_default_route_client1_cannot_reach_client2(example3):
    example3.ipr("client1").route("del", dst="0.0.0.0/0")
    result = example3.probe.ping("client1", CLIENT2)
    assert not result and result.error == "Network is unreachable", result
    assert example3.probe.ping("client1", R1), "client1 lost its own subnet too"


@pytest.mark.document("003", "示例3 步骤7: 「ip netns exec client1 ip neigh show」")
def test_after_the_ping_client1_neighbour_table_holds_the_router(example3):
    result = example3.probe.ping("client1", CLIENT2)
    assert result, result.error
    table = neighbours(example3, "client1")
    assert table.get(R1) == example3.mac("router", "veth-r1"), table
    # client2 is behind the router: client1 never resolves it, only its gateway.
    assert CLIENT2 not in table, table


@pytest.mark.document("003", "示例3 步骤7: 「ip neigh show」 (before any traffic)")
def test_before_any_traffic_client1_neighbour_table_is_empty(example3):
    assert neighbours(example3, "client1") == {}


@pytest.mark.document("003", "「示例3」: 「ip netns exec router ip route show」 (only its two subnets, no default)")
def test_the_router_routes_only_its_two_subnets(example3):
    # The kernel's routes for the router's two addresses, and nothing else: what the document's
    # `ip route show` prints. The lab writes the addresses, not these routes.
    routes = sorted((f"{r.get_attr('RTA_DST')}/{r['dst_len']}", r["proto"])
                    for r in example3.ipr("router").get_routes(family=2, table=254))
    assert routes == [("10.0.1.0/24", RTPROT_KERNEL), ("10.0.2.0/24", RTPROT_KERNEL)], routes
    # On the wire: anything else is unroutable there, and the router says so to client1.
    result = example3.probe.ping("client1", "8.8.8.8")
    assert not result and result.error == f"ICMP type 3 code 0 from {R1}", result
