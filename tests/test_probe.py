"""The probe engine on a real lab: matching, deadlines, draining, ARP/ICMP/UDP/TCP, pcapng, and
verdicts that show their evidence when an assertion on them fails."""
import os
import re
import socket
import subprocess
import sys
import textwrap

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import PcapNgReader

from pytest_netconform import lab_fixture
from harness import bridge
from harness.lab.live import address
from harness.errors import ProbeError
from harness.probe.match import template_matches
from harness.probe import DEADLINE, QUIET_WINDOW, Port, l2_frame

vbridge = lab_fixture("001-vbridge")
NS1, NS2, NS3 = Port("ns1", "veth-1"), Port("ns2", "veth-2"), Port("ns3", "veth-3")
NS3_MAC = "02:00:00:00:03:03"


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


def test_expect_returns_the_matching_frame_and_nothing_after_its_deadline(vbridge):
    probe = vbridge.probe
    frame = l2_frame(vbridge.mac("ns1", "veth-1"), vbridge.mac("ns2", "veth-2"), "to ns2")
    probe.send(NS1, frame)
    seen = probe.expect(NS2, frame)
    assert seen and bytes(seen.raw).startswith(bytes(frame)) and seen.frame.port == NS2
    assert not probe.expect(NS2, frame, timeout=QUIET_WINDOW)  # consumed: not found twice


def test_an_802_1q_tag_is_seen_where_it_was_on_the_wire(vbridge):
    # The receiving kernel moves the tag out of the frame (into PACKET_AUXDATA), with or
    # without the 8021q module; the probe puts it back, as tcpdump does.
    probe = vbridge.probe
    probe.listen_all()
    src, dst = vbridge.mac("ns1", "veth-1"), vbridge.mac("ns2", "veth-2")
    tagged = Ether(src=src, dst=dst) / Dot1Q(vlan=10, prio=3) / IP(src="10.10.0.1", dst="10.10.0.2") / UDP()
    probe.send(NS1, tagged)
    seen = probe.expect(NS2, Ether(dst=dst) / Dot1Q(vlan=10, prio=3) / IP(dst="10.10.0.2"))
    assert seen, probe.evidence(NS2)
    assert seen.raw[:18] == bytes(tagged)[:18]
    assert not probe.expect(NS3, Ether(dst=dst) / Dot1Q(vlan=11), timeout=QUIET_WINDOW)


def test_an_expectation_ignores_what_came_before_the_last_send(vbridge):
    probe = vbridge.probe
    first = l2_frame(vbridge.mac("ns1", "veth-1"), "02:00:00:00:00:99", "first")
    second = l2_frame(vbridge.mac("ns1", "veth-1"), "02:00:00:00:00:99", "second")
    probe.send(NS1, first)
    probe.send(NS1, second)
    assert not probe.expect(NS3, first, timeout=QUIET_WINDOW)
    assert probe.expect(NS3, second)


def test_expect_none_reports_offending_frames(vbridge):
    probe = vbridge.probe
    flood = l2_frame(vbridge.mac("ns1", "veth-1"), "02:00:00:00:00:99", "unknown unicast")
    probe.send(NS1, flood)
    offending = probe.expect_none(NS3, flood)
    assert len(offending) == 1 and offending[0].port == NS3


@pytest.mark.parametrize("report", [
    Ether(dst=NS3_MAC) / IP(src="0.0.0.0", dst="224.0.0.22", proto=2) / Raw(b"\x22" * 8),
    Ether(dst=NS3_MAC, type=0x86DD) / Raw(bytes(40)),
], ids=["igmp-report", "mld-report"])
def test_a_negative_window_counts_only_frames_that_match_the_probe(vbridge, report):
    # An IGMP report (224.0.0.22) or an MLD report (ff02::16) can land in any window on a link
    # with multicast (issue 15: a flannel negative once showed one): seen, never counted. Sent
    # unicast to ns3 here, because vbridge's multicast snooping sends reports to routers only.
    probe = vbridge.probe
    probe.listen_all()
    src = vbridge.mac("ns1", "veth-1")
    vbridge.ipr("ns3").link("set", index=vbridge.ifindex("ns3", "veth-3"), address=NS3_MAC)
    report.src = src
    probe.send(NS1, report)
    quiet = probe.expect_none(NS3, l2_frame(src, NS3_MAC, "never sent"))
    assert quiet == [], quiet.format()
    # Seen among whatever else came (a real IGMP report from vbridge can come too): not counted.
    assert bytes(report) in [s.raw[:len(bytes(report))] for s in quiet.saw], quiet.format()


def test_a_negative_window_still_counts_a_matching_frame_among_unrelated_ones(vbridge):
    # The twin of the test above: the probe's frame and, after it in the same window, an IGMP and
    # an MLD report sent by another socket (as the kernel's own would come): exactly the probe's
    # frame is counted, and the reports are seen but not counted.
    probe = vbridge.probe
    probe.listen_all()
    src = vbridge.mac("ns1", "veth-1")
    vbridge.ipr("ns3").link("set", index=vbridge.ifindex("ns3", "veth-3"), address=NS3_MAC)
    matching = l2_frame(src, NS3_MAC, "the probe's frame")
    reports = [Ether(src=src, dst=NS3_MAC) / IP(src="0.0.0.0", dst="224.0.0.22", proto=2) / Raw(b"\x22" * 8),
               Ether(src=src, dst=NS3_MAC, type=0x86DD) / Raw(bytes(40))]
    probe.send(NS1, matching)
    with vbridge.entered("ns1"):
        other = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC)
    with other:
        other.bind(("veth-1", 0))
        for report in reports:
            other.send(bytes(report))
    counted = probe.expect_none(NS3, matching)
    assert [s.raw[:len(bytes(matching))] for s in counted] == [bytes(matching)], counted.format()
    seen = [s.raw for s in counted.saw]
    for report in reports:
        assert any(raw.startswith(bytes(report)) for raw in seen), counted.format()


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


def test_a_transfer_is_timed_by_its_server_and_a_shaper_on_the_way_slows_it_to_its_rate(vbridge):
    """The bounded transfer a rate is measured with: the server counts every byte and times them; through
    a token bucket of 8 Mbit/s (burst 64000 bytes, ns1's veth-1) it takes that rate within 25 % after the
    burst; without one (the twin) it is many times faster."""
    free = vbridge.probe.transfer("ns1", "ns3", "192.168.28.3", 5201, 256 * 1024, window=16 * 1024)
    assert free and free.received == 256 * 1024 and free.rate() > 32e6, free
    ipr = vbridge.ipr("ns1")
    ipr.tc("add", "tbf", vbridge.ifindex("ns1", "veth-1"), rate="8mbit", burst=64000, latency="25ms")
    shaped = vbridge.probe.transfer("ns1", "ns3", "192.168.28.3", 5201, 256 * 1024, window=16 * 1024)
    assert shaped and abs(shaped.rate(discount=64000) - 8e6) < 2e6, shaped
    refused = vbridge.probe.transfer("ns1", "ns2", "192.168.28.3", 5201, 1024, timeout=QUIET_WINDOW)
    assert not refused and refused.error, refused


def test_an_exchange_with_no_listener_at_the_address_fails(vbridge):
    # The server listens on ns2's address, the client dials ns3's: nothing answers there.
    tcp = vbridge.probe.tcp("ns1", "ns2", "192.168.28.3", 8080, listen="192.168.28.2", timeout=QUIET_WINDOW)
    assert not tcp and tcp.error


# IPv6 over the same wire: the lab's namespaces keep IPv6 (only its noise is off), so an address
# added on ns1..ns3's veths is usable at once (no DAD).
V6 = {"ns1": "2001:db8:28::1", "ns2": "2001:db8:28::2", "ns3": "2001:db8:28::3"}


@pytest.fixture
def vbridge6(vbridge):
    for node, ip in V6.items():
        address(vbridge, node, f"veth-{node[-1]}", f"{ip}/64")
    return vbridge


def test_ping_over_ipv6_is_an_icmpv6_echo_answered_with_its_hop_limit(vbridge6):
    ok = vbridge6.probe.ping("ns1", V6["ns3"])
    assert ok and ok.reply_from == V6["ns3"] and ok.ttl == 64, ok
    assert vbridge6.neighbour("ns1", V6["ns3"]) == vbridge6.mac("ns3", "veth-3"), \
        "ns1 learnt ns3's MAC by neighbour discovery"


def test_ping_over_ipv6_to_an_address_nobody_has_gets_no_reply(vbridge6):
    nobody = vbridge6.probe.ping("ns1", "2001:db8:28::77", timeout=QUIET_WINDOW)
    assert not nobody and nobody.error and vbridge6.neighbour("ns1", "2001:db8:28::77") != \
        vbridge6.mac("ns3", "veth-3")
    unrouted = vbridge6.probe.ping("ns1", "2001:db8:99::1")
    assert not unrouted and unrouted.error == "Network is unreachable"


def test_udp_and_tcp_over_ipv6_show_what_the_server_saw(vbridge6):
    udp = vbridge6.probe.udp("ns1", "ns2", V6["ns2"], 5353)
    tcp = vbridge6.probe.tcp("ns1", "ns3", V6["ns3"], 8080)
    assert udp and udp.server_saw == (V6["ns1"], udp.server_saw[1]) and udp.client_saw == (V6["ns2"], 5353), udp
    assert udp.reply == b"netconform"
    assert tcp and tcp.server_saw[0] == V6["ns1"] and tcp.client_saw == (V6["ns3"], 8080), tcp


def test_an_exchange_over_ipv6_with_no_listener_at_the_address_fails(vbridge6):
    tcp = vbridge6.probe.tcp("ns1", "ns2", V6["ns3"], 8080, listen=V6["ns2"], timeout=QUIET_WINDOW)
    udp = vbridge6.probe.udp("ns1", "ns2", V6["ns3"], 5353, listen=V6["ns2"], timeout=QUIET_WINDOW)
    assert not tcp and tcp.error
    assert not udp and udp.server_saw is None


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


# --- verdicts that show the evidence (PTF's PollFailure.format) -------------------------------
VERDICTS = textwrap.dedent('''
    from pytest_netconform import lab_fixture
    from harness.probe import QUIET_WINDOW, Port, l2_frame

    vbridge = lab_fixture("001-vbridge")
    NS1, NS2, NS3 = Port("ns1", "veth-1"), Port("ns2", "veth-2"), Port("ns3", "veth-3")


    def flood(lab):
        """ns1 sends a frame to a MAC nobody has: the bridge floods it to ns2 and ns3."""
        lab.probe.listen(NS1, NS2, NS3)
        frame = l2_frame(lab.mac("ns1", "veth-1"), "02:00:00:00:00:99", "flooded")
        lab.probe.send(NS1, frame)
        return frame


    def test_expect_fails(vbridge):
        flood(vbridge)
        assert vbridge.probe.expect(NS2, l2_frame(vbridge.mac("ns1", "veth-1"), "02:00:00:00:00:99", "never sent"),
                                    timeout=QUIET_WINDOW)


    def test_expect_passes(vbridge):
        assert vbridge.probe.expect(NS2, flood(vbridge))


    def test_expect_none_fails(vbridge):
        assert vbridge.probe.expect_none(NS3, flood(vbridge)) == []


    def test_expect_none_passes(vbridge):
        frame = flood(vbridge)
        assert vbridge.probe.expect_none(NS1, frame) == []  # no hairpin: not back to the sender
''')


@pytest.fixture(scope="module")
def verdict_run(tmp_path_factory):
    """A small pytest session (netconform active) whose failing assertions are on probe verdicts."""
    folder = tmp_path_factory.mktemp("verdicts")
    (folder / "test_verdicts.py").write_text(VERDICTS)
    done = subprocess.run([sys.executable, "-m", "pytest", "test_verdicts.py", "-q", "-p", "no:cacheprovider",
                           "--netconform", "-rA", f"--basetemp={folder / 'tmp'}"], cwd=folder,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")})
    # Each failure's text follows a "____ test_name ____" header, up to the next header or summary.
    parts = re.split(r"^_{3,} (test_\w+) _{3,}$|^={3,} short test summary", done.stdout, flags=re.M)
    return done, dict(zip(parts[1::2], parts[2::2]))


def test_a_failing_expect_shows_the_interface_the_deadline_and_the_frames_seen(verdict_run):
    done, sections = verdict_run
    text = sections.get("test_expect_fails", "")
    assert "no matching frame came on ns2/veth-2 (inbound) within the deadline of 40 ms" in text, done.stdout
    assert "Raw: starts with b'never sent'" in text, text  # the expected frame, field by field
    assert "ns2/veth-2 saw" in text and "(0x88b5) / Raw b'flooded'" in text, text  # what the port did see


def test_a_passing_expect_fails_nothing(verdict_run):
    done, sections = verdict_run
    assert "PASSED test_verdicts.py::test_expect_passes" in done.stdout, done.stdout
    assert "test_expect_passes" not in sections, sections.get("test_expect_passes")


def test_a_failing_expect_none_shows_the_interface_the_window_and_the_frames_that_came(verdict_run):
    done, sections = verdict_run
    text = sections.get("test_expect_none_fails", "")
    assert "1 matching frame(s) came on ns3/veth-3 (inbound) in the 40 ms window" in text, done.stdout
    assert "the matching frame(s):" in text and "(0x88b5) / Raw b'flooded'" in text, text
    assert text.count("expect_none#") >= 2, text  # the one-line verdict, then its evidence


def test_a_passing_expect_none_fails_nothing(verdict_run):
    done, sections = verdict_run
    assert "PASSED test_verdicts.py::test_expect_none_passes" in done.stdout, done.stdout
    assert "2 failed, 2 passed" in done.stdout, done.stdout


def test_an_expectation_that_came_is_truthy_and_the_frame_one_that_did_not_shows_why(vbridge):
    probe = vbridge.probe
    frame = l2_frame(vbridge.mac("ns1", "veth-1"), vbridge.mac("ns2", "veth-2"), "to ns2")
    probe.send(NS1, frame)
    came = probe.expect(NS2, frame)
    assert came and came.packet.dst == vbridge.mac("ns2", "veth-2") and "came on ns2/veth-2" in came.format()
    missed = probe.expect(NS2, frame, timeout=QUIET_WINDOW)
    assert not missed and "within the deadline of 40 ms" in missed.format()
    with pytest.raises(ProbeError, match=r"expect#\d+: no frame matching .* came on ns2/veth-2"):
        missed.packet


def test_expect_only_holds_for_a_known_unicast(vbridge):
    probe = vbridge.probe
    probe.listen(NS1, NS2, NS3)
    mac1, mac2 = vbridge.mac("ns1", "veth-1"), vbridge.mac("ns2", "veth-2")
    probe.send(NS2, l2_frame(mac2, mac1, "ns2 says hello: the bridge learns mac2 on veth-2-br"))
    assert bridge.wait_fdb(vbridge, "host", "vbridge", lambda learned: mac2 in learned, DEADLINE)
    frame = l2_frame(mac1, mac2, "to ns2, known")
    probe.send(NS1, frame)
    delivery = probe.expect_only([NS2], frame)
    assert delivery, delivery.format()
    assert delivery.missing == [] and delivery.extra == [] and "ns3/veth-3: nothing, as it should" in delivery.format()


def test_expect_only_fails_when_the_frame_is_flooded_and_says_where_it_went(vbridge):
    probe = vbridge.probe
    probe.listen(NS1, NS2, NS3)
    frame = l2_frame(vbridge.mac("ns1", "veth-1"), "02:00:00:00:00:99", "unknown unicast: flooded")
    probe.send(NS1, frame)
    delivery = probe.expect_only([NS2], frame)
    assert not delivery and delivery.extra == [NS3] and delivery.missing == [], delivery.format()
    text = delivery.format()
    assert "ns2/veth-2: came, as it should" in text and "ns3/veth-3: came too, where it should not" in text, text
    assert "also on ns3/veth-3" in repr(delivery)


def test_expect_only_fails_when_the_frame_does_not_come_where_it_should(vbridge):
    probe = vbridge.probe
    probe.listen(NS1, NS2, NS3)
    frame = l2_frame(vbridge.mac("ns1", "veth-1"), "02:00:00:00:00:99", "flooded")
    probe.send(NS1, frame)
    delivery = probe.expect_only([NS1], frame, timeout=QUIET_WINDOW)  # the sender's port: it leaves, never comes
    assert not delivery and delivery.missing == [NS1] and set(delivery.extra) == {NS2, NS3}, delivery.format()
    assert "ns1/veth-1: did NOT come" in delivery.format()
