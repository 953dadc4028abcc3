"""Docker-style NAT on docker0 - document 004, "NAT" (SNAT: MASQUERADE 172.17.0.0/16;
DNAT: the DOCKER chain, `! -i docker0 --dport 18862 -> 172.17.0.4:80`).

Every check runs twice: on 004-docker-nat (iptables rules) and 004-docker-nat-nft (the
same rules as an nftables ruleset). "outside" is a client on the host's uplink
(192.168.1.50 -> host 192.168.1.100); "container" (172.17.0.4) publishes port 80 as
18862; "container2" (172.17.0.2) is its neighbour on docker0.
"""

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from pytest_netconform import lab_fixture
from harness import DEADLINE, QUIET_WINDOW, Port

pytestmark = pytest.mark.area("NAT")

docker_iptables = lab_fixture("004-docker-nat")
docker_nftables = lab_fixture("004-docker-nat-nft")

HOST_UPLINK, GATEWAY, CONTAINER, CONTAINER2, OUTSIDE = (
    "192.168.1.100", "172.17.0.1", "172.17.0.4", "172.17.0.2", "192.168.1.50")
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


@pytest.mark.document("004", "DNAT: only mapped ports are forwarded")
def test_an_unpublished_port_is_not_forwarded_to_the_container(docker):
    docker.probe.listen(CONTAINER_ETH0)
    result = tcp_to_published_port(docker, "outside", HOST_UPLINK, UNPUBLISHED, timeout=QUIET_WINDOW)
    assert not result and "Connection refused" in result.error, result
    assert docker.probe.expect_none(CONTAINER_ETH0, Ether() / IP(dst=CONTAINER) / TCP()) == [], \
        docker.probe.evidence(CONTAINER_ETH0)


@pytest.mark.document("004", "DNAT: ! -i docker0")
@pytest.mark.parametrize("dst", [GATEWAY, HOST_UPLINK])
def test_the_published_port_dialled_from_docker0_is_not_dnated(docker, dst):
    docker.probe.listen(CONTAINER_ETH0)
    result = tcp_to_published_port(docker, "container2", dst, PUBLISHED, timeout=QUIET_WINDOW)
    assert not result and "Connection refused" in result.error, result
    assert docker.probe.expect_none(CONTAINER_ETH0, SYN_TO_THE_CONTAINER) == [], \
        f"container2's SYN to {dst}:{PUBLISHED} was DNATed to {CONTAINER}:80\n" + docker.probe.evidence(CONTAINER_ETH0)


@pytest.mark.document("004", "DNAT: ! -i docker0")
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
                 marks=pytest.mark.document("004", "SNAT: MASQUERADE 172.17.0.0/16 -> the host's address")),
    pytest.param("container2", "container", CONTAINER, CONTAINER2, id="on-docker0-it-keeps-its-source",
                 marks=pytest.mark.document("004", "SNAT: ! -o docker0 (hidden by iptables -L -n)")),
])
def test_container_traffic_has_the_source_snat_gives_it_and_replies_return(docker, exchange, client, server, dst,
                                                                           seen_as):
    result = getattr(docker.probe, exchange)(client, server, dst, 53)
    assert result, result.error
    assert result.server_saw[0] == seen_as, f"{server} saw {client} as {result.server_saw}"
    assert result.client_saw == (dst, 53) and result.reply == b"netconform", result


@pytest.mark.document("004", "SNAT")
def test_without_masquerade_the_container_address_leaves_and_no_reply_returns(docker):
    change(docker, "no MASQUERADE")
    result = docker.probe.udp("container", "outside", OUTSIDE, 53, timeout=QUIET_WINDOW)
    assert not result, result
    assert result.server_saw and result.server_saw[0] == CONTAINER, f"outside saw {result.server_saw}"


@pytest.mark.document("004", "SNAT: MASQUERADE 172.17.0.0/16 as listed, without ! -o docker0")
def test_with_the_rule_as_listed_container_to_container_traffic_is_masqueraded(docker):
    change(docker, "MASQUERADE as the document lists it (no ! -o docker0)")
    result = docker.probe.udp("container2", "container", CONTAINER, 53)
    assert result, result.error
    assert result.server_saw[0] == GATEWAY, f"container saw container2 as {result.server_saw}"
