"""802.1Q VLANs: on bridge ports (harness lab vlan-bridge-port, not from a document), and
beside a macvlan on one parent (lab 004-vlanif, document 004).

h1 and h2 are on VLAN 10 through eth0.10, h3 on VLAN 20 through eth0.20 with an
address of the same subnet; their eth0s are ports swp1..swp3 of a VLAN-unaware bridge
br0, which forwards tagged frames as they are. What the kernel's 8021q driver does:
a sub-interface sends its frames with its VLAN id in an 802.1Q tag, and takes in only
frames tagged with its own id; a frame for another VLAN dies at the receiving eth0.

The tag is checked on the wire, on the bridge ports: the probe puts back the tag the
kernel keeps beside the frame (PACKET_AUXDATA), as tcpdump does.

Document 004 ("MACVLAN", line 377) sets macvlan apart from 802.1Q:
「VLANIF 子接口和主接口共用相同的 MAC 地址」. The kernel's vlan device takes its parent's MAC
when none is given: pod-v's enp0s8.10 (lab 004-vlanif) sends with the host's enp0s8 MAC (the
kernel's random one; the lab sets none), where mac1, a macvlan on the same parent, sends with
its own. It is a default, not a law: a sub-interface made with an address of its own (the
twin) sends with that one.

Every test needs the vlan link kind; a kernel without the 8021q module skips with its
answer (the VM kernel matrix runs them: ``pytest suites/ --vm debian12``).
"""
import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Dot1Q, Ether

from pytest_netconform import lab_fixture
from pytest_netconform.labs import build_for
from harness import QUIET_WINDOW, Port

pytestmark = [pytest.mark.area("VLAN"), pytest.mark.requires("vlan")]

vlan_lab = lab_fixture("vlan-bridge-port")
vlanif = lab_fixture("004-vlanif")

H1, H2, H3 = "10.10.0.1", "10.10.0.2", "10.10.0.3"
SWP1, SWP2, SWP3 = Port("host", "swp1"), Port("host", "swp2"), Port("host", "swp3")
H3_VLAN20 = Port("h3", "eth0.20")
# 004-vlanif: the switch's end of enp0s8, its addresses untagged and on VLAN 10, the pods'
SWP1_SWITCH = Port("switch", "swp1")
SWITCH, SWITCH_V10, POD_A, POD_V = "192.168.10.1", "192.168.20.1", "192.168.10.10", "192.168.20.10"
OWN_MAC = "02:00:00:00:10:01"  # the twin's address for enp0s8.10 (locally administered)


def tagged_echo(vlan, src, dst):
    return Ether() / Dot1Q(vlan=vlan) / IP(src=src, dst=dst) / ICMP(type=8)


def test_tagged_frames_reach_the_peer_on_the_same_vlan(vlan_lab):
    probe = vlan_lab.probe
    probe.listen_all()
    result = probe.ping("h1", H2)
    assert result, result.error
    # Into the bridge from h1 and out of it to h2: the echo carries VLAN 10's tag on both ports.
    assert probe.expect(SWP1, tagged_echo(10, H1, H2)), probe.evidence(SWP1)
    assert probe.expect(SWP2, tagged_echo(10, H1, H2), inbound=False), probe.evidence(SWP2)


def test_a_different_vlan_id_does_not_reach(vlan_lab):
    # The negative twin: h3 has an address of the subnet, but on VLAN 20.
    probe = vlan_lab.probe
    probe.listen_all()
    result = probe.ping("h1", H3, timeout=QUIET_WINDOW)
    assert not result, "h3 (VLAN 20) answered h1 (VLAN 10)"
    # The bridge floods h1's who-has to h3's port, tagged 10; h3's eth0.20 never sees it.
    who_has = Ether(dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=10) / ARP(op=1, pdst=H3)
    assert probe.expect(SWP3, who_has, inbound=False), probe.evidence(SWP3)
    assert probe.expect_none(H3_VLAN20, Ether() / ARP(pdst=H3)) == [], probe.evidence(H3_VLAN20)



# -- document 004: a VLAN sub-interface shares its parent's MAC (lab 004-vlanif) ---------------

@pytest.mark.document("004", "MACVLAN: 「VLANIF 子接口和主接口共用相同的 MAC 地址」 (on the wire: the tagged "
                             "frames carry the parent's MAC)")
def test_a_vlan_sub_interface_sends_with_its_parents_mac(vlanif):
    parent = vlanif.mac("host", "enp0s8")  # the kernel's random address: the lab gives none
    assert vlanif.mac("pod-v", "enp0s8.10") == parent, "the kernel gave enp0s8.10 an address of its own"
    probe = vlanif.probe
    probe.listen(SWP1_SWITCH)
    result = probe.ping("pod-v", SWITCH_V10)
    assert result, result.error
    asked = probe.expect(SWP1_SWITCH, Ether(src=parent) / Dot1Q(vlan=10) / ARP(op=1, hwsrc=parent, psrc=POD_V))
    assert asked, "pod-v's who-has did not carry enp0s8's MAC in VLAN 10\n" + asked.format()
    sent = probe.expect(SWP1_SWITCH, Ether(src=parent) / Dot1Q(vlan=10) / IP(src=POD_V, dst=SWITCH_V10)
                        / ICMP(type=8))
    assert sent, "pod-v's echo did not leave with enp0s8's MAC in VLAN 10\n" + sent.format()


@pytest.mark.requires("macvlan")
@pytest.mark.document("004", "MACVLAN: 「macvlan 子接口和原来的主接口是完全独立的，可以单独配置 MAC 地址和 IP 地址」 "
                             "(the twin: on the same parent, mac1 sends with a MAC of its own)")
def test_a_macvlan_on_the_same_parent_sends_with_its_own_mac(vlanif):
    parent, own = vlanif.mac("host", "enp0s8"), vlanif.mac("pod-a", "mac1")
    assert own != parent, f"mac1 has enp0s8's MAC {parent}"
    probe = vlanif.probe
    probe.listen(SWP1_SWITCH)
    result = probe.ping("pod-a", SWITCH)
    assert result, result.error
    sent = probe.expect(SWP1_SWITCH, Ether(src=own) / IP(src=POD_A, dst=SWITCH) / ICMP(type=8))
    assert sent, "pod-a's echo did not leave with mac1's own MAC\n" + sent.format()
    shared = probe.expect_none(SWP1_SWITCH, Ether(src=parent) / IP(src=POD_A))
    assert shared == [], "pod-a's packets left with enp0s8's MAC\n" + shared.format()


@pytest.mark.document("004", "MACVLAN: 「VLANIF 子接口和主接口共用相同的 MAC 地址」 (the twin: a VLAN "
                             "sub-interface made with an address of its own sends with that one)")
def test_a_vlan_sub_interface_made_with_its_own_mac_sends_with_that_one(request):
    def own_mac(lab):
        next(link for link in lab.node("pod-v").links if link.name == "enp0s8.10").mac = OWN_MAC
    lab = build_for(request, "004-vlanif", own_mac)
    request.addfinalizer(lab.teardown)
    parent = lab.mac("host", "enp0s8")
    probe = lab.probe
    probe.listen(SWP1_SWITCH)
    result = probe.ping("pod-v", SWITCH_V10)
    assert result, result.error  # 8021q puts the address in enp0s8's unicast filter: the replies get in
    sent = probe.expect(SWP1_SWITCH, Ether(src=OWN_MAC) / Dot1Q(vlan=10) / IP(src=POD_V, dst=SWITCH_V10))
    assert sent, "pod-v's echo did not leave with enp0s8.10's own MAC\n" + sent.format()
    shared = probe.expect_none(SWP1_SWITCH, Ether(src=parent) / Dot1Q(vlan=10) / IP(src=POD_V))
    assert shared == [], ("pod-v's packets left with enp0s8's MAC although enp0s8.10 has its own\n"
                          + shared.format())
