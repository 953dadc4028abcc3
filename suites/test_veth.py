"""veth pairs: document 000 ("veth pair 原理"), 002 and 003 (example 1).

Claims: veths are created in pairs, one end can live in another namespace, a
pair carries Ethernet frames with no IP configured, each end sees its peer's
ifindex, and deleting one end (or its namespace) removes both.
"""
import pytest

from pytest_netconform import lab_fixture
from harness import QUIET_WINDOW, RTMGRP_LINK, NetlinkWatch, Port, delete_link, l2_frame, set_link

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


@pytest.mark.document("000", "创建和配置 veth")
def test_veth_is_created_with_its_peer(veth_basics):
    assert kind_of(veth_basics, "host", "veth0") == "veth"
    assert kind_of(veth_basics, "my-namespace", "veth1") == "veth"


@pytest.mark.document("000", "创建和配置 veth")
def test_one_end_lives_in_another_namespace(veth_basics):
    host, other = links_in(veth_basics, "host"), links_in(veth_basics, "my-namespace")
    assert "veth0" in host and "veth1" not in host, f"host has {sorted(host)}"
    assert "veth1" in other and "veth0" not in other, f"my-namespace has {sorted(other)}"


@pytest.mark.document("003", "示例1: ip -d link show / ethtool -S veth0")
def test_each_end_names_its_peer_ifindex(example1):
    veth0 = example1.link("ns1", "veth0")
    veth1_index = example1.ifindex("ns2", "veth1")
    assert veth0.get_attr("IFLA_LINK") == veth1_index
    # The peer is in another namespace: netlink says which one (ip -d link: link-netns ns2).
    assert veth0.get_attr("IFLA_LINK_NETNSID") is not None
    stats = example1.run("ns1", ["ethtool", "-S", "veth0"])
    assert stats.returncode == 0, stats.stderr
    assert f"peer_ifindex: {veth1_index}" in stats.stdout, stats.stdout


@pytest.mark.document("000", "veth pair 原理")
def test_a_link_that_is_not_a_veth_names_no_peer(bridge_abc):
    # ifindexes are per namespace (veth0 and veth1 may both be 2), so "no peer" is the
    # absence of IFLA_LINK, not a different number.
    br0 = bridge_abc.link("host", "br0")
    assert br0.get_attr("IFLA_LINK") is None
    stats = bridge_abc.run("host", ["ethtool", "-S", "br0"])
    assert "peer_ifindex" not in stats.stdout, stats.stdout


@pytest.mark.document("000", "veth 的特点: 二层设备, 无需 IP")
def test_frames_cross_the_pair_without_any_ip(veth_no_ip):
    assert veth_no_ip.addresses("host", "veth0") == [] and veth_no_ip.addresses("my-namespace", "veth1") == []
    probe = veth_no_ip.probe
    frame = l2_frame(veth_no_ip.mac("host", "veth0"), veth_no_ip.mac("my-namespace", "veth1"), "no IP needed")
    probe.send(VETH0, frame)
    assert probe.expect(VETH1, frame), probe.evidence(VETH1, match=frame)


@pytest.mark.document("000", "veth 的特点")
def test_no_frame_crosses_when_the_peer_is_down(veth_no_ip):
    probe = veth_no_ip.probe
    probe.listen_all()
    set_link(veth_no_ip, "my-namespace", "veth1", up=False)
    before = rx_packets(veth_no_ip, "my-namespace", "veth1")
    frame = l2_frame(veth_no_ip.mac("host", "veth0"), veth_no_ip.mac("my-namespace", "veth1"), "peer down")
    probe.send(VETH0, frame)
    assert probe.expect_none(VETH1, frame) == []
    assert rx_packets(veth_no_ip, "my-namespace", "veth1") == before


@pytest.mark.parametrize("lab", [
    pytest.param("veth_pair", id="002-veth-pair", marks=pytest.mark.document("002", "veth pair 连接两个 namespace")),
    pytest.param("example1", id="003-example1", marks=pytest.mark.document("003", "示例1: ping")),
])
def test_ns1_and_ns2_ping_each_other_over_the_pair(request, lab):
    live = request.getfixturevalue(lab)  # both documents put ns1 at 192.168.1.1 and ns2 at .2
    there = live.probe.ping("ns1", "192.168.1.2")
    back = live.probe.ping("ns2", "192.168.1.1")
    assert there, there.error
    assert back, back.error


@pytest.mark.document("002", "veth pair 连接两个 namespace")
def test_an_address_behind_no_link_gets_no_answer(veth_pair):
    result = veth_pair.probe.ping("ns1", "192.168.1.3", timeout=QUIET_WINDOW)
    assert not result, f"192.168.1.3 does not exist but answered from {result.reply_from}"


@pytest.mark.document("003", "示例1: ip link delete veth0")
def test_deleting_one_end_removes_the_pair(example1):
    delete_link(example1, "ns1", "veth0")
    assert "veth1" not in links_in(example1, "ns2")
    result = example1.probe.ping("ns2", "192.168.1.1")
    assert not result and result.error == "Network is unreachable", result


@pytest.mark.document("000", "veth 的特点")
def test_downing_one_end_keeps_the_peer_but_takes_its_carrier(example1):
    set_link(example1, "ns1", "veth0", up=False)
    peer = example1.link("ns2", "veth1")
    assert peer.get_attr("IFLA_CARRIER") == 0
    assert "veth1" in links_in(example1, "ns2")


@pytest.mark.document("000", "实验清理: ip netns del container1")
def test_deleting_a_namespace_removes_its_veths_and_their_peers(bridge_abc):
    with NetlinkWatch(bridge_abc.fd("host"), RTMGRP_LINK) as watch:
        bridge_abc.delete_node("container-a")
        gone = watch.wait_for(lambda: "veth1" not in links_in(bridge_abc, "host"), NAMESPACE_CLEANUP_DEADLINE)
    assert gone, f"veth1 still on the host {NAMESPACE_CLEANUP_DEADLINE} s after container-a was deleted"
    # Only that namespace's pair goes: the other containers' pairs stay.
    assert {"veth2", "veth3"} <= links_in(bridge_abc, "host")
