"""TUN and TAP: document 004, "TAP/TUN" and its two tunnels.

The test is the user program: it attaches to the lab's persistent tap0/tun0 through
/dev/net/tun (harness.emulate.tunnel.open_tuntap) and reads and writes the fd. A TAP carries
whole Ethernet frames, ARP included, and can be a bridge port; a TUN carries bare IP
packets and never ARPs.
"""
import errno
import os

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from pytest_netconform import lab_fixture
from harness import QUIET_WINDOW, Port, l2_frame, set_link, tunnel

pytestmark = pytest.mark.area("TUN/TAP")

tuntap = lab_fixture("004-tuntap")

NS1 = Port("ns1", "eth0")
NS1_IP, FAR_IP = "192.168.100.2", "192.168.100.3"  # FAR_IP: a host beyond the tap (the other site)
FAR_MAC = "02:00:00:00:0f:03"
TUN_IP, REMOTE_IP = "10.8.0.1", "10.9.0.5"  # 10.9.0.0/24 dev tun0: the tunnel's far side


def is_arp(raw):
    return Ether(raw).haslayer(ARP)


def frames(raws):
    return [Ether(raw).summary() for raw in raws]


def packets(raws):
    return [IP(raw).summary() if raw[0] >> 4 == 4 else raw[:16].hex() for raw in raws]


# ---------------------------------------------------------------- TAP: layer 2

@pytest.mark.requires("tap")
@pytest.mark.document("004", "「TAP/TUN」: TAP 读取的是链路层数据帧 (ARP 等非 IP 协议)")
def test_a_tap_hands_the_program_the_arp_of_a_bridged_namespace(tuntap):
    fd = tunnel.open_tuntap(tuntap, "host", "tap0", "tap")
    tuntap.probe.ping("ns1", FAR_IP, timeout=QUIET_WINDOW)  # nobody answers yet: the program is the far side
    raw = tunnel.read_packet(fd, match=is_arp)
    assert raw is not None, f"no ARP reached the tap fd; it read {frames(tunnel.drain(fd))}"
    frame = Ether(raw)  # a whole Ethernet frame: destination, source, EtherType
    assert frame.dst == "ff:ff:ff:ff:ff:ff" and frame.src == tuntap.mac("ns1", "eth0"), frame.summary()
    assert (frame[ARP].op, frame[ARP].psrc, frame[ARP].pdst) == (1, NS1_IP, FAR_IP), frame.summary()


@pytest.mark.requires("tap")
@pytest.mark.document("004", "「TAP/TUN」: 「TAP虚拟设备和真实的物理网卡的能力更接近，可以与物理网卡做 bridge」")
def test_a_tap_that_is_no_bridge_port_gets_nothing_from_the_namespace(tuntap):
    fd = tunnel.open_tuntap(tuntap, "host", "tap0", "tap")
    set_link(tuntap, "host", "tap0", nomaster=True)
    tunnel.drain(fd)
    tuntap.probe.ping("ns1", FAR_IP, timeout=QUIET_WINDOW)
    from_ns1 = [raw for raw in tunnel.read_window(fd) if Ether(raw).src == tuntap.mac("ns1", "eth0")]
    assert frames(from_ns1) == [], "ns1's frames reached a tap outside br0"


@pytest.mark.requires("tap")
@pytest.mark.document("004", "「使用TAP隧道桥接两个远程站点」: 程序写入的帧投递到网络栈")
def test_a_frame_the_program_writes_comes_out_on_the_bridge(tuntap):
    fd = tunnel.open_tuntap(tuntap, "host", "tap0", "tap")
    probe = tuntap.probe
    probe.listen(NS1)
    probe.drain()
    frame = l2_frame(FAR_MAC, tuntap.mac("ns1", "eth0"), "written to tap0 by its program")
    os.write(fd, bytes(frame))
    assert probe.expect(NS1, frame), probe.evidence(NS1, match=frame)


@pytest.mark.requires("tap")
@pytest.mark.document("004", "「使用TAP隧道桥接两个远程站点」")
def test_a_frame_written_to_a_tap_outside_the_bridge_reaches_nobody(tuntap):
    fd = tunnel.open_tuntap(tuntap, "host", "tap0", "tap")
    set_link(tuntap, "host", "tap0", nomaster=True)
    probe = tuntap.probe
    probe.listen(NS1)
    probe.drain()
    frame = l2_frame(FAR_MAC, tuntap.mac("ns1", "eth0"), "written to tap0 by its program")
    os.write(fd, bytes(frame))
    assert probe.expect_none(NS1, frame) == [], "a frame written to a tap outside br0 reached ns1"


@pytest.mark.requires("tap")
@pytest.mark.document("004", "「TAP/TUN」: 「TAP等同于一个二层设备」 (像接在交换机上的原始帧)")
def test_the_program_answers_arp_and_then_gets_the_queued_echo_as_a_frame(tuntap):
    fd = tunnel.open_tuntap(tuntap, "host", "tap0", "tap")
    ns1_mac = tuntap.mac("ns1", "eth0")
    tuntap.probe.ping("ns1", FAR_IP, timeout=QUIET_WINDOW)
    assert tunnel.read_packet(fd, match=is_arp), "no ARP who-has on the tap"
    reply = Ether(src=FAR_MAC, dst=ns1_mac) / ARP(op=2, hwsrc=FAR_MAC, psrc=FAR_IP, hwdst=ns1_mac, pdst=NS1_IP)
    os.write(fd, bytes(reply))
    # The kernel held the echo while resolving; the answer releases it, addressed to FAR_MAC.
    raw = tunnel.read_packet(fd, match=lambda raw: Ether(raw).haslayer(ICMP))
    assert raw is not None, f"the echo never came after the ARP reply; read {frames(tunnel.drain(fd))}"
    echo = Ether(raw)
    assert (echo.dst, echo[IP].src, echo[IP].dst, echo[ICMP].type) == (FAR_MAC, NS1_IP, FAR_IP, 8), echo.summary()


@pytest.mark.requires("tap")
@pytest.mark.document("004", "「TAP/TUN」: TAP 可处理 ARP (对照: TUN 不做 ARP)")
def test_a_route_into_a_tap_resolves_arp_before_any_ip_leaves(tuntap):
    fd = tunnel.open_tuntap(tuntap, "host", "tap0", "tap")
    set_link(tuntap, "host", "tap0", nomaster=True)
    ipr = tuntap.ipr("host")
    ipr.route("replace", dst="10.9.0.0/24", oif=tuntap.ifindex("host", "tap0"), scope=253)
    tunnel.drain(fd)
    tuntap.probe.ping("host", REMOTE_IP, timeout=QUIET_WINDOW)
    seen = tunnel.read_window(fd)
    assert seen, "nothing reached the tap"
    first = Ether(seen[0])
    assert first.haslayer(ARP) and first[ARP].pdst == REMOTE_IP, frames(seen)
    assert not any(Ether(raw).haslayer(ICMP) for raw in seen), f"IP left before ARP resolved: {frames(seen)}"


# ---------------------------------------------------------------- TUN: layer 3

@pytest.mark.requires("tun")
@pytest.mark.document("004", "「TAP/TUN」: TUN 读取的是 IP 数据包, 不能发送 ARP")
def test_a_tun_hands_the_program_bare_ip_packets_and_no_arp(tuntap):
    fd = tunnel.open_tuntap(tuntap, "host", "tun0", "tun")
    tuntap.probe.ping("host", REMOTE_IP, timeout=QUIET_WINDOW)
    raw = tunnel.read_packet(fd)
    assert raw is not None, "nothing routed into tun0 reached its program"
    seen = [raw, *tunnel.read_window(fd)]
    assert raw[0] >> 4 == 4, f"not a bare IPv4 packet: {raw[:16].hex()}"  # no Ethernet header in front
    packet = IP(raw)
    assert (packet.src, packet.dst, packet[ICMP].type) == (TUN_IP, REMOTE_IP, 8), packet.summary()
    assert all(raw[0] >> 4 == 4 for raw in seen), f"something other than IP on the tun: {packets(seen)}"


@pytest.mark.requires("tun")
@pytest.mark.document("004", "「使用Tun/Tap创建点对点隧道」: 路由决定哪些包进入 TUN")
def test_a_tun_without_its_route_gets_nothing(tuntap):
    fd = tunnel.open_tuntap(tuntap, "host", "tun0", "tun")
    tuntap.ipr("host").route("del", dst="10.9.0.0/24", scope=253)  # as added: scope link
    result = tuntap.probe.ping("host", REMOTE_IP, timeout=QUIET_WINDOW)
    assert not result and result.error == "Network is unreachable", result
    assert packets(tunnel.read_window(fd)) == []


def echo_from_the_far_side(ident=0x4e43):
    return IP(src=REMOTE_IP, dst=TUN_IP) / ICMP(type=8, id=ident, seq=1) / b"from the VPN peer"


def is_reply(raw):
    return raw[0] >> 4 == 4 and IP(raw).haslayer(ICMP) and IP(raw)[ICMP].type == 0


@pytest.mark.requires("tun")
@pytest.mark.document("004", "「使用Tun/Tap创建点对点隧道」: 写入字符设备的 IP 包出现在 Tun 设备上")
def test_an_ip_packet_the_program_writes_enters_the_stack(tuntap):
    fd = tunnel.open_tuntap(tuntap, "host", "tun0", "tun")
    os.write(fd, bytes(echo_from_the_far_side()))
    raw = tunnel.read_packet(fd, match=is_reply)  # the host answers, and the answer is routed back into tun0
    assert raw is not None, f"the host did not answer the written echo; read {packets(tunnel.drain(fd))}"
    reply = IP(raw)
    assert (reply.src, reply.dst, reply[ICMP].id) == (TUN_IP, REMOTE_IP, 0x4e43), reply.summary()


@pytest.mark.requires("tun")
@pytest.mark.document("004", "「TAP/TUN」: TUN 写入的也只能是 IP 数据包")
def test_a_tun_refuses_an_ethernet_frame(tuntap):
    fd = tunnel.open_tuntap(tuntap, "host", "tun0", "tun")
    frame = Ether(dst="ff:ff:ff:ff:ff:ff", src=FAR_MAC) / echo_from_the_far_side()
    with pytest.raises(OSError) as refused:
        os.write(fd, bytes(frame))
    # IFF_NO_PI: the kernel takes the first nibble as the IP version; 0xf is none.
    assert refused.value.errno == errno.EINVAL, refused.value
    assert packets(tunnel.read_window(fd)) == [], "the host answered an Ethernet frame written to a TUN"
