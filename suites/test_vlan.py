"""802.1Q VLANs on bridge ports (harness lab vlan-bridge-port, not from a document).

h1 and h2 are on VLAN 10 through eth0.10, h3 on VLAN 20 through eth0.20 with an
address of the same subnet; their eth0s are ports swp1..swp3 of a VLAN-unaware bridge
br0, which forwards tagged frames as they are. What the kernel's 8021q driver does:
a sub-interface sends its frames with its VLAN id in an 802.1Q tag, and takes in only
frames tagged with its own id; a frame for another VLAN dies at the receiving eth0.

The tag is checked on the wire, on the bridge ports: the probe puts back the tag the
kernel keeps beside the frame (PACKET_AUXDATA), as tcpdump does.

Every test needs the vlan link kind; a kernel without the 8021q module skips with its
answer (the VM kernel matrix runs them: ``pytest suites/ --vm debian12``).
"""
import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Dot1Q, Ether

from pytest_netconform import lab_fixture
from harness import QUIET_WINDOW, Port

pytestmark = [pytest.mark.area("VLAN"), pytest.mark.requires("vlan")]

vlan_lab = lab_fixture("vlan-bridge-port")

H1, H2, H3 = "10.10.0.1", "10.10.0.2", "10.10.0.3"
SWP1, SWP2, SWP3 = Port("host", "swp1"), Port("host", "swp2"), Port("host", "swp3")
H3_VLAN20 = Port("h3", "eth0.20")


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
