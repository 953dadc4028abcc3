"""Routing: document 000 ("路由表结构", "路由查找算法", "路由类型详解", the routed
containers lab) and 003 example 3. Where a packet leaves is observed on the wire,
at every next hop, not read back from the routing table.
"""
import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from pytest_netconform import lab_fixture
from harness import QUIET_WINDOW, Port, write_sysctl

pytestmark = pytest.mark.area("routing")

lpm = lab_fixture("000-lpm")
routed = lab_fixture("000-routed-containers")

EXITS = {"/32": Port("pod", "eth0"), "/24": Port("gw24", "eth0"), "/8": Port("gw8", "eth0"),
         "default": Port("gwdefault", "eth0"), "table 100": Port("gw100", "eth0")}
HOST_FROM_LAN = Port("host", "eth0")  # where lan's packets reach the router


def echo_to(dst, src=None):
    """An ICMP echo request to ``dst`` (from ``src``), as a template: other fields don't matter."""
    return Ether() / (IP(dst=dst, src=src) if src else IP(dst=dst)) / ICMP(type=8)


def exits_seen(probe, template, expected):
    """The exit that carried the packet must see it; every other exit must not."""
    hit = probe.expect(EXITS[expected], template)
    others = {port: name for name, port in EXITS.items() if name != expected}
    strays = probe.expect_none_on(list(others), template)  # one window for every other exit
    return hit, {others[port]: frames for port, frames in strays.items() if frames}


@pytest.mark.document("000", "「路由查找算法」: 「最长前缀匹配」")
@pytest.mark.parametrize("dst,expected", [("10.0.1.5", "/32"), ("10.0.1.6", "/24"), ("10.1.0.1", "/8"),
                                          ("10.0.9.1", "/8"), ("172.31.0.1", "default")])
def test_the_longest_matching_prefix_picks_the_exit(lpm, dst, expected):
    probe = lpm.probe
    probe.listen_all()
    probe.ping("host", dst, timeout=QUIET_WINDOW)  # nobody answers; where it leaves is the point
    hit, strays = exits_seen(probe, echo_to(dst), expected)
    assert hit, f"the echo to {dst} did not leave by the {expected} route\n" + probe.evidence(EXITS[expected])
    assert not strays, f"the echo to {dst} also left by {sorted(strays)}"


@pytest.mark.document("000", "「路由查找算法」: 「不可达」")
def test_no_matching_route_is_network_unreachable(lpm):
    lpm.ipr("host").route("del", dst="0.0.0.0/0", table=254)
    result = lpm.probe.ping("host", "172.31.0.1")
    assert not result and result.error == "Network is unreachable", result


@pytest.mark.document("000", "「路由类型详解」: 「blackhole 192.168.0.0/16」")
def test_blackhole_refuses_local_traffic_with_einval(lpm):
    probe = lpm.probe
    probe.listen_all()
    result = probe.ping("host", "192.168.7.7", timeout=QUIET_WINDOW)
    # Locally generated traffic to a blackhole route is refused at once (EINVAL): the host's
    # own sender is told, so this is not the silent drop; nothing leaves by any exit.
    assert not result and result.error == "Invalid argument", result
    for strays in probe.expect_none_on(EXITS.values(), echo_to("192.168.7.7")).values():
        assert strays == [], strays.format()


@pytest.mark.document("000", "「路由类型详解」: 「# 黑洞路由 blackhole 192.168.0.0/16」")
def test_blackhole_drops_forwarded_traffic_silently(lpm):
    """The document names the route kind only; what it does is the kernel's (ip-route(8):
    blackhole - "the packets are discarded silently"), measured for a packet the host forwards."""
    probe = lpm.probe
    probe.listen_all()
    result = probe.ping("lan", "192.168.7.7", timeout=QUIET_WINDOW)
    assert not result and result.error.startswith("no reply"), result
    # It reached the router, left by no exit, and no ICMP error came back to lan: silently.
    reached = probe.expect(HOST_FROM_LAN, echo_to("192.168.7.7", src="10.0.0.254"))
    assert reached, "lan's echo never reached the host\n" + reached.format()
    for strays in probe.expect_none_on(EXITS.values(), echo_to("192.168.7.7")).values():
        assert strays == [], strays.format()
    errors = probe.expect_none(Port("lan", "eth0"), Ether() / IP(dst="10.0.0.254") / ICMP(type=3))
    assert errors == [], errors.format()


@pytest.mark.document("000", "「路由类型详解」: 「blackhole」")
def test_without_the_blackhole_the_default_route_carries_it(lpm):
    lpm.ipr("host").route("del", dst="192.168.0.0", dst_len=16, type=6)
    probe = lpm.probe
    probe.listen_all()
    probe.ping("host", "192.168.7.7", timeout=QUIET_WINDOW)
    assert probe.expect(EXITS["default"], echo_to("192.168.7.7"))


@pytest.mark.parametrize("sender,source,expected", [
    pytest.param("pod", "10.0.1.5", "table 100", id="sources-in-10.0.1.0-24-use-table-100",
                 marks=pytest.mark.document("000", "「策略路由」: 「ip rule add from 10.0.1.0/24 table 100」")),
    pytest.param("lan", "10.0.0.254", "default", id="other-sources-use-the-main-table",
                 marks=pytest.mark.document("000", "「策略路由」")),
])
def test_the_policy_rule_picks_the_table_by_source(lpm, sender, source, expected):
    probe = lpm.probe
    probe.listen_all()
    probe.ping(sender, "8.8.8.8", timeout=QUIET_WINDOW)
    hit, strays = exits_seen(probe, echo_to("8.8.8.8", src=source), expected)
    assert hit, f"{sender}'s echo (source {source}) did not leave by the {expected} gateway\n" + probe.evidence(
        EXITS[expected])
    assert not strays, f"{sender}'s echo also left by {sorted(strays)}"


@pytest.mark.document("000", "「步骤 4」: 「sysctl -w net.ipv4.ip_forward=1」")
def test_forwarding_decrements_the_ttl(lpm):
    probe = lpm.probe
    probe.listen_all()
    probe.ping("lan", "172.31.0.1", timeout=QUIET_WINDOW, ttl=64)
    seen = probe.expect(EXITS["default"], echo_to("172.31.0.1"))
    assert seen and seen.packet[IP].ttl == 63, probe.evidence(EXITS["default"])


@pytest.mark.document("000", "「步骤 4」: 「sysctl -w net.ipv4.ip_forward=1」")
def test_ip_forward_0_stops_forwarding(lpm):
    with lpm.entered("host"):
        write_sysctl("net.ipv4.ip_forward", 0)
    probe = lpm.probe
    probe.listen_all()
    probe.ping("lan", "172.31.0.1", timeout=QUIET_WINDOW)
    # It reached the host and was dropped there: no exit carried it.
    reached = probe.expect(HOST_FROM_LAN, echo_to("172.31.0.1"))
    assert reached, "lan's echo never reached the host\n" + reached.format()
    for strays in probe.expect_none_on(EXITS.values(), echo_to("172.31.0.1")).values():
        assert strays == [], strays.format()


@pytest.mark.document("000", "「步骤 5」: 「测试容器间通信」")
@pytest.mark.parametrize("src,dst", [("container1", "10.0.2.2"), ("container2", "10.0.1.2")])
def test_routed_containers_reach_each_other(routed, src, dst):
    result = routed.probe.ping(src, dst)
    assert result, result.error


@pytest.mark.document("000", "「步骤 5」: 「ip route」")
def test_container1_routing_table_reads_as_the_document_prints_it(routed):
    eth0 = routed.ifindex("container1", "eth0")
    table = sorted(
        (f"{r.get_attr('RTA_DST') or 'default'}" + (f"/{r['dst_len']}" if r.get_attr("RTA_DST") else ""),
         r.get_attr("RTA_GATEWAY"), r.get_attr("RTA_OIF"), r["proto"], r["scope"], r.get_attr("RTA_PREFSRC"))
        for r in routed.ipr("container1").get_routes(family=2, table=254))
    # 10.0.1.0/24 dev eth0 proto kernel scope link src 10.0.1.2
    # default via 10.0.1.1 dev eth0
    assert table == sorted([("10.0.1.0/24", None, eth0, 2, 253, "10.0.1.2"),
                            ("default", "10.0.1.1", eth0, 3, 0, None)]), table


@pytest.mark.document("000", "「步骤 4」")
def test_without_a_default_route_container1_cannot_reach_container2(routed):
    routed.ipr("container1").route("del", dst="0.0.0.0/0")
    result = routed.probe.ping("container1", "10.0.2.2")
    assert not result and result.error == "Network is unreachable", result
