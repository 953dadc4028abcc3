"""Docker-style NAT on docker0 - document 004, "NAT" (SNAT: MASQUERADE 172.17.0.0/16;
DNAT: the DOCKER chain, `! -i docker0 --dport 18862 -> 172.17.0.4:80`).

Every check runs twice: on 004-docker-nat (iptables rules) and 004-docker-nat-nft (the
same rules as an nftables ruleset). "outside" is a client on the host's uplink
(192.168.1.50 -> host 192.168.1.100); "container" (172.17.0.4) publishes port 80 as
18862; "container2" (172.17.0.2) is its neighbour on docker0; "container18" (172.18.0.2)
is on the document's second network, br-c022a16a148d 172.18.0.0/16. The container's own
table (`route -n`) is checked on 004-docker-nat only: it does not depend on the firewall.
"""
import ipaddress

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import Ether

from pytest_netconform import lab_fixture
from harness import DEADLINE, QUIET_WINDOW, Port

pytestmark = pytest.mark.area("NAT")

docker_iptables = lab_fixture("004-docker-nat")
docker_nftables = lab_fixture("004-docker-nat-nft")

HOST_UPLINK, GATEWAY, CONTAINER, CONTAINER2, OUTSIDE = (
    "192.168.1.100", "172.17.0.1", "172.17.0.4", "172.17.0.2", "192.168.1.50")
CONTAINER18 = "172.18.0.2"
PUBLISHED, UNPUBLISHED, CONTAINER_PORT = 18862, 18863, 80
CONTAINER_ETH0 = Port("container", "eth0")
SYN_TO_THE_CONTAINER = Ether() / IP(dst=CONTAINER) / TCP(dport=CONTAINER_PORT, flags="S")

# The lab broken on purpose, in each backend's own words.
CHANGES = {
    "DNAT without the docker0 guard": {
        "iptables": [["iptables", "-t", "nat", "-R", "DOCKER", "1", "-p", "tcp", "-m", "tcp", "--dport", "18862",
                      "-j", "DNAT", "--to-destination", "172.17.0.4:80"]],
        "nftables": [["nft", "flush", "chain", "ip", "nat", "docker"],
                     ["nft", "add", "rule", "ip", "nat", "docker", "tcp", "dport", "18862", "dnat", "to",
                      "172.17.0.4:80"]]},
    "MASQUERADE as the document lists it (no ! -o docker0)": {
        "iptables": [["iptables", "-t", "nat", "-R", "POSTROUTING", "1", "-s", "172.17.0.0/16", "-j", "MASQUERADE"]],
        "nftables": [["nft", "flush", "chain", "ip", "nat", "postrouting"],
                     ["nft", "add", "rule", "ip", "nat", "postrouting", "ip", "saddr", "172.17.0.0/16", "masquerade"]]},
    "no MASQUERADE for 172.18.0.0/16": {
        "iptables": [["iptables", "-t", "nat", "-D", "POSTROUTING", "-s", "172.18.0.0/16", "!", "-o",
                      "br-c022a16a148d", "-j", "MASQUERADE"]],
        "nftables": [["nft", "flush", "chain", "ip", "nat", "postrouting"],
                     ["nft", "add", "rule", "ip", "nat", "postrouting", "ip", "saddr", "172.17.0.0/16", "oifname",
                      "!=", "docker0", "masquerade"]]},
    "no MASQUERADE": {
        "iptables": [["iptables", "-t", "nat", "-F", "POSTROUTING"]],
        "nftables": [["nft", "flush", "chain", "ip", "nat", "postrouting"]]},
    "no OUTPUT hook": {
        "iptables": [["iptables", "-t", "nat", "-F", "OUTPUT"]],
        "nftables": [["nft", "flush", "chain", "ip", "nat", "output"]]},
}


@pytest.fixture(params=["iptables", "nftables"])
def docker(request):
    """004's Docker host, built with one firewall backend; ``docker.backend`` says which."""
    lab = request.getfixturevalue(f"docker_{request.param}")
    lab.backend = request.param
    return lab


def change(lab, what):
    for argv in CHANGES[what][lab.backend]:
        done = lab.run("host", argv)
        assert done.returncode == 0, f"{what}: {argv}: {done.stderr}"


def tcp_to_published_port(lab, client, dst, port, timeout=DEADLINE):
    """``client`` connects to dst:port; a listener in "container" on port 80 accepts and echoes."""
    return lab.probe.tcp(client, "container", dst, port, listen_port=CONTAINER_PORT, timeout=timeout)


# ---------------------------------------------------------------- DNAT: the published port

@pytest.mark.document("004", "DNAT: -A DOCKER ! -i docker0 --dport 18862 -j DNAT --to-destination 172.17.0.4:80")
def test_published_port_reaches_the_container_with_the_clients_own_address(docker):
    result = tcp_to_published_port(docker, "outside", HOST_UPLINK, PUBLISHED)
    assert result, result.error
    assert result.server_saw[0] == OUTSIDE, f"the container saw the client as {result.server_saw} (SNAT on the way in?)"
    assert result.client_saw == (HOST_UPLINK, PUBLISHED), f"the reply came from {result.client_saw}, not the host"
    assert result.reply == b"netconform"


@pytest.mark.document("004", "「DNAT」: only mapped ports are forwarded")
def test_an_unpublished_port_is_not_forwarded_to_the_container(docker):
    docker.probe.listen(CONTAINER_ETH0)
    result = tcp_to_published_port(docker, "outside", HOST_UPLINK, UNPUBLISHED, timeout=QUIET_WINDOW)
    assert not result and "Connection refused" in result.error, result
    assert docker.probe.expect_none(CONTAINER_ETH0, Ether() / IP(dst=CONTAINER) / TCP()) == [], \
        docker.probe.evidence(CONTAINER_ETH0)


@pytest.mark.document("004", "「DNAT」: 「! -i docker0」")
@pytest.mark.parametrize("dst", [GATEWAY, HOST_UPLINK])
def test_the_published_port_dialled_from_docker0_is_not_dnated(docker, dst):
    docker.probe.listen(CONTAINER_ETH0)
    result = tcp_to_published_port(docker, "container2", dst, PUBLISHED, timeout=QUIET_WINDOW)
    assert not result and "Connection refused" in result.error, result
    assert docker.probe.expect_none(CONTAINER_ETH0, SYN_TO_THE_CONTAINER) == [], \
        f"container2's SYN to {dst}:{PUBLISHED} was DNATed to {CONTAINER}:80\n" + docker.probe.evidence(CONTAINER_ETH0)


@pytest.mark.document("004", "「DNAT」: 「! -i docker0」")
def test_without_the_docker0_guard_docker0_traffic_is_dnated_too(docker):
    change(docker, "DNAT without the docker0 guard")
    docker.probe.listen(CONTAINER_ETH0)
    tcp_to_published_port(docker, "container2", GATEWAY, PUBLISHED)
    seen = docker.probe.expect(CONTAINER_ETH0, SYN_TO_THE_CONTAINER)
    assert seen, f"no SYN to {CONTAINER}:80 reached the container\n" + docker.probe.evidence(CONTAINER_ETH0)


@pytest.mark.document("004", "Docker's OUTPUT hook: -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER")
def test_the_host_itself_reaches_its_published_port(docker):
    result = tcp_to_published_port(docker, "host", HOST_UPLINK, PUBLISHED)
    assert result, result.error
    assert result.client_saw == (HOST_UPLINK, PUBLISHED), result


@pytest.mark.document("004", "Docker's OUTPUT hook")
def test_without_the_output_hook_the_host_is_refused(docker):
    change(docker, "no OUTPUT hook")
    result = tcp_to_published_port(docker, "host", HOST_UPLINK, PUBLISHED, timeout=QUIET_WINDOW)
    assert not result and "Connection refused" in result.error, result


# ---------------------------------------------------------------- SNAT: MASQUERADE 172.17.0.0/16

@pytest.mark.parametrize("exchange", ["udp", "tcp"])
@pytest.mark.parametrize("client,server,dst,seen_as", [
    pytest.param("container", "outside", OUTSIDE, HOST_UPLINK, id="leaving-the-host-it-takes-the-uplink-address",
                 marks=pytest.mark.document("004", "「SNAT」: MASQUERADE 172.17.0.0/16 -> the host's address")),
    pytest.param("container18", "outside", OUTSIDE, HOST_UPLINK, id="from-172.18-it-takes-the-uplink-address",
                 marks=pytest.mark.document("004", "「SNAT」: 「MASQUERADE 0 -- 172.18.0.0/16 0.0.0.0/0」")),
    pytest.param("container2", "container", CONTAINER, CONTAINER2, id="on-docker0-it-keeps-its-source",
                 marks=pytest.mark.document("004", "「SNAT」: ! -o docker0 (hidden by iptables -L -n)")),
])
def test_container_traffic_has_the_source_snat_gives_it_and_replies_return(docker, exchange, client, server, dst,
                                                                           seen_as):
    result = getattr(docker.probe, exchange)(client, server, dst, 53)
    assert result, result.error
    assert result.server_saw[0] == seen_as, f"{server} saw {client} as {result.server_saw}"
    assert result.client_saw == (dst, 53) and result.reply == b"netconform", result


@pytest.mark.document("004", "「SNAT」")
def test_without_masquerade_the_container_address_leaves_and_no_reply_returns(docker):
    change(docker, "no MASQUERADE")
    result = docker.probe.udp("container", "outside", OUTSIDE, 53, timeout=QUIET_WINDOW)
    assert not result, result
    assert result.server_saw and result.server_saw[0] == CONTAINER, f"outside saw {result.server_saw}"


@pytest.mark.document("004", "「SNAT」: 「MASQUERADE 0 -- 172.18.0.0/16 0.0.0.0/0」")
def test_without_the_172_18_rule_its_container_leaves_with_its_own_address_and_no_reply_returns(docker):
    """The twin of container18's SNAT: only 172.18's rule is gone (172.17's stays), and outside
    sees 172.18.0.2 itself, which it has no route back to."""
    change(docker, "no MASQUERADE for 172.18.0.0/16")
    result = docker.probe.udp("container18", "outside", OUTSIDE, 53, timeout=QUIET_WINDOW)
    assert not result, result
    assert result.server_saw and result.server_saw[0] == CONTAINER18, f"outside saw {result.server_saw}"
    still = docker.probe.udp("container", "outside", OUTSIDE, 53)
    assert still and still.server_saw[0] == HOST_UPLINK, f"172.17's rule went too: {still}"


@pytest.mark.document("004", "「SNAT」: MASQUERADE 172.17.0.0/16 as listed, without ! -o docker0")
def test_with_the_rule_as_listed_container_to_container_traffic_is_masqueraded(docker):
    change(docker, "MASQUERADE as the document lists it (no ! -o docker0)")
    result = docker.probe.udp("container2", "container", CONTAINER, 53)
    assert result, result.error
    assert result.server_saw[0] == GATEWAY, f"container saw container2 as {result.server_saw}"


# ---------------------------------------------------------------- the container's table: route -n

def route_n(lab, node):
    """`route -n` as the kernel holds it (main table, over netlink): (Destination, Gateway,
    Genmask, Flags, Iface) rows."""
    names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in lab.ipr(node).get_links()}
    rows = []
    for route in lab.ipr(node).get_routes(family=2, table=254):
        gateway = route.get_attr("RTA_GATEWAY")
        genmask = str(ipaddress.IPv4Network(f"0.0.0.0/{route['dst_len']}").netmask)
        rows.append((route.get_attr("RTA_DST") or "0.0.0.0", gateway or "0.0.0.0", genmask,
                     "UG" if gateway else "U", names[route.get_attr("RTA_OIF")]))
    return sorted(rows)


def echo(dst, to_mac):
    return Ether(dst=to_mac) / IP(src=CONTAINER, dst=dst) / ICMP(type=8)


@pytest.mark.document("004", "容器内部路由表 「route -n」: 0.0.0.0 172.17.0.1 0.0.0.0 UG eth0 / "
                             "172.17.0.0 0.0.0.0 255.255.0.0 U eth0")
def test_the_container_table_reads_as_route_n_and_off_link_goes_to_172_17_0_1(docker_iptables):
    """The two rows the document prints (the second is the kernel's, from the address), and what
    they mean on the wire: an address off the subnet is sent to docker0's MAC (the gateway
    172.17.0.1), one on it straight to its owner's MAC (gateway 0.0.0.0: on-link)."""
    lab, probe = docker_iptables, docker_iptables.probe
    assert route_n(lab, "container") == [("0.0.0.0", GATEWAY, "0.0.0.0", "UG", "eth0"),
                                         ("172.17.0.0", "0.0.0.0", "255.255.0.0", "U", "eth0")], \
        route_n(lab, "container")
    probe.listen(CONTAINER_ETH0)
    off_link = probe.ping("container", OUTSIDE)
    assert off_link, off_link.error
    sent = probe.expect(CONTAINER_ETH0, echo(OUTSIDE, lab.mac("host", "docker0")), inbound=False)
    assert sent, f"the echo to {OUTSIDE} did not leave eth0 for 172.17.0.1's MAC\n" + sent.format()
    on_link = probe.ping("container", CONTAINER2)
    assert on_link, on_link.error
    sent = probe.expect(CONTAINER_ETH0, echo(CONTAINER2, lab.mac("container2", "eth0")), inbound=False)
    assert sent, f"the echo to {CONTAINER2} did not go straight to container2's MAC\n" + sent.format()


@pytest.mark.document("004", "容器内部路由表 route -n: 0.0.0.0 172.17.0.1 0.0.0.0 UG eth0")
def test_without_the_default_row_an_off_link_address_is_unreachable(docker_iptables):
    lab, probe = docker_iptables, docker_iptables.probe
    lab.ipr("container").route("del", dst="0.0.0.0/0")
    probe.listen(CONTAINER_ETH0)
    result = probe.ping("container", OUTSIDE)
    assert not result and result.error == "Network is unreachable", result
    strays = probe.expect_none(CONTAINER_ETH0, Ether() / IP(dst=OUTSIDE), inbound=False)
    assert strays == [], strays.format()


@pytest.mark.document("004", "容器内部路由表 route -n: 172.17.0.0 0.0.0.0 255.255.0.0 U eth0 (0.0.0.0 作为网关: On-link)")
def test_without_the_on_link_row_a_neighbour_is_sent_to_the_gateway(docker_iptables):
    """The twin of the on-link row: with the kernel's 172.17.0.0/16 route deleted, the echo to
    container2 takes the default row and leaves for docker0's MAC, not container2's."""
    lab, probe = docker_iptables, docker_iptables.probe
    lab.ipr("container").route("del", dst="172.17.0.0/16", scope=253, proto=2, oif=lab.ifindex("container", "eth0"))
    probe.listen(CONTAINER_ETH0)
    probe.ping("container", CONTAINER2)
    via_gateway = probe.expect(CONTAINER_ETH0, echo(CONTAINER2, lab.mac("host", "docker0")), inbound=False)
    assert via_gateway, "the echo to container2 did not go to 172.17.0.1's MAC\n" + via_gateway.format()
    direct = probe.expect_none(CONTAINER_ETH0, echo(CONTAINER2, lab.mac("container2", "eth0")), inbound=False)
    assert direct == [], direct.format()
