"""MACVLAN: document 004 ("MACVLAN", its modes bridge, VEPA and private, and pod-a on
enp0s8), with passthru, the fourth mode, and the classic trap of the parent that cannot
reach its own children. The parent enp0s8 is a veth whose peer swp1 is the port of the
external switch (namespace "switch"), so what crosses the switch is seen on swp1.
"""
import errno

import pytest
from pyroute2.netlink.exceptions import NetlinkError
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from pytest_netconform import lab_fixture
from harness import QUIET_WINDOW, Port, bridge, l2_frame, set_link

pytestmark = pytest.mark.area("macvlan")

mv_bridge = lab_fixture("004-macvlan-bridge")
mv_vepa = lab_fixture("004-macvlan-vepa")
mv_private = lab_fixture("004-macvlan-private")
mv_passthru = lab_fixture("004-macvlan-passthru")

POD_A, POD_B, HOST_IP, GATEWAY = "192.168.10.10", "192.168.10.11", "192.168.10.2", "192.168.10.1"
MAC1, MAC2, SWP1 = Port("pod-a", "mac1"), Port("pod-b", "mac2"), Port("switch", "swp1")
PARENT = Port("host", "enp0s8")
NEW_MAC = "02:00:00:00:10:10"
GATEWAY_MAC = "02:00:00:00:10:01"  # a source for frames the test sends from the switch


def echo(src, dst, kind=8):
    """An ICMP echo request (8) or reply (0) from src to dst, as a template."""
    return Ether() / IP(src=src, dst=dst) / ICMP(type=kind)


def who_has(target):
    return Ether() / ARP(op=1, pdst=target)


def add_child(lab, name, mode):
    """`ip link add link enp0s8 dev NAME type macvlan mode MODE` in the host."""
    lab.ipr("host").link("add", ifname=name, kind="macvlan", link=lab.ifindex("host", "enp0s8"), macvlan_mode=mode)


def static_neighbours(lab):
    """Each pod learns the other's MAC without ARP (`ip neigh replace ... nud permanent`)."""
    for node, ifname, peer_ip, peer in (("pod-a", "mac1", POD_B, ("pod-b", "mac2")),
                                        ("pod-b", "mac2", POD_A, ("pod-a", "mac1"))):
        lab.ipr(node).neigh("replace", dst=peer_ip, ifindex=lab.ifindex(node, ifname), lladdr=lab.mac(*peer),
                            state="permanent")


# -- children talking: inside the parent (bridge), through the switch (VEPA), not at all (private)

@pytest.mark.parametrize("lab,through_the_switch", [
    pytest.param("mv_bridge", False, id="bridge-mode-directly-inside-the-parent", marks=pytest.mark.document(
        "004", "「MACVLAN」: mode bridge (ip link add link enp0s8 dev mac1 type macvlan mode bridge)")),
    pytest.param("mv_vepa", True, id="vepa-only-through-the-switch-hairpin", marks=pytest.mark.document(
        "004", "「MACVLAN」: 「VEPA」: 「所有从 Macvlan 接口发出的流量，不管目的地全部都发送给父接口」 (a hairpin switch sends it back)")),
])
def test_children_talk_and_the_mode_decides_whether_through_the_switch(request, lab, through_the_switch):
    live = request.getfixturevalue(lab)
    probe = live.probe
    probe.listen_all()
    result = probe.ping("pod-a", POD_B)
    assert result, result.error
    pods_echo = echo(POD_A, POD_B)
    if not through_the_switch:
        assert probe.expect_none(SWP1, pods_echo) == [], "bridge mode sent pod-a's echo out to the switch"
        return
    assert probe.expect(SWP1, pods_echo), "pod-a's echo never reached the switch\n" + probe.evidence(SWP1)
    assert probe.expect(SWP1, pods_echo, inbound=False), \
        "the switch did not send the echo back\n" + probe.evidence(SWP1)
    assert probe.expect(SWP1, echo(POD_B, POD_A, kind=0)), "pod-b's reply did not go through the switch either"


@pytest.mark.document("004", "「MACVLAN」: 「private」: 「同一主接口下的子接口之间彼此隔离，不能通信。"
                             "即使从外部的物理交换机导流，也会被无情地丢掉。」")
def test_private_mode_children_do_not_talk_even_through_a_hairpin_switch(mv_private):
    probe = mv_private.probe
    probe.listen_all()
    result = probe.ping("pod-a", POD_B, timeout=QUIET_WINDOW)
    assert not result, "pod-b answered pod-a in private mode"
    # The switch did send pod-a's who-has back (hairpin on); macvlan dropped it before pod-b.
    assert probe.expect(SWP1, who_has(POD_B), inbound=False), probe.evidence(SWP1)
    assert probe.expect_none(MAC2, who_has(POD_B)) == [], "pod-b saw pod-a's ARP request"


@pytest.mark.document("004", "「MACVLAN」: private 模式 (what the kernel drops: reflected broadcasts)")
def test_private_mode_drops_reflected_broadcasts_but_not_reflected_unicast(mv_private):
    # The document says even what the switch sends back is dropped. The kernel drops a
    # sibling's reflected broadcast/multicast only (so ARP never resolves); unicast to a
    # known MAC comes back through the hairpin switch and is delivered.
    probe = mv_private.probe
    probe.listen_all()
    static_neighbours(mv_private)
    result = probe.ping("pod-a", POD_B)
    assert result, result.error
    assert probe.expect(SWP1, echo(POD_A, POD_B), inbound=False), "the echo did not go through the switch"


# -- VEPA -------------------------------------------------------------------------------------

@pytest.mark.document("004", "「MACVLAN」: 「VEPA 模式」 (a switch without hairpin)")
def test_vepa_children_do_not_talk_when_the_switch_has_hairpin_off(mv_vepa):
    probe = mv_vepa.probe
    probe.listen_all()
    bridge.set_port(mv_vepa, "switch", "swp1", hairpin=False)
    result = probe.ping("pod-a", POD_B, timeout=QUIET_WINDOW)
    assert not result, "pod-b answered although the switch reflects nothing"
    assert probe.expect(SWP1, who_has(POD_B)), "pod-a's ARP request never reached the switch"
    assert probe.expect_none(MAC2, who_has(POD_B)) == [], "pod-b saw the ARP request without the switch"


# -- the trap: the parent cannot reach its own children -------------------------------------

@pytest.mark.document("004", "「MACVLAN」: pod-a 192.168.10.10 (the host behind enp0s8 cannot reach it)")
def test_host_cannot_reach_its_own_macvlan_child_through_the_parent(mv_bridge):
    probe = mv_bridge.probe
    probe.listen_all()
    result = probe.ping("host", POD_A, timeout=QUIET_WINDOW)
    assert not result, "the host reached mac1 through its parent enp0s8"
    # The who-has left through enp0s8 to the switch; what the parent sends never loops to its children.
    assert probe.expect(SWP1, who_has(POD_A)), probe.evidence(SWP1)
    assert probe.expect_none(MAC1, who_has(POD_A)) == [], "mac1 saw the host's ARP request"


@pytest.mark.document("004", "「MACVLAN」: pod-a default via 192.168.10.1 (the outside reaches the child)")
def test_switch_reaches_the_macvlan_child(mv_bridge):
    result = mv_bridge.probe.ping("switch", POD_A)
    assert result, result.error
    back = mv_bridge.probe.ping("pod-a", GATEWAY)
    assert back, back.error


@pytest.mark.document("004", "「MACVLAN」: 「VEPA」 (the host reaches its child when the switch reflects)")
def test_host_reaches_its_child_when_the_switch_sends_frames_back(mv_vepa):
    probe = mv_vepa.probe
    probe.listen_all()
    result = probe.ping("host", POD_A)
    assert result, result.error
    assert probe.expect(SWP1, echo(HOST_IP, POD_A), inbound=False), "the echo did not come back from the switch"


# -- MACs: a child has its own, except in passthru -------------------------------------------

@pytest.mark.document("004", "「MACVLAN」: 「macvlan 子接口和原来的主接口是完全独立的，可以单独配置 MAC 地址和 IP 地址。」")
def test_bridge_mode_children_have_macs_of_their_own(mv_bridge):
    parent, mac1 = mv_bridge.mac("host", "enp0s8"), mv_bridge.mac("pod-a", "mac1")
    assert mac1 != parent
    assert mv_bridge.mac("pod-b", "mac2") not in (parent, mac1)
    mv_bridge.ipr("pod-a").link("set", index=mv_bridge.ifindex("pod-a", "mac1"), address=NEW_MAC)
    assert mv_bridge.mac("host", "enp0s8") == parent
    # Reading NEW_MAC back would only show what the test wrote: the parent must now hand a frame
    # for NEW_MAC to mac1, and one for mac1's old MAC no longer.
    probe = mv_bridge.probe
    probe.listen(MAC1, MAC2)
    to_new = l2_frame(GATEWAY_MAC, NEW_MAC, "to the new MAC")
    probe.send(SWP1, to_new)
    delivered = probe.expect_only([MAC1], to_new)
    assert delivered, delivered.format()
    # The old MAC: the frame reaches the parent (the host's enp0s8 sees it come in), and no child
    # takes it; macvlan leaves it to the parent's own stack.
    probe.listen(PARENT)
    to_old = l2_frame(GATEWAY_MAC, mac1, "to the old MAC")
    probe.send(SWP1, to_old)
    reached = probe.expect(PARENT, to_old)
    assert reached, "the frame for mac1's old MAC never reached the parent\n" + reached.format()
    for child in (MAC1, MAC2):
        strays = probe.expect_none(child, to_old)
        assert strays == [], strays.format()


@pytest.mark.document("004", "MACVLAN 模式: passthru (the child takes the parent's MAC)")
def test_passthru_child_has_the_parents_mac_and_they_change_together(mv_passthru):
    parent, child = mv_passthru.mac("host", "enp0s8"), mv_passthru.mac("pod-a", "mac1")
    assert child == parent
    mv_passthru.ipr("pod-a").link("set", index=mv_passthru.ifindex("pod-a", "mac1"), address=NEW_MAC)
    assert (mv_passthru.mac("pod-a", "mac1"), mv_passthru.mac("host", "enp0s8")) == (NEW_MAC, NEW_MAC)


# -- passthru: one child, and it takes the parent over ---------------------------------------

@pytest.mark.document("004", "MACVLAN 模式: passthru (a single child per parent)")
@pytest.mark.parametrize("mode", ["passthru", "bridge"])
def test_passthru_parent_refuses_a_second_child(mv_passthru, mode):
    with pytest.raises(NetlinkError) as refused:
        add_child(mv_passthru, "mac2", mode)
    assert refused.value.code == errno.EINVAL, refused.value


@pytest.mark.document("004", "「MACVLAN」: 「ip link add link enp0s8 dev mac2 type macvlan mode bridge」")
def test_bridge_mode_parent_takes_more_children(mv_bridge):
    add_child(mv_bridge, "mac3", "bridge")
    set_link(mv_bridge, "host", "mac3", up=True)
    # The third child works as the first two do: the parent hands it the frames for its MAC, and
    # only it (IFLA_LINK would only read back the parent the test named).
    probe = mv_bridge.probe
    mac3 = Port("host", "mac3")
    probe.listen(MAC1, MAC2, mac3)
    frame = l2_frame(GATEWAY_MAC, mv_bridge.mac("host", "mac3"), "to the third child")
    probe.send(SWP1, frame)
    delivered = probe.expect_only([mac3], frame)
    assert delivered, delivered.format()


@pytest.mark.document("004", "MACVLAN 模式: passthru (the child takes the parent's traffic)")
def test_passthru_child_takes_the_parents_traffic_over(mv_passthru):
    probe = mv_passthru.probe
    child = probe.ping("pod-a", GATEWAY)
    assert child, child.error
    # The switch answers the host at the shared MAC, and passthru hands every frame to the child.
    probe.listen(SWP1, MAC1)
    host = probe.ping("host", GATEWAY, timeout=QUIET_WINDOW)
    assert not host, "the host still got answers on enp0s8 with a passthru child on it"
    # Where it went: the host's question for the gateway reached the switch, and the switch's
    # answer, to the shared MAC, went to the child mac1, not to the host.
    asked = probe.expect(SWP1, Ether() / ARP(op=1, psrc=HOST_IP, pdst=GATEWAY))
    assert asked, "the host's ARP request never reached the switch\n" + asked.format()
    taken = probe.expect(MAC1, Ether() / ARP(op=2, psrc=GATEWAY, pdst=HOST_IP))
    assert taken, "the switch's answer to the host did not go to the passthru child\n" + taken.format()


@pytest.mark.document("004", "「MACVLAN」: 「mode bridge」 (the parent keeps its own traffic)")
def test_bridge_mode_parent_keeps_its_own_traffic(mv_bridge):
    host = mv_bridge.probe.ping("host", GATEWAY)
    assert host, host.error
