"""The Linux bridge as a learning switch: documents 000 ("Linux bridge 原理",
containers A, B, C), 001 (vbridge) and 004 (br0 as a layer-3 interface).
"""
import time

import pytest
from scapy.layers.l2 import ARP, Ether

from pytest_netconform import lab_fixture
from harness import DEADLINE, QUIET_WINDOW, RTMGRP_IPV4_ROUTE, NetlinkWatch, Port, address, bridge, l2_frame, set_link
from harness.kernel.constants import RTPROT_KERNEL

pytestmark = pytest.mark.area("bridge")

bridge_abc = lab_fixture("000-bridge-abc")
vbridge = lab_fixture("001-vbridge")
br0_004 = lab_fixture("004-br0")

MAC_A, MAC_B, MAC_C = "02:00:00:00:aa:aa", "02:00:00:00:bb:bb", "02:00:00:00:cc:cc"
A, B, C = Port("container-a", "eth0"), Port("container-b", "eth0"), Port("container-c", "eth0")
PORT_OF = {MAC_A: "veth1", MAC_B: "veth2", MAC_C: "veth3"}
SHORT_AGEING = 0.5  # seconds; the kernel's default is 300


def learned(lab):
    return bridge.learned(lab, "host", "br0")


def wait_learned(lab, mac):
    return bridge.wait_fdb(lab, "host", "br0", lambda entries: mac in entries, DEADLINE)


@pytest.mark.document("000", "MAC 地址学习")
def test_fdb_holds_only_the_ports_own_entries_at_start(bridge_abc):
    assert learned(bridge_abc) == {}
    local = {e.port for e in bridge.fdb(bridge_abc, "host", "br0") if e.local}
    assert {"veth1", "veth2", "veth3"} <= local


@pytest.mark.document("000", "MAC 地址学习: 学习 aa:aa → port1")
def test_first_frame_from_a_learns_a_on_its_port(bridge_abc):
    bridge_abc.probe.send(A, l2_frame(MAC_A, MAC_B, "A to B"))
    assert wait_learned(bridge_abc, MAC_A), f"aa:aa not learned: {learned(bridge_abc)}"
    assert learned(bridge_abc)[MAC_A] == PORT_OF[MAC_A]
    assert MAC_B not in learned(bridge_abc), "bb:bb learned before B sent anything"


@pytest.mark.document("000", "MAC 地址学习: 「泛洪 (未知 bb:bb)」")
def test_unknown_unicast_is_flooded_to_every_other_port(bridge_abc):
    probe = bridge_abc.probe
    frame = l2_frame(MAC_A, MAC_B, "A to unknown B")
    probe.send(A, frame)
    assert probe.expect(B, frame), probe.evidence(B, match=frame)
    assert probe.expect(C, frame), probe.evidence(C, match=frame)


@pytest.mark.document("000", "MAC 地址学习: 「泛洪」")
def test_flood_is_not_reflected_to_the_ingress_port(bridge_abc):
    probe = bridge_abc.probe
    frame = l2_frame(MAC_A, MAC_B, "A to unknown B")
    probe.send(A, frame)
    assert probe.expect(B, frame)  # the flood happened...
    assert probe.expect_none(A, frame) == []  # ...but not back to A: hairpin is off by default


@pytest.mark.document("000", "MAC 地址学习: 学习 bb:bb → port2, 定向转发")
def test_reply_from_b_is_learned_and_goes_to_a_only(bridge_abc):
    probe = bridge_abc.probe
    probe.send(A, l2_frame(MAC_A, MAC_B, "A to B"))
    assert wait_learned(bridge_abc, MAC_A)
    reply = l2_frame(MAC_B, MAC_A, "B answers A")
    probe.send(B, reply)
    assert probe.expect(A, reply), probe.evidence(A, match=reply)
    assert probe.expect_none(C, reply) == [], "the reply to a known MAC was flooded to C"
    assert wait_learned(bridge_abc, MAC_B)
    assert learned(bridge_abc)[MAC_B] == PORT_OF[MAC_B]


@pytest.mark.document("000", "MAC 地址学习: 后续帧定向转发")
def test_known_unicast_goes_to_its_port_only(bridge_abc):
    probe = bridge_abc.probe
    probe.send(A, l2_frame(MAC_A, MAC_B, "A to B, flooded"))
    assert wait_learned(bridge_abc, MAC_A)
    probe.send(B, l2_frame(MAC_B, MAC_A, "B answers"))
    assert wait_learned(bridge_abc, MAC_B)
    later = l2_frame(MAC_A, MAC_B, "A to B, known now")
    probe.send(A, later)
    assert probe.expect(B, later), probe.evidence(B, match=later)
    assert probe.expect_none(C, later) == [], "C saw a frame for a MAC the bridge knows is on port 2"


@pytest.mark.document("000", "「bridge fdb show br br0」")
def test_each_ports_own_mac_is_a_local_entry(bridge_abc):
    local = {(e.mac, e.port) for e in bridge.fdb(bridge_abc, "host", "br0") if e.local}
    for port in ("veth1", "veth2", "veth3"):
        assert (bridge_abc.mac("host", port), port) in local


@pytest.mark.document("004", "「brctl showmacs br0」: 远端 MAC 会老化")
def test_learned_remote_macs_are_not_local_entries(bridge_abc):
    bridge_abc.probe.send(A, l2_frame(MAC_A, MAC_B, "A to B"))
    assert wait_learned(bridge_abc, MAC_A)
    entry = [e for e in bridge.fdb(bridge_abc, "host", "br0") if e.mac == MAC_A]
    assert entry and not entry[0].local


@pytest.mark.document("000", "MAC 地址学习")
def test_nothing_is_learned_on_a_port_with_learning_off(bridge_abc):
    bridge.set_port(bridge_abc, "host", "veth1", learning=False)
    frame = l2_frame(MAC_A, MAC_B, "A to B, learning off")
    bridge_abc.probe.send(A, frame)
    assert bridge_abc.probe.expect(B, frame)  # forwarded (flooded) all the same
    assert MAC_A not in learned(bridge_abc)


@pytest.mark.document("004", "「brctl showmacs br0」: 「ageing timer」")
def test_learned_entry_ages_out_after_the_ageing_time(bridge_abc):
    bridge.set_ageing_time(bridge_abc, "host", "br0", SHORT_AGEING)
    sent = time.monotonic()
    bridge_abc.probe.send(A, l2_frame(MAC_A, MAC_B, "A to B, then silence"))
    assert wait_learned(bridge_abc, MAC_A)
    gone = bridge.wait_fdb(bridge_abc, "host", "br0", lambda entries: MAC_A not in entries,
                           SHORT_AGEING + 5 * DEADLINE)
    aged_after = time.monotonic() - sent
    assert gone, f"aa:aa still learned {aged_after:.2f} s after its only frame"
    # Not too early either: an entry lives for the ageing time after it was last seen.
    assert aged_after >= SHORT_AGEING * 0.9, f"aa:aa aged out after {aged_after:.2f} s < {SHORT_AGEING} s"


@pytest.mark.document("000", "「ip link set veth1 nomaster」")
def test_a_port_removed_with_nomaster_no_longer_gets_floods(bridge_abc):
    probe = bridge_abc.probe
    probe.listen_all()
    set_link(bridge_abc, "host", "veth3", nomaster=True)
    frame = l2_frame(MAC_A, MAC_B, "flood after nomaster")
    probe.send(A, frame)
    assert probe.expect(B, frame)
    assert probe.expect_none(C, frame) == [], "veth3 left the bridge but C still got the flood"


@pytest.mark.document("000", "「Bridge 命令」: 「# 删除 bridge」 / 「ip link del br0」")
def test_deleting_br0_frees_its_ports_and_stops_a_to_b(bridge_abc):
    probe = bridge_abc.probe
    probe.listen_all()
    before = l2_frame(MAC_A, MAC_B, "A to B through br0")
    probe.send(A, before)
    assert probe.expect(B, before), "A to B did not cross br0 before it was deleted\n" + probe.evidence(B)
    bridge_abc.ipr("host").link("del", index=bridge_abc.ifindex("host", "br0"))
    masters = {port: bridge_abc.link("host", port).get_attr("IFLA_MASTER") for port in PORT_OF.values()}
    assert set(masters.values()) == {None}, f"ports still enslaved after ip link del br0: {masters}"
    after = l2_frame(MAC_A, MAC_B, "A to B without br0")
    probe.send(A, after)
    reached = probe.expect(Port("host", "veth1"), after)
    assert reached, "A's frame did not reach the host's veth1\n" + reached.format()
    for port in (B, C):
        strays = probe.expect_none(port, after)
        assert strays == [], strays.format()


@pytest.mark.document("001", "「step2」: 端口 state disabled")
def test_a_port_is_disabled_until_its_veth_is_up(vbridge):
    assert bridge.port_state(vbridge, "host", "veth-1-br") == "forwarding"
    set_link(vbridge, "ns1", "veth-1", up=False)
    assert bridge.wait_port_state(vbridge, "host", "veth-1-br", "disabled", DEADLINE)
    set_link(vbridge, "ns1", "veth-1", up=True)
    assert bridge.wait_port_state(vbridge, "host", "veth-1-br", "forwarding", DEADLINE)


@pytest.mark.document("001", "「step2」: 三个 namespace 互相 ping 通")
@pytest.mark.parametrize("src,dst", [("ns1", "192.168.28.2"), ("ns1", "192.168.28.3"), ("ns2", "192.168.28.3"),
                                     ("ns3", "192.168.28.1"), ("ns3", "192.168.28.2")])
def test_namespaces_ping_each_other_over_vbridge(vbridge, src, dst):
    result = vbridge.probe.ping(src, dst)
    assert result, result.error


@pytest.mark.document("001", "「step2」")
def test_no_ping_crosses_a_port_that_is_down(vbridge):
    set_link(vbridge, "host", "veth-3-br", up=False)
    probe = vbridge.probe
    probe.listen_all()
    result = probe.ping("ns1", "192.168.28.3", timeout=QUIET_WINDOW)
    assert not result, "ns3 answered through a bridge port that is down"
    # Where it went: ns1's who-has reached vbridge, which flooded it to ns2 and its own stack,
    # and not out of the port that is down, so ns3 never heard the question.
    question = Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, pdst="192.168.28.3")
    flooded = probe.expect_only([Port("host", "veth-1-br"), Port("host", "vbridge"), Port("ns2", "veth-2")], question)
    assert flooded, flooded.format()


@pytest.mark.document("001", "「step3」: 「ip addr add 192.168.28.5/24 dev vbridge」")
def test_host_reaches_the_namespaces_only_once_vbridge_has_an_address(vbridge):
    probe = vbridge.probe
    address(vbridge, "host", "vbridge", "192.168.28.5/24", add=False)
    assert not connected_routes(vbridge)
    before = probe.ping("host", "192.168.28.1", timeout=QUIET_WINDOW)
    # Without the address the host routes 192.168.28.1 by its default route, out of ens33.
    assert not before, "ns1 answered the host although vbridge had no address"
    with NetlinkWatch(vbridge.fd("host"), RTMGRP_IPV4_ROUTE) as watch:
        address(vbridge, "host", "vbridge", "192.168.28.5/24")
        assert watch.wait_for(lambda: connected_routes(vbridge), DEADLINE)
    # route -n: 192.168.28.0 0.0.0.0 255.255.255.0 U 0 0 0 vbridge
    assert connected_routes(vbridge) == [("192.168.28.0/24", "192.168.28.5")]
    after = probe.ping("host", "192.168.28.1")
    assert after, after.error


@pytest.mark.document("001", "「step3」: 「ip netns exec ns1 ping 192.168.17.10」 (Network is unreachable)")
def test_ns1_reaches_the_host_address_only_with_its_default_route(vbridge):
    probe = vbridge.probe
    vbridge.ipr("ns1").route("del", dst="0.0.0.0/0")
    # step3: "ns1中使用route -n，可以看到目前只有往192.168.28.0/24的路由表" - the kernel's one route.
    left = [(f"{r.get_attr('RTA_DST')}/{r['dst_len']}", r["proto"])
            for r in vbridge.ipr("ns1").get_routes(family=2, table=254)]
    assert left == [("192.168.28.0/24", RTPROT_KERNEL)], left
    before = probe.ping("ns1", "192.168.17.10")
    assert not before and before.error == "Network is unreachable", before
    vbridge.ipr("ns1").route("add", dst="0.0.0.0/0", gateway="192.168.28.5")
    after = probe.ping("ns1", "192.168.17.10")
    assert after, after.error


def connected_routes(lab):
    """(dst, src) of the kernel's connected routes on vbridge in the main table."""
    index = lab.ifindex("host", "vbridge")
    return [(f"{r.get_attr('RTA_DST')}/{r['dst_len']}", r.get_attr("RTA_PREFSRC"))
            for r in lab.ipr("host").get_routes(family=2, table=254)
            if r.get_attr("RTA_OIF") == index and r["proto"] == 2]


@pytest.mark.document("004", "br0 也是主机的三层接口")
def test_br0_is_a_layer3_interface_of_the_host(br0_004):
    to_bridge = br0_004.probe.ping("ns1", "192.168.1.10")
    to_ns2 = br0_004.probe.ping("ns1", "192.168.1.12")
    assert to_bridge, to_bridge.error
    assert to_ns2, to_ns2.error


@pytest.mark.document("004", "br0 也是主机的三层接口")
def test_a_bridge_that_is_down_answers_nothing(br0_004):
    set_link(br0_004, "host", "br0", up=False)
    probe = br0_004.probe
    probe.listen_all()
    result = probe.ping("ns1", "192.168.1.10", timeout=QUIET_WINDOW)
    assert not result, "br0 is down but answered"
    # Where it went: ns1's who-has reached the bridge's port veth1_br and stopped there (the
    # ports of a bridge that is down are disabled): neither br0's stack nor ns2 got it.
    question = Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, pdst="192.168.1.10")
    stopped = probe.expect_only([Port("host", "veth1_br")], question)
    assert stopped, stopped.format()
