"""A container behind the host's bridge, NATed to the internet - document 003, 示例2
("通过veth连接容器与主机（带网桥）", steps 6-7).

container-ns (veth-cont 10.1.1.2) hangs on br0 (10.1.1.1) through veth-host; the host
masquerades 10.1.1.0/24 and its FORWARD chain (policy DROP, made explicit by the lab)
lets br0 -> eth0 out and only RELATED,ESTABLISHED eth0 -> br0 back in. The document's
internet (8.8.8.8) is the lab namespace "internet", behind the host's eth0.
"""
import socket

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether

from pytest_netconform import lab_fixture
from harness import QUIET_WINDOW, Port, set_link

pytestmark = pytest.mark.area("NAT")

example2 = lab_fixture("003-example2")

CONTAINER, GATEWAY, HOST_ETH0, INTERNET = "10.1.1.2", "10.1.1.1", "192.168.1.100", "8.8.8.8"
VETH_CONT, HOST_UPLINK = Port("container-ns", "veth-cont"), Port("host", "eth0")
INTERNET_ETH0 = Port("internet", "eth0")
FORWARD_OUT = ["-i", "br0", "-o", "eth0", "-j", "ACCEPT"]
FORWARD_BACK = ["-i", "eth0", "-o", "br0", "-m", "state", "--state", "RELATED,ESTABLISHED", "-j", "ACCEPT"]
PORT_UNREACHABLE = Ether() / IP(src=INTERNET, dst=CONTAINER) / ICMP(type=3, code=3)


def iptables(lab, *args):
    done = lab.run("host", ["iptables", *args])
    assert done.returncode == 0, f"iptables {' '.join(args)}: {done.stderr}"


def route_the_container_subnet_back(lab):
    """Give "internet" a route to 10.1.1.0/24 via the host, so its packets to 10.1.1.2 reach FORWARD."""
    lab.ipr("internet").route("add", dst="10.1.1.0", dst_len=24, gateway=HOST_ETH0)


def udp_to_a_closed_port(lab):
    """The container sends one datagram to 8.8.8.8:9, where nothing listens (internet answers ICMP)."""
    lab.probe.listen(VETH_CONT, HOST_UPLINK)
    lab.probe.drain()
    with lab.entered("container-ns"):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    with sock:
        sock.sendto(b"netconform", (INTERNET, 9))


# ---------------------------------------------------------------- step 7: the two pings

@pytest.mark.parametrize("dst", [
    pytest.param(GATEWAY, id="its-gateway-on-br0",
                 marks=pytest.mark.document("003", "示例2 步骤7: 「ping -c 3 10.1.1.1」")),
    pytest.param(INTERNET, id="8.8.8.8-on-the-internet",
                 marks=pytest.mark.document("003", "示例2 步骤7: 「ping -c 3 8.8.8.8」")),
])
def test_the_container_pings(example2, dst):
    result = example2.probe.ping("container-ns", dst)
    assert result and result.reply_from == dst, result


@pytest.mark.document("003", "示例2 步骤4: 「ip link set veth-host master br0」")
def test_with_veth_host_off_br0_the_gateway_does_not_answer(example2):
    set_link(example2, "host", "veth-host", nomaster=True)
    probe = example2.probe
    probe.listen(VETH_CONT, Port("host", "veth-host"), Port("host", "br0"))
    result = probe.ping("container-ns", GATEWAY, timeout=QUIET_WINDOW)
    assert not result, result
    # Where it went: the host still owns 10.1.1.1 and answers ARP for it on veth-host (arp_ignore
    # 0), so the echo reaches the host; its reply is routed by "10.1.1.0/24 dev br0", where the
    # container no longer is: br0 asks for 10.1.1.2, and no reply comes back to the container.
    reached = probe.expect(Port("host", "veth-host"), Ether() / IP(src=CONTAINER, dst=GATEWAY) / ICMP(type=8))
    assert reached, "the echo never reached the host\n" + reached.format()
    lost = probe.expect(Port("host", "br0"), Ether() / ARP(op=1, pdst=CONTAINER), inbound=False)
    assert lost, "the host did not look for the container on br0\n" + lost.format()
    strays = probe.expect_none(VETH_CONT, Ether() / IP(src=GATEWAY, dst=CONTAINER) / ICMP(type=0))
    assert strays == [], strays.format()


@pytest.mark.document("003", "示例2 步骤5: 「ip route add default via 10.1.1.1」")
def test_without_its_default_route_the_container_cannot_reach_8_8_8_8(example2):
    example2.ipr("container-ns").route("del", dst="0.0.0.0/0")
    result = example2.probe.ping("container-ns", INTERNET)
    assert not result and result.error == "Network is unreachable", result


# ---------------------------------------------------------------- step 6: MASQUERADE

@pytest.mark.document("003", "示例2 步骤6: 「iptables -t nat -A POSTROUTING -s 10.1.1.0/24 -j MASQUERADE」")
@pytest.mark.parametrize("exchange", ["udp", "tcp"])
def test_the_internet_sees_the_hosts_eth0_address_and_replies_return(example2, exchange):
    result = getattr(example2.probe, exchange)("container-ns", "internet", INTERNET, 53)
    assert result, result.error
    assert result.server_saw[0] == HOST_ETH0, f"the internet saw the container as {result.server_saw}"
    assert result.client_saw == (INTERNET, 53) and result.reply == b"netconform", result


@pytest.mark.document("003", "示例2 步骤6: 「MASQUERADE」")
def test_without_masquerade_the_private_source_leaves_and_no_reply_returns(example2):
    iptables(example2, "-t", "nat", "-F", "POSTROUTING")
    result = example2.probe.udp("container-ns", "internet", INTERNET, 53, timeout=QUIET_WINDOW)
    assert not result, result
    assert result.server_saw and result.server_saw[0] == CONTAINER, f"the internet saw {result.server_saw}"


# ---------------------------------------------------------------- step 6: FORWARD (policy DROP)

@pytest.mark.document("003", "示例2 步骤6: 「iptables -A FORWARD -i br0 -o eth0 -j ACCEPT」")
def test_without_the_br0_to_eth0_rule_nothing_leaves_for_the_internet(example2):
    iptables(example2, "-D", "FORWARD", *FORWARD_OUT)
    probe = example2.probe
    probe.listen(INTERNET_ETH0)
    result = probe.ping("container-ns", INTERNET, timeout=QUIET_WINDOW)
    assert not result, result
    assert probe.expect_none(INTERNET_ETH0, Ether() / IP(dst=INTERNET) / ICMP(type=8)) == [], \
        probe.evidence(INTERNET_ETH0)


@pytest.mark.document("003", "示例2 步骤6: 「-A FORWARD -i eth0 -o br0 -m state --state RELATED,ESTABLISHED」")
def test_without_the_established_rule_replies_stop_at_the_host(example2):
    iptables(example2, "-D", "FORWARD", *FORWARD_BACK)
    probe = example2.probe
    probe.listen(HOST_UPLINK, VETH_CONT)
    result = probe.udp("container-ns", "internet", INTERNET, 53, timeout=QUIET_WINDOW)
    assert not result and result.server_saw and result.server_saw[0] == HOST_ETH0, result
    reply = Ether() / IP(src=INTERNET) / UDP(sport=53)
    assert probe.expect(HOST_UPLINK, reply), "the reply never reached the host\n" + probe.evidence(HOST_UPLINK)
    assert probe.expect_none(VETH_CONT, reply) == [], probe.evidence(VETH_CONT)


@pytest.mark.document("003", "示例2 步骤6: 「--state RELATED」")
def test_icmp_errors_about_a_container_flow_are_let_in_as_related(example2):
    udp_to_a_closed_port(example2)
    seen = example2.probe.expect(VETH_CONT, PORT_UNREACHABLE)
    assert seen, "the port-unreachable from 8.8.8.8 did not reach the container\n" + example2.probe.evidence(
        HOST_UPLINK, VETH_CONT)


@pytest.mark.document("003", "示例2 步骤6: 「--state RELATED」")
def test_with_established_only_icmp_errors_stop_at_the_host(example2):
    established_only = [arg.replace("RELATED,ESTABLISHED", "ESTABLISHED") for arg in FORWARD_BACK]
    iptables(example2, "-R", "FORWARD", "2", *established_only)
    udp_to_a_closed_port(example2)
    probe = example2.probe
    error_at_host = Ether() / IP(src=INTERNET, dst=HOST_ETH0) / ICMP(type=3, code=3)
    assert probe.expect(HOST_UPLINK, error_at_host), probe.evidence(HOST_UPLINK)
    assert probe.expect_none(VETH_CONT, PORT_UNREACHABLE) == [], probe.evidence(VETH_CONT)


@pytest.mark.document("003", "示例2 步骤6: 「FORWARD」 (policy DROP, implicit)")
def test_unsolicited_traffic_from_the_internet_does_not_reach_the_container(example2):
    route_the_container_subnet_back(example2)
    probe = example2.probe
    probe.listen(HOST_UPLINK, VETH_CONT)
    result = probe.udp("internet", "container-ns", CONTAINER, 53, timeout=QUIET_WINDOW)
    assert not result, result
    inbound = Ether() / IP(dst=CONTAINER) / UDP(dport=53)
    assert probe.expect(HOST_UPLINK, inbound), "the datagram never reached the host\n" + probe.evidence(HOST_UPLINK)
    assert probe.expect_none(VETH_CONT, inbound) == [], probe.evidence(VETH_CONT)


@pytest.mark.document("003", "示例2 步骤6: 「FORWARD」 (policy DROP, implicit)")
def test_with_policy_accept_unsolicited_traffic_reaches_the_container(example2):
    iptables(example2, "-P", "FORWARD", "ACCEPT")
    route_the_container_subnet_back(example2)
    result = example2.probe.udp("internet", "container-ns", CONTAINER, 53)
    assert result, result.error
    assert result.server_saw[0] == "192.168.1.1", f"the container saw {result.server_saw}"
