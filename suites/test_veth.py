"""veth pairs: document 000 ("veth pair 原理"), 002 and 003 (example 1).

Claims: veths are created in pairs, one end can live in another namespace, a
pair carries Ethernet frames with no IP configured, each end sees its peer's
ifindex, deleting one end (or its namespace) removes both, and an XDP program
attached to an end acts on the frames it receives.
"""
import errno
import os

import pytest
from pyroute2.netlink.exceptions import NetlinkError
from scapy.layers.l2 import ARP, Ether

from pytest_netconform import lab_fixture
from harness import QUIET_WINDOW, RTMGRP_LINK, NetlinkWatch, Port, address, delete_link, l2_frame, set_link
from harness.kernel import xdp

pytestmark = pytest.mark.area("veth")

veth_basics = lab_fixture("000-veth-basics")
veth_no_ip = lab_fixture("000-veth-no-ip")
bridge_abc = lab_fixture("000-bridge-abc")
veth_pair = lab_fixture("002-veth-pair")
example1 = lab_fixture("003-example1")

VETH0, VETH1 = Port("host", "veth0"), Port("my-namespace", "veth1")
NAMESPACE_CLEANUP_DEADLINE = 5.0  # the kernel destroys a namespace asynchronously (cleanup_net)


def kind_of(lab, node, name):
    return lab.link(node, name).get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")


def links_in(lab, node):
    return {msg.get_attr("IFLA_IFNAME") for msg in lab.ipr(node).get_links()}


def rx_packets(lab, node, name):
    return lab.link(node, name).get_attr("IFLA_STATS64")["rx_packets"]


def tx_dropped(lab, node, name):
    return lab.link(node, name).get_attr("IFLA_STATS64")["tx_dropped"]


@pytest.mark.document("000", "「创建和配置 veth」")
def test_veth_is_created_with_its_peer(veth_basics):
    """The lab asked for a veth, so the link kinds alone would read back what it wrote;
    the claim is the pairing: a frame sent into veth0 comes out of veth1 and nowhere else."""
    probe = veth_basics.probe
    probe.listen_all()
    frame = l2_frame(veth_basics.mac("host", "veth0"), veth_basics.mac("my-namespace", "veth1"), "into the pair")
    probe.send(VETH0, frame)
    delivered = probe.expect_only([VETH1], frame)
    assert delivered, delivered.format()
    assert kind_of(veth_basics, "host", "veth0") == kind_of(veth_basics, "my-namespace", "veth1") == "veth"


@pytest.mark.document("000", "「创建和配置 veth」: 「ip link set veth1 netns my-namespace」")
def test_one_end_lives_in_another_namespace(veth_basics):
    """Where each end lives, as the kernel places it, shown by the namespaces' own stacks:
    my-namespace answers ARP for 10.0.0.2 on veth1, and the host's veth0 is not in it."""
    host, other = links_in(veth_basics, "host"), links_in(veth_basics, "my-namespace")
    assert "veth0" in host and "veth1" not in host, f"host has {sorted(host)}"
    assert "veth1" in other and "veth0" not in other, f"my-namespace has {sorted(other)}"
    probe = veth_basics.probe
    probe.listen(VETH0, VETH1)
    reply = probe.arp(VETH0, "10.0.0.2")
    assert reply is not None and reply.mac == veth_basics.mac("my-namespace", "veth1"), (
        f"my-namespace's answer for 10.0.0.2 across the pair: {reply}\n" + probe.evidence(VETH0, VETH1))


@pytest.mark.document("003", "「示例1」: 「ip -d link show」 / 「ethtool -S veth0」")
def test_each_end_names_its_peer_ifindex(example1):
    veth0 = example1.link("ns1", "veth0")
    veth1_index = example1.ifindex("ns2", "veth1")
    assert veth0.get_attr("IFLA_LINK") == veth1_index
    # The peer is in another namespace: netlink says which one (ip -d link: link-netns ns2).
    assert veth0.get_attr("IFLA_LINK_NETNSID") is not None
    stats = example1.run("ns1", ["ethtool", "-S", "veth0"])
    assert stats.returncode == 0, stats.stderr
    assert f"peer_ifindex: {veth1_index}" in stats.stdout, stats.stdout


@pytest.mark.document("000", "「veth pair 原理」")
def test_a_link_that_is_not_a_veth_names_no_peer(bridge_abc):
    # ifindexes are per namespace (veth0 and veth1 may both be 2), so "no peer" is the
    # absence of IFLA_LINK, not a different number.
    # Its twin in the same lab: the host's veth1 does name its peer, and ethtool -S prints it,
    # so the same two reads on br0 could only come back empty because br0 has no peer.
    veth1 = bridge_abc.link("host", "veth1")
    assert veth1.get_attr("IFLA_LINK") is not None, "veth1, a veth, names no peer: the read itself is broken"
    veth_stats = bridge_abc.run("host", ["ethtool", "-S", "veth1"])
    assert veth_stats.returncode == 0 and "peer_ifindex: " in veth_stats.stdout, (veth_stats.stdout, veth_stats.stderr)
    br0 = bridge_abc.link("host", "br0")
    assert br0.get_attr("IFLA_LINK") is None, br0.get_attr("IFLA_LINK")
    # A bridge has no driver statistics at all: ethtool refuses (EOPNOTSUPP, "no stats available").
    stats = bridge_abc.run("host", ["ethtool", "-S", "br0"])
    assert stats.returncode != 0 and "no stats available" in stats.stderr, (stats.returncode, stats.stdout,
                                                                              stats.stderr)


@pytest.mark.document("000", "「veth 的特点」: 二层设备, 无需 IP")
def test_frames_cross_the_pair_without_any_ip(veth_no_ip):
    assert veth_no_ip.addresses("host", "veth0") == [] and veth_no_ip.addresses("my-namespace", "veth1") == []
    probe = veth_no_ip.probe
    frame = l2_frame(veth_no_ip.mac("host", "veth0"), veth_no_ip.mac("my-namespace", "veth1"), "no IP needed")
    probe.send(VETH0, frame)
    assert probe.expect(VETH1, frame), probe.evidence(VETH1, match=frame)


@pytest.mark.document("000", "「veth 的特点」")
def test_no_frame_crosses_when_the_peer_is_down(veth_no_ip):
    """With veth1 down, a frame sent into veth0 reaches veth0's transmit and is dropped there: veth0
    counts it in tx_dropped and veth1 sees nothing. Kernels up to 6.1 also tell the sender (the packet
    socket's send fails with ENOBUFS, veth_xmit's NET_XMIT_DROP); newer ones drop it silently. The
    counter is what shows the frame was sent at all, on every kernel."""
    probe = veth_no_ip.probe
    probe.listen_all()
    set_link(veth_no_ip, "my-namespace", "veth1", up=False)
    before, dropped = rx_packets(veth_no_ip, "my-namespace", "veth1"), tx_dropped(veth_no_ip, "host", "veth0")
    frame = l2_frame(veth_no_ip.mac("host", "veth0"), veth_no_ip.mac("my-namespace", "veth1"), "peer down")
    try:
        probe.send(VETH0, frame)
    except OSError as exc:  # ENOBUFS: the kernel dropped it and said so
        if exc.errno != errno.ENOBUFS:
            raise
    assert probe.expect_none(VETH1, frame) == []
    assert rx_packets(veth_no_ip, "my-namespace", "veth1") == before
    assert tx_dropped(veth_no_ip, "host", "veth0") == dropped + 1, \
        f"veth0 tx_dropped {dropped} -> {tx_dropped(veth_no_ip, 'host', 'veth0')}: the frame was not dropped at veth0"


@pytest.mark.parametrize("lab", [
    pytest.param("veth_pair", id="002-veth-pair", marks=pytest.mark.document("002", "veth pair 连接两个 namespace")),
    pytest.param("example1", id="003-example1", marks=pytest.mark.document("003", "「示例1」: 「ping」")),
])
def test_ns1_and_ns2_ping_each_other_over_the_pair(request, lab):
    live = request.getfixturevalue(lab)  # both documents put ns1 at 192.168.1.1 and ns2 at .2
    there = live.probe.ping("ns1", "192.168.1.2")
    back = live.probe.ping("ns2", "192.168.1.1")
    assert there, there.error
    assert back, back.error


@pytest.mark.document("002", "veth pair 连接两个 namespace")
def test_an_address_behind_no_link_gets_no_answer(veth_pair):
    # The twin of the pings above: the question for 192.168.1.3 crosses the pair (so the pair
    # works) and nothing on the other side holds the address, so no answer comes back.
    probe = veth_pair.probe
    probe.listen_all()
    result = probe.ping("ns1", "192.168.1.3", timeout=QUIET_WINDOW)
    assert not result, f"192.168.1.3 does not exist but answered from {result.reply_from}"
    asked = probe.expect(Port("ns2", "veth-ns2"), Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, pdst="192.168.1.3"))
    assert asked, "ns1's ARP request for 192.168.1.3 never crossed the pair\n" + probe.evidence(Port("ns2", "veth-ns2"))
    answers = probe.expect_none(Port("ns1", "veth-ns1"), Ether() / ARP(op=2, psrc="192.168.1.3"))
    assert answers == [], answers.format()


@pytest.mark.document("003", "「示例1」: 「ip link delete veth0」")
def test_deleting_one_end_removes_the_pair(example1):
    delete_link(example1, "ns1", "veth0")
    assert "veth1" not in links_in(example1, "ns2")
    result = example1.probe.ping("ns2", "192.168.1.1")
    assert not result and result.error == "Network is unreachable", result


@pytest.mark.document("000", "「veth 的特点」")
def test_downing_one_end_keeps_the_peer_but_takes_its_carrier(example1):
    set_link(example1, "ns1", "veth0", up=False)
    peer = example1.link("ns2", "veth1")
    assert peer.get_attr("IFLA_CARRIER") == 0
    assert "veth1" in links_in(example1, "ns2")


@pytest.mark.document("000", "实验清理: 「ip netns del container1」")
def test_deleting_a_namespace_removes_its_veths_and_their_peers(bridge_abc):
    with NetlinkWatch(bridge_abc.fd("host"), RTMGRP_LINK) as watch:
        bridge_abc.delete_node("container-a")
        gone = watch.wait_for(lambda: "veth1" not in links_in(bridge_abc, "host"), NAMESPACE_CLEANUP_DEADLINE)
    assert gone, f"veth1 still on the host {NAMESPACE_CLEANUP_DEADLINE} s after container-a was deleted"
    # Only that namespace's pair goes: the other containers' pairs stay.
    assert {"veth2", "veth3"} <= links_in(bridge_abc, "host")


@pytest.mark.document("000", "「创建和配置 veth」: 「ip link add veth0 type veth peer name veth1」 / 「ip link set veth1 netns my-namespace」")
def test_an_end_moved_into_a_namespace_leaves_the_host_and_carries_frames(veth_basics):
    # The lab makes veth1 in its namespace directly; here the pair is made again the document's
    # way, both ends on the host first, then veth1 moved.
    host = veth_basics.ipr("host")
    delete_link(veth_basics, "host", "veth0")
    host.link("add", ifname="veth0", kind="veth", peer="veth1")
    assert {"veth0", "veth1"} <= links_in(veth_basics, "host")
    before = veth_basics.probe.ping("my-namespace", "10.0.0.1")
    assert not before and before.error == "Network is unreachable", before  # nothing in my-namespace yet
    host.link("set", index=veth_basics.ifindex("host", "veth1"), net_ns_fd=veth_basics.fd("my-namespace"))
    assert "veth1" not in links_in(veth_basics, "host") and "veth1" in links_in(veth_basics, "my-namespace")
    address(veth_basics, "host", "veth0", "10.0.0.1/24")
    address(veth_basics, "my-namespace", "veth1", "10.0.0.2/24")
    set_link(veth_basics, "host", "veth0", up=True)
    set_link(veth_basics, "my-namespace", "veth1", up=True)
    after = veth_basics.probe.ping("my-namespace", "10.0.0.1")
    assert after and after.reply_from == "10.0.0.1", after


@pytest.mark.document("000", "「veth 操作」: 「ip link set <name> name <new-name>」")
def test_a_renamed_veth_keeps_its_peer_and_carries_frames(example1):
    """The document gives the command only. Whether the link must be down is the kernel's:
    before 6.2 a link that is up is refused (EBUSY); since 6.2 it is renamed live (commit
    "net/core: Allow live renaming when an interface is up"). Checked as this kernel does it."""
    ipr, index = example1.ipr("ns1"), example1.ifindex("ns1", "veth0")
    live_rename = tuple(int(part) for part in os.uname().release.split(".")[:2]) >= (6, 2)
    try:
        ipr.link("set", index=index, ifname="veth0-renamed")
    except NetlinkError as refused:
        assert not live_rename and refused.code == errno.EBUSY, refused
        set_link(example1, "ns1", "veth0", up=False)
        ipr.link("set", index=index, ifname="veth0-renamed")
        set_link(example1, "ns1", "veth0-renamed", up=True)
    else:
        assert live_rename, f"kernel {os.uname().release} renamed a link that is up"
    renamed = example1.link("ns1", "veth0-renamed")
    assert renamed["index"] == index and renamed.get_attr("IFLA_LINK") == example1.ifindex("ns2", "veth1")
    result = example1.probe.ping("ns1", "192.168.1.2")
    assert result, f"the renamed end no longer reaches its peer: {result.error}"


def veth1_xdp_drops(lab):
    with lab.entered("my-namespace"):
        return xdp.xdp_drops("veth1")


def attach_xdp_drop(lab):
    """An XDP program returning XDP_DROP, loaded through bpf(2) and attached to veth1 in
    native mode (the veth driver runs it); its id as the kernel reports it."""
    fd = xdp.load(xdp.XDP_DROP)
    try:
        xdp.attach(lab.ipr("my-namespace"), lab.ifindex("my-namespace", "veth1"), fd)
    finally:
        os.close(fd)  # the link holds the program now
    program_id = xdp.attached_id(lab.link("my-namespace", "veth1"))
    assert program_id, "veth1 took the program but reports none attached"
    return program_id


def who_has(address):
    return Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, pdst=address)


@pytest.mark.requires("xdp")
@pytest.mark.document("000", "「veth 的特点」: 「支持 XDP | 可挂载 XDP 程序」")
def test_an_xdp_drop_program_on_veth1_stops_frames_before_any_socket_sees_them(veth_basics):
    """The host's ARP request for 10.0.0.2 leaves veth0; the program on veth1 drops it in the
    driver: no packet socket on veth1 sees it, veth1's own counter says XDP dropped it, and the
    ping gets no answer."""
    probe = veth_basics.probe
    probe.listen_all()
    attach_xdp_drop(veth_basics)
    before = veth1_xdp_drops(veth_basics)
    result = probe.ping("host", "10.0.0.2", timeout=QUIET_WINDOW)
    assert not result, f"10.0.0.2 answered through veth1's XDP_DROP program: {result.reply_from}"
    left = probe.expect(VETH0, who_has("10.0.0.2"), inbound=False)
    assert left, "the host never asked for 10.0.0.2 on veth0\n" + probe.evidence(VETH0)
    arrived = probe.expect_none(VETH1, who_has("10.0.0.2"))
    assert arrived == [], "veth1's XDP_DROP program let the request through\n" + arrived.format()
    dropped = veth1_xdp_drops(veth_basics) - before
    assert dropped >= 1, f"the request left veth0 and never arrived, but veth1's XDP drop counter stayed ({dropped})"


@pytest.mark.requires("xdp")
@pytest.mark.document("000", "「veth 的特点」: 「支持 XDP | 可挂载 XDP 程序」")
def test_detaching_the_xdp_program_restores_delivery(veth_basics):
    """The twin: the same frame into the same pair, dropped while the program is on veth1,
    delivered (and no longer counted as an XDP drop) once it is off."""
    probe = veth_basics.probe
    probe.listen_all()
    attach_xdp_drop(veth_basics)
    frame = l2_frame(veth_basics.mac("host", "veth0"), veth_basics.mac("my-namespace", "veth1"), "xdp detach")
    before = veth1_xdp_drops(veth_basics)
    probe.send(VETH0, frame)
    assert probe.expect_none(VETH1, frame) == [], "dropped while attached: " + probe.evidence(VETH1, match=frame)
    assert veth1_xdp_drops(veth_basics) > before, "the frame did not arrive, yet XDP did not count it dropped"
    xdp.detach(veth_basics.ipr("my-namespace"), veth_basics.ifindex("my-namespace", "veth1"))
    assert xdp.attached_id(veth_basics.link("my-namespace", "veth1")) is None, "veth1 still reports a program"
    before = veth1_xdp_drops(veth_basics)
    probe.send(VETH0, frame)
    delivered = probe.expect(VETH1, frame)
    assert delivered, "veth1 still drops the frame with no program attached\n" + probe.evidence(VETH1, match=frame)
    assert veth1_xdp_drops(veth_basics) == before, "XDP dropped frames with no program attached"
    result = probe.ping("host", "10.0.0.2")
    assert result and result.reply_from == "10.0.0.2", result
