"""The probe engine on a real lab: matching, deadlines, draining, ARP/ICMP/UDP/TCP, pcapng."""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import PcapNgReader

from pytest_netconform import lab_fixture
from harness.errors import ProbeError
from harness.probe.match import template_matches
from harness.probe import QUIET_WINDOW, Port, l2_frame

vbridge = lab_fixture("001-vbridge")
NS1, NS2, NS3 = Port("ns1", "veth-1"), Port("ns2", "veth-2"), Port("ns3", "veth-3")


@pytest.mark.parametrize("template,frame,expected", [
    (Ether(dst="02:00:00:00:00:02"), Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(), True),
    (Ether(dst="02:00:00:00:00:02"), Ether(dst="02:00:00:00:00:03"), False),
    (Ether(dst="02:00:00:00:00:02"), Ether(dst="02:00:00:00:00:02".upper()), True),  # values, not spellings
    (Ether() / IP(dst="10.0.0.1") / UDP(dport=53), Ether() / IP(dst="10.0.0.1", ttl=3) / UDP(dport=53), True),
    (Ether() / IP(dst="10.0.0.1") / UDP(dport=53), Ether() / IP(dst="10.0.0.1") / UDP(dport=54), False),
    (Ether() / IP(), Ether() / ARP(), False),  # a layer of another type
    (Ether() / Raw(b"hello"), Ether(type=0x88B5) / Raw(b"hello world"), True),  # Raw is a prefix
    (Ether() / Raw(b"hello"), Ether(type=0x88B5) / Raw(b"help"), False),
], ids=["set-field", "other-dst", "case", "unset-ttl-ignored", "other-port", "other-layer", "raw-prefix",
        "raw-differs"])
def test_templates_match_only_the_fields_they_set(template, frame, expected):
    assert template_matches(template, Ether(bytes(frame))) is expected


def test_expect_returns_the_matching_frame_and_none_after_its_deadline(vbridge):
    probe = vbridge.probe
    frame = l2_frame(vbridge.mac("ns1", "veth-1"), vbridge.mac("ns2", "veth-2"), "to ns2")
    probe.send(NS1, frame)
    seen = probe.expect(NS2, frame)
    assert seen is not None and bytes(seen.raw).startswith(bytes(frame))
    assert probe.expect(NS2, frame, timeout=QUIET_WINDOW) is None  # consumed: not found twice


def test_an_802_1q_tag_is_seen_where_it_was_on_the_wire(vbridge):
    # The receiving kernel moves the tag out of the frame (into PACKET_AUXDATA), with or
    # without the 8021q module; the probe puts it back, as tcpdump does.
    probe = vbridge.probe
    probe.listen_all()
    src, dst = vbridge.mac("ns1", "veth-1"), vbridge.mac("ns2", "veth-2")
    tagged = Ether(src=src, dst=dst) / Dot1Q(vlan=10, prio=3) / IP(src="10.10.0.1", dst="10.10.0.2") / UDP()
    probe.send(NS1, tagged)
    seen = probe.expect(NS2, Ether(dst=dst) / Dot1Q(vlan=10, prio=3) / IP(dst="10.10.0.2"))
    assert seen is not None, probe.evidence(NS2)
    assert seen.raw[:18] == bytes(tagged)[:18]
    assert probe.expect(NS3, Ether(dst=dst) / Dot1Q(vlan=11), timeout=QUIET_WINDOW) is None


def test_an_expectation_ignores_what_came_before_the_last_send(vbridge):
    probe = vbridge.probe
    first = l2_frame(vbridge.mac("ns1", "veth-1"), "02:00:00:00:00:99", "first")
    second = l2_frame(vbridge.mac("ns1", "veth-1"), "02:00:00:00:00:99", "second")
    probe.send(NS1, first)
    probe.send(NS1, second)
    assert probe.expect(NS3, first, timeout=QUIET_WINDOW) is None
    assert probe.expect(NS3, second) is not None


def test_expect_none_reports_offending_frames(vbridge):
    probe = vbridge.probe
    flood = l2_frame(vbridge.mac("ns1", "veth-1"), "02:00:00:00:00:99", "unknown unicast")
    probe.send(NS1, flood)
    offending = probe.expect_none(NS3, flood)
    assert len(offending) == 1 and offending[0].port == NS3


def test_a_port_not_listened_to_is_an_error_that_says_what_to_do(vbridge):
    vbridge.probe.listen(NS1)
    with pytest.raises(ProbeError, match=r"probe.listen"):
        vbridge.probe.expect(Port("host", "vbridge"), Ether())


def test_sockets_are_cached_per_namespace_and_interface(vbridge):
    probe = vbridge.probe
    probe.listen(NS1)
    sock = probe._sockets[NS1].sock
    probe.listen(NS1, NS2)
    assert probe._sockets[NS1].sock is sock and NS2 in probe._sockets


def test_arp_reply_carries_the_targets_mac(vbridge):
    reply = vbridge.probe.arp(NS1, "192.168.28.2")
    assert reply is not None and reply.mac == vbridge.mac("ns2", "veth-2")


def test_arp_for_an_address_nobody_has_gets_no_reply(vbridge):
    assert vbridge.probe.arp(NS1, "192.168.28.77", timeout=QUIET_WINDOW) is None


def test_ping_reports_the_kernels_own_words(vbridge):
    ok = vbridge.probe.ping("ns1", "192.168.28.3")
    assert ok and ok.reply_from == "192.168.28.3"
    vbridge.ipr("ns1").route("del", dst="0.0.0.0/0")
    unreachable = vbridge.probe.ping("ns1", "10.9.9.9")
    assert not unreachable and unreachable.error == "Network is unreachable"


def test_udp_and_tcp_exchanges_show_what_the_server_saw(vbridge):
    udp = vbridge.probe.udp("ns1", "ns2", "192.168.28.2", 5353)
    tcp = vbridge.probe.tcp("ns1", "ns3", "192.168.28.3", 8080)
    assert udp and udp.server_saw[0] == "192.168.28.1" and udp.reply == b"netconform"
    assert tcp and tcp.server_saw[0] == "192.168.28.1" and tcp.client_saw == ("192.168.28.3", 8080)


def test_an_exchange_with_no_listener_at_the_address_fails(vbridge):
    # The server listens on ns2's address, the client dials ns3's: nothing answers there.
    tcp = vbridge.probe.tcp("ns1", "ns2", "192.168.28.3", 8080, listen="192.168.28.2", timeout=QUIET_WINDOW)
    assert not tcp and tcp.error


def test_the_capture_is_a_pcapng_naming_each_frames_interface(vbridge):
    probe = vbridge.probe
    frame = l2_frame(vbridge.mac("ns1", "veth-1"), vbridge.mac("ns2", "veth-2"), "captured")
    probe.send(NS1, frame)
    assert probe.expect(NS2, frame)
    probe.pcap.close()
    with PcapNgReader(probe.capture_path) as reader:
        captured = [packet for packet in reader if b"captured" in bytes(packet)]
    names = sorted(packet.sniffed_on for packet in captured)
    assert names == ["ns1/veth-1", "ns2/veth-2"], names
