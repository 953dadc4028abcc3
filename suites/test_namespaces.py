"""Network namespaces: document 001, step 1 ("创建 namespace"): each namespace has its own
interfaces, routing table, ARP table and iptables (line 90); a new one holds only lo, DOWN
(lines 106-108); the kernel limits interface names to 15 characters (line 131); and
ip_forward reads 0 until it is set (lines 324-325).

A change made in ns1 of 001-vbridge is checked on the wire where it takes effect (ns1's
echo to ns3) and where it must not (ns2's echo to ns3): each test is its own twin.
"""
import errno
import os
import socket

import pytest
from pyroute2.netlink.exceptions import NetlinkError
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from pytest_netconform import lab_fixture
from harness import QUIET_WINDOW, Port
from harness.kernel import nsutil
from harness.kernel.tunnels import FALLBACK_DEVICES
from harness.kernel.netops import ipr_in

pytestmark = pytest.mark.area("namespaces")

vbridge = lab_fixture("001-vbridge")

NS1, NS2, NS3 = "192.168.28.1", "192.168.28.2", "192.168.28.3"
VETH1, VETH2, VETH3 = Port("ns1", "veth-1"), Port("ns2", "veth-2"), Port("ns3", "veth-3")
IFF_UP = 0x1
IFNAMSIZ = 16  # the kernel's buffer, its NUL included: 15 characters at most
NOBODYS_MAC = "02:00:00:00:de:ad"


def echo(src, dst, to_mac=None):
    return (Ether(dst=to_mac) if to_mac else Ether()) / IP(src=src, dst=dst) / ICMP(type=8)


def ns2_still_reaches_ns3(lab):
    """The twin half: ns2's echo reaches ns3 and is answered, untouched by what ns1 changed."""
    result = lab.probe.ping("ns2", NS3)
    assert result, f"ns2 lost ns3 after a change made in ns1 only: {result.error}"
    arrived = lab.probe.expect(VETH3, echo(NS2, NS3))
    assert arrived, arrived.format()


@pytest.fixture
def fresh_namespace():
    """A namespace made as `ip netns add` makes one, and nothing else (not a lab node: the
    builder brings lo up in every node it makes)."""
    fd = nsutil.create_netns(None)
    try:
        yield fd
    finally:
        os.close(fd)


@pytest.mark.document("001", "line 90: 「每个ns都和主机网络一样，有自己的网卡，路由表，ARP表， iptabls等等」 (路由表)")
def test_a_route_added_in_ns1_is_not_in_ns2(vbridge):
    vbridge.ipr("ns1").route("add", dst=f"{NS3}/32", type="blackhole")
    probe = vbridge.probe
    probe.listen_all()
    refused = probe.ping("ns1", NS3)
    assert not refused and refused.error == "Invalid argument", f"ns1's blackhole route did not act: {refused}"
    strays = probe.expect_none(VETH1, echo(NS1, NS3), inbound=False)
    assert strays == [], strays.format()
    ns2_still_reaches_ns3(vbridge)


@pytest.mark.document("001", "line 90: 「每个ns都和主机网络一样，有自己的网卡，路由表，ARP表， iptabls等等」 (ARP表)")
def test_an_arp_entry_written_in_ns1_is_not_in_ns2(vbridge):
    vbridge.ipr("ns1").neigh("add", dst=NS3, lladdr=NOBODYS_MAC, ifindex=vbridge.ifindex("ns1", "veth-1"),
                             state="permanent")
    probe = vbridge.probe
    probe.listen_all()
    lost = probe.ping("ns1", NS3, timeout=QUIET_WINDOW)
    assert not lost, "ns3 answered ns1 although ns1's ARP table sends its echo to a MAC nobody has"
    misdirected = probe.expect(VETH1, echo(NS1, NS3, to_mac=NOBODYS_MAC), inbound=False)
    assert misdirected, "ns1's echo did not go to the MAC in ns1's ARP table\n" + misdirected.format()
    ns2_still_reaches_ns3(vbridge)
    direct = probe.expect(VETH2, echo(NS2, NS3, to_mac=vbridge.mac("ns3", "veth-3")), inbound=False)
    assert direct, "ns2's echo did not go to ns3's own MAC\n" + direct.format()


@pytest.mark.document("001", "line 90: 「每个ns都和主机网络一样，有自己的网卡，路由表，ARP表， iptabls等等」 (iptables)")
def test_an_iptables_rule_in_ns1_does_not_filter_ns2(vbridge):
    rule = ["OUTPUT", "-d", NS3, "-p", "icmp", "-j", "DROP"]
    done = vbridge.run("ns1", ["iptables", "-A", *rule])
    assert done.returncode == 0, done.stderr
    probe = vbridge.probe
    probe.listen_all()
    dropped = probe.ping("ns1", NS3, timeout=QUIET_WINDOW)
    assert not dropped, "ns1's OUTPUT DROP did not act"
    strays = probe.expect_none(VETH1, echo(NS1, NS3), inbound=False)
    assert strays == [], strays.format()
    ns2_still_reaches_ns3(vbridge)
    listed = vbridge.run("ns2", ["iptables", "-S", "OUTPUT"])
    assert listed.returncode == 0 and NS3 not in listed.stdout, listed.stdout


def is_fallback_device(link) -> bool:
    """A tunnel module's fallback device, down, as the kernel puts it in every new namespace."""
    kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
    return kind is not None and FALLBACK_DEVICES.get(link.get_attr("IFLA_IFNAME")) == kind and not link["flags"] & IFF_UP


@pytest.mark.parametrize("document", [
    pytest.param("001", marks=pytest.mark.document(
        "001", "lines 106-108: 「#ns1 中的网卡， 目前只有lo」 / 1: lo: <LOOPBACK> ... state DOWN")),
    pytest.param("002", marks=pytest.mark.document(
        "002", "lines 67-69: 网络命名空间中的lo接口默认是关闭的,需要启用: 「ip link set lo up」")),
])
def test_a_new_namespace_has_only_lo_and_it_is_down_until_set_up(fresh_namespace, document):
    # What the kernel makes, not the lab: the namespace is made here and nothing is set in it.
    with ipr_in(fresh_namespace) as ipr:
        # A loaded tunnel module puts its fallback device, down, in every new namespace (tunl0 once
        # ipip is loaded: suites/test_calico_ipip.py loads it in the VMs); the documents' machines had none.
        links = {link.get_attr("IFLA_IFNAME"): link for link in ipr.get_links() if not is_fallback_device(link)}
        assert list(links) == ["lo"], sorted(links)
        assert not links["lo"]["flags"] & IFF_UP, hex(links["lo"]["flags"])
        with nsutil.entered(fresh_namespace):
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        with sender:
            with pytest.raises(OSError) as refused:
                sender.sendto(b"lo is down", ("127.0.0.1", 9))
            assert refused.value.errno == errno.ENETUNREACH, refused.value
            # The twin: `ip link set lo up`, and 127.0.0.1 carries a datagram to a listener.
            ipr.link("set", index=links["lo"]["index"], state="up")
            with nsutil.entered(fresh_namespace):
                listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            with listener:
                listener.bind(("127.0.0.1", 0))
                listener.settimeout(1.0)
                sender.sendto(b"lo is up", listener.getsockname())
                assert listener.recvfrom(64)[0] == b"lo is up"


@pytest.mark.document("001", "line 131: 「Linux内核对网络接口的名字长度有限制，不能超过15个字符」")
@pytest.mark.parametrize("name,refused", [
    ("veth-1-br-15chr", False),  # 15 characters: the longest the kernel takes
    ("veth-1-br-16char", True),
])
def test_the_kernel_refuses_interface_names_over_15_characters(vbridge, name, refused):
    # Through netlink, so that the kernel decides (ip(8) refuses a long name itself, before asking).
    assert (len(name) >= IFNAMSIZ) is refused
    ipr = vbridge.ipr("ns1")
    if not refused:
        ipr.link("add", ifname=name, kind="veth", peer="dev-peer")
        assert ipr.link_lookup(ifname=name), f"{name} was accepted but is not there"
        return
    with pytest.raises(NetlinkError) as error:
        ipr.link("add", ifname=name, kind="veth", peer="dev-peer")
    # rtnetlink's attribute policy (IFLA_IFNAME: a string of at most IFNAMSIZ - 1) refuses it.
    assert error.value.code == errno.ERANGE, error.value
    assert not ipr.link_lookup(ifname=name[:IFNAMSIZ - 1]), "a truncated name was made instead"


@pytest.mark.document("001", "lines 324-325: 「sysctl net.ipv4.ip_forward」 / 「net.ipv4.ip_forward = 0」")
def test_ip_forward_reads_0_in_a_namespace_nobody_set_it_in(fresh_namespace):
    # A new namespace takes IPv4's conf/all (ip_forward with it) from the machine's initial
    # namespace (net.core.devconf_inherit_init_net=0, the default); the sandbox is one such.
    inherited = nsutil.read_sysctl("net.ipv4.ip_forward")
    if inherited != "0":
        pytest.skip(f"this machine forwards (ip_forward={inherited}), and new namespaces inherit it")
    with nsutil.entered(fresh_namespace):
        assert nsutil.read_sysctl("net.ipv4.ip_forward") == "0"
