"""The datapath of a CNI implementation, checked on the wire of the cni-host lab.

Each test runs on every profile (or ``--cni-conf``) and takes what to expect from the
configuration (``harness.cni.expect``), never from a profile's name: a promised
behaviour is checked with ping/udp/tcp (what each end saw), a promised absence (no
ipMasq, no portMappings capability, isolation...) is asserted, and the rest is skipped
with the reason. The lab: the host (uplink eth0 192.168.1.100/24, default via
192.168.1.1; 2001:db8:1::100/64, default via 2001:db8:1::1) and "internet" (192.168.1.1 and
8.8.8.8, 2001:db8:1::1 and 2001:db8:8888::8888, no route to any pod network). A
configuration with an IPv6 range gets the IPv6 checks too (the section "IPv6"); one
without is skipped there in one line.
routed-calico-like.conflist is Calico's routing as close as ptp gets; its ``_comment``
(top level: a runtime hands plugins their own object only) says where it differs.
"""
import ipaddress
import os
import re

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from harness.cni import derived, expect
from harness.kernel import state
from harness.kernel.constants import AF_INET, AF_INET6, RTPROT_KERNEL
from harness.probe import DEADLINE, QUIET_WINDOW, Port

HOST_UPLINK, ROUTER, INTERNET = "192.168.1.100", "192.168.1.1", "8.8.8.8"
UPLINK = ipaddress.ip_network("192.168.1.0/24")
# The lab's IPv6 uplink (harness/lab/data/cni-host.yaml): the same roles, IPv6 addresses.
HOST_UPLINK6, ROUTER6, INTERNET6 = "2001:db8:1::100", "2001:db8:1::1", "2001:db8:8888::8888"
UPLINK6 = ipaddress.ip_network("2001:db8:1::/64")
MAPPED, UNMAPPED, CONTAINER_PORT = 8080, 8081, 80
NO_PORT_MAPPINGS = "no plugin declares the portMappings capability"
PORT_MAPPINGS = [{"hostPort": MAPPED, "containerPort": CONTAINER_PORT, "protocol": "tcp"}]


pytestmark = pytest.mark.area("CNI datapath")


@pytest.fixture
def network(cni_network):  # the configuration, read without building anything
    return cni_network[1]


@pytest.fixture
def net(cni):
    """The implementation under test over a fresh lab (fixtures/cni.py: skipped when it cannot run here,
    or when the configuration does not make the test's ``promises``)."""
    return cni


def attach(net, add_pod, pod, **runtime_args):
    add_pod(pod)
    return net.attach(pod, **runtime_args)


def ip_of(attachment) -> str:
    return attachment.addresses()[0].split("/")[0]


def macs(live, node):
    return {link.get_attr("IFLA_ADDRESS") for link in live.ipr(node).get_links()}


# ---------------------------------------------------------------- gateway, pods, host

def test_a_pod_reaches_its_gateway_and_the_expected_node_answers(net, add_pod):
    pod = attach(net, add_pod, "pod1")
    gateway, owner = pod.gateway(), expect.gateway_owner(net.network)
    if not gateway:
        # The bridge plugin's isGateway (or isDefaultGateway) gives the bridge the gateway address
        # and fills a missing one in the result (calcGatewayIP): a result without one is a finding.
        assert not (expect.interface_plugin(net.network)["type"] == "bridge" and owner == "host"), \
            "the configuration sets isGateway on the bridge, yet the result names no gateway"
        pytest.skip("the result names no gateway")
    ping = net.live.probe.ping("pod1", gateway, timeout=DEADLINE if owner else QUIET_WINDOW)
    if owner is None:
        assert not ping, f"nothing should hold the gateway {gateway} (no isGateway), yet it answered: {ping}"
        return
    assert ping, f"pod1 ({ip_of(pod)}) -> gateway {gateway}: {ping.error}"
    answered_by = next((n.get_attr("NDA_LLADDR") for n in net.live.ipr("pod1").get_neighbours(family=2)
                        if n.get_attr("NDA_DST") == gateway), None)
    node = "host" if owner == "host" else "internet"
    assert answered_by in macs(net.live, node), \
        f"the gateway {gateway} answered from {answered_by}, not from a link of {node} {sorted(macs(net.live, node))}"


def test_an_unassigned_address_on_the_pod_network_does_not_answer(net, add_pod):
    pod = attach(net, add_pod, "pod1")
    subnet = ipaddress.ip_interface(pod.addresses()[0]).network
    nobody = str(subnet.broadcast_address - 1)
    assert nobody not in (ip_of(pod), pod.gateway()), nobody
    ping = net.live.probe.ping("pod1", nobody, timeout=QUIET_WINDOW)
    assert not ping, f"{nobody} answered pod1 though nothing was given that address: {ping}"


def test_two_pods_on_the_network_reach_each_other_with_their_own_addresses(net, add_pod):
    pod1, pod2 = attach(net, add_pod, "pod1"), attach(net, add_pod, "pod2")
    promised = expect.pods_reach_each_other(net.network)
    ping = net.live.probe.ping("pod1", ip_of(pod2), timeout=DEADLINE if promised else QUIET_WINDOW)
    if not promised:
        assert not ping, f"{expect.kind(net.network)} promises pods apart, yet pod1 reached pod2: {ping}"
        return
    assert ping, f"pod1 ({ip_of(pod1)}) -> pod2 ({ip_of(pod2)}): {ping.error}"
    hops = expect.pod_to_pod_hops(net.network)
    assert ping.ttl == 64 - hops, f"the reply came with TTL {ping.ttl}: {64 - ping.ttl} router(s), expected {hops}"
    exchange = net.live.probe.udp("pod1", "pod2", ip_of(pod2), 5353)
    assert exchange, exchange.error
    assert exchange.server_saw[0] == ip_of(pod1), f"pod2 saw pod1 as {exchange.server_saw} (NAT inside the network?)"


@pytest.mark.promises(expect.pods_reach_each_other, "the configuration keeps pods apart (nothing to lose on DEL)")
def test_a_detached_pod_is_no_longer_reachable(net, add_pod):
    attach(net, add_pod, "pod1")
    gone = ip_of(attach(net, add_pod, "pod2"))
    assert net.live.probe.ping("pod1", gone), "pod2 was not reachable even before DEL"
    net.detach("pod2")
    ping = net.live.probe.ping("pod1", gone, timeout=QUIET_WINDOW)
    assert not ping, f"pod2's address {gone} still answers after DEL: {ping}"


@pytest.mark.parametrize("target", ["gateway", "uplink"])
def test_a_pod_reaches_the_host_with_its_own_address(net, add_pod, target):
    pod = attach(net, add_pod, "pod1")
    dst = pod.gateway() if target == "gateway" else HOST_UPLINK
    if target == "gateway" and expect.gateway_owner(net.network) != "host":
        pytest.skip(f"the gateway {dst} is not the host's ({expect.kind(net.network)})")
    promised = expect.host_reachable(net.network) and (target == "gateway" or expect.default_route(net.network))
    exchange = net.live.probe.udp("pod1", "host", dst, 5353, timeout=DEADLINE if promised else QUIET_WINDOW)
    if not promised:
        assert not exchange and exchange.server_saw is None, \
            f"{expect.kind(net.network)}: the host's {dst} should be out of the pod's reach: {exchange}"
        return
    assert exchange, f"pod1 ({ip_of(pod)}) -> host {dst}: {exchange.error}"
    assert exchange.server_saw[0] == ip_of(pod), f"the host saw pod1 as {exchange.server_saw}"


# ---------------------------------------------------------------- the internet (ipMasq)

@pytest.mark.promises(lambda network: expect.egress(network, UPLINK) == "masquerade",
                      "the configuration does not masquerade (no ipMasq, no default route or no gateway)")
def test_with_ip_masquerade_pod_traffic_leaves_with_the_uplink_address(net, add_pod):
    pod = attach(net, add_pod, "pod1")
    exchange = net.live.probe.udp("pod1", "internet", INTERNET, 53)
    assert exchange, f"pod1 ({ip_of(pod)}) -> {INTERNET}: {exchange.error}"
    assert exchange.server_saw[0] == HOST_UPLINK, f"the internet saw pod1 as {exchange.server_saw}"
    assert exchange.client_saw == (INTERNET, 53) and exchange.reply == b"netconform", exchange


@pytest.mark.promises(lambda network: expect.egress(network, UPLINK) != "masquerade",
                      "the configuration masquerades (ipMasq)")
def test_without_ip_masquerade_the_pods_own_address_leaves(net, add_pod):
    egress = expect.egress(net.network, UPLINK)
    pod = attach(net, add_pod, "pod1")
    exchange = net.live.probe.udp("pod1", "internet", INTERNET, 53,
                                  timeout=DEADLINE if egress == "direct" else QUIET_WINDOW)
    if egress == "unrouted":  # no default route, or nobody holds the gateway: nothing leaves
        assert not exchange and exchange.server_saw is None, f"no default route, yet: {exchange}"
        return
    assert exchange.server_saw and exchange.server_saw[0] == ip_of(pod), \
        f"the internet saw pod1 as {exchange.server_saw} ({exchange.error})"
    if egress == "direct":  # the pod's address is on the uplink's subnet: the internet answers it
        assert exchange, exchange.error
    else:
        assert not exchange, f"a reply to {ip_of(pod)} returned though the internet has no route back: {exchange}"


# ---------------------------------------------------------------- port mappings

def published(net, client, dst, port=MAPPED, server="pod1", timeout=DEADLINE):
    return net.live.probe.tcp(client, server, dst, port, listen_port=CONTAINER_PORT, timeout=timeout)


@pytest.mark.promises(expect.port_mapping_capable, NO_PORT_MAPPINGS)
def test_a_mapped_host_port_reaches_the_pod_from_outside(net, add_pod):
    attach(net, add_pod, "pod1", portMappings=PORT_MAPPINGS)
    exchange = published(net, "internet", HOST_UPLINK)
    assert exchange, f"internet -> {HOST_UPLINK}:{MAPPED} -> pod1:{CONTAINER_PORT}: {exchange.error}"
    assert exchange.server_saw[0] == ROUTER, f"pod1 saw the client as {exchange.server_saw} (SNAT on the way in?)"
    assert exchange.client_saw == (HOST_UPLINK, MAPPED), f"the reply came from {exchange.client_saw}"


def test_an_unmapped_host_port_does_not_reach_the_pod(net, add_pod):
    pod = attach(net, add_pod, "pod1", portMappings=PORT_MAPPINGS)
    ports = [UNMAPPED] + ([] if expect.port_mapping_capable(net.network) else [MAPPED])
    net.live.probe.listen(Port("pod1", "eth0"))
    for port in ports:  # without the capability the runtime passes no mapping at all
        exchange = published(net, "internet", HOST_UPLINK, port, timeout=QUIET_WINDOW)
        assert not exchange, f"{HOST_UPLINK}:{port} reached pod1: {exchange}"
    assert net.live.probe.expect_none(Port("pod1", "eth0"), Ether() / IP(dst=ip_of(pod)) / TCP()) == [], \
        net.live.probe.evidence(Port("pod1", "eth0"))


@pytest.mark.promises(expect.port_mapping_capable, NO_PORT_MAPPINGS)
def test_a_pod_attached_without_port_mappings_publishes_nothing(net, add_pod):
    attach(net, add_pod, "pod1")
    exchange = published(net, "internet", HOST_UPLINK, timeout=QUIET_WINDOW)
    assert not exchange, f"{HOST_UPLINK}:{MAPPED} reached pod1, which asked for no mapping: {exchange}"


@pytest.mark.promises(expect.port_mapping_capable, NO_PORT_MAPPINGS)
def test_after_del_the_mapped_port_no_longer_reaches_the_pod(net, add_pod):
    attach(net, add_pod, "pod1", portMappings=PORT_MAPPINGS)
    assert published(net, "internet", HOST_UPLINK), "the mapping did not work even before DEL"
    net.detach("pod1")
    exchange = published(net, "internet", HOST_UPLINK, timeout=QUIET_WINDOW)
    assert not exchange, f"{HOST_UPLINK}:{MAPPED} still reaches pod1's namespace after DEL: {exchange}"


@pytest.mark.promises(expect.port_mapping_capable, NO_PORT_MAPPINGS)
@pytest.mark.parametrize("dst", [HOST_UPLINK, "127.0.0.1"])
def test_the_host_reaches_its_own_mapped_port(net, add_pod, dst):
    attach(net, add_pod, "pod1", portMappings=PORT_MAPPINGS)
    promised = dst == HOST_UPLINK or expect.localhost_port_mapping(net.network)
    exchange = published(net, "host", dst, timeout=DEADLINE if promised else QUIET_WINDOW)
    if not promised:  # portmap without snat: no route_localnet, no masquerade of 127.0.0.1
        assert not exchange, f"{dst}:{MAPPED} reached pod1 though snat is off: {exchange}"
        return
    assert exchange, f"host -> {dst}:{MAPPED} -> pod1:{CONTAINER_PORT}: {exchange.error}"
    assert exchange.client_saw == (dst, MAPPED), exchange


@pytest.mark.promises(expect.port_mapping_capable, NO_PORT_MAPPINGS)
def test_a_pod_reaches_itself_through_the_mapped_port(net, add_pod):
    pod = attach(net, add_pod, "pod1", portMappings=PORT_MAPPINGS)
    promised = expect.hairpin_port_mapping(net.network)
    exchange = published(net, "pod1", HOST_UPLINK, timeout=DEADLINE if promised else QUIET_WINDOW)
    if not promised:
        assert not exchange, f"hairpin worked though nothing masquerades it: {exchange}"
        return
    assert exchange, f"pod1 -> {HOST_UPLINK}:{MAPPED} -> pod1:{CONTAINER_PORT}: {exchange.error}"
    assert exchange.server_saw[0] == pod.gateway(), \
        f"pod1 saw itself as {exchange.server_saw}, not masqueraded to its gateway {pod.gateway()}"


# ---------------------------------------------------------------- IPv6 (and every range)

def ip6_of(attachment) -> str | None:
    """The pod's IPv6 address from the CNI result (None: it got none)."""
    return next((a.split("/")[0] for a in attachment.addresses() if ":" in a), None)


def gateway6_of(attachment) -> str | None:
    return next((ip["gateway"] for ip in attachment.result.get("ips", []) if ":" in ip.get("gateway", "")), None)


def kernel_addresses(live, pod, ifname) -> set[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    return {ipaddress.ip_interface(a) for a in live.addresses(pod, ifname)}


def needs_ipv6(network) -> None:
    if 6 not in expect.families(network):
        pytest.skip("the configuration has no IPv6 range")


def test_every_range_gives_the_pod_an_address_in_it_on_its_interface(net, add_pod):
    """CNI spec, Result: ``ips`` are the addresses the plugin assigned; host-local gives one per
    range set. Each family with a range: an address of it in the result, configured on the pod's
    interface; a family without: no global address of it on the pod (its twin)."""
    pod = attach(net, add_pod, "pod1")
    seen = kernel_addresses(net.live, "pod1", pod.ifname)
    given = [ipaddress.ip_interface(a) for a in pod.addresses()]
    for family in (4, 6):
        ranges = [subnet for subnet, _ in expect.subnets(net.network, family)]
        mine = [a for a in given if a.version == family]
        global_seen = {a for a in seen if a.version == family and not a.ip.is_link_local}
        if not ranges:
            assert not global_seen, f"IPv{family}: no range configured, yet pod1 has {sorted(map(str, global_seen))}"
            continue
        assert mine, f"IPv{family}: ranges {[str(r) for r in ranges]}, but the result gave no address: {pod.result}"
        for address in mine:
            assert any(address.ip in subnet for subnet in ranges), \
                f"the result's {address} is in none of the ranges {[str(r) for r in ranges]}"
            assert address in seen, f"the result's {address} is not on pod1's {pod.ifname}: {sorted(map(str, seen))}"


@pytest.mark.parametrize("family", [4, 6])
def test_the_pod_has_a_default_route_for_each_family_promised(net, add_pod, family):
    if family not in expect.families(net.network):
        pytest.skip(f"the configuration has no IPv{family} range")
    pod = attach(net, add_pod, "pod1")
    default = "0.0.0.0/0" if family == 4 else "::/0"
    found = [r for r in state.routes(net.live.ipr("pod1"), (AF_INET if family == 4 else AF_INET6,))
             if r.dst == default and r.table == 254]
    if not expect.default_route(net.network, family):
        assert not found, f"no default route of IPv{family} is configured, yet pod1 has {found}"
        return
    assert found, f"pod1 has no {default} route (ipam routes or isDefaultGateway promise one): {pod.result}"
    gateway = gateway6_of(pod) if family == 6 else pod.gateway()
    vias = {r.via for r in found}
    assert gateway is None or gateway in vias or any(v and v.startswith("fe80:") for v in vias), \
        f"pod1's {default} goes via {vias}, not via its gateway {gateway}"


def test_a_pod_reaches_its_ipv6_gateway_and_the_expected_node_answers(net, add_pod):
    needs_ipv6(net.network)
    pod = attach(net, add_pod, "pod1")
    gateway, owner = gateway6_of(pod), expect.gateway_owner(net.network)
    if not gateway:
        pytest.skip("the result names no IPv6 gateway")
    ping = net.live.probe.ping("pod1", gateway, timeout=DEADLINE if owner else QUIET_WINDOW)
    if owner is None:
        assert not ping, f"nothing should hold the gateway {gateway} (no isGateway), yet it answered: {ping}"
        return
    assert ping, f"pod1 ({ip6_of(pod)}) -> gateway {gateway}: {ping.error}"
    answered_by = net.live.neighbour("pod1", gateway)  # neighbour discovery's answer
    node = "host" if owner == "host" else "internet"
    assert answered_by in macs(net.live, node), \
        f"the gateway {gateway} answered from {answered_by}, not from a link of {node} {sorted(macs(net.live, node))}"


def test_an_unassigned_ipv6_address_on_the_pod_network_does_not_answer(net, add_pod):
    needs_ipv6(net.network)
    pod = attach(net, add_pod, "pod1")
    subnet = next(ipaddress.ip_interface(a).network for a in pod.addresses() if ":" in a)
    nobody = str(subnet.broadcast_address - 1)
    assert nobody not in (ip6_of(pod), gateway6_of(pod)), nobody
    ping = net.live.probe.ping("pod1", nobody, timeout=QUIET_WINDOW)
    assert not ping, f"{nobody} answered pod1 though nothing was given that address: {ping}"
    assert net.live.neighbour("pod1", nobody) is None, "neighbour discovery found a holder of an unassigned address"


def test_two_pods_reach_each_other_over_ipv6_with_their_own_addresses(net, add_pod):
    needs_ipv6(net.network)
    pod1, pod2 = attach(net, add_pod, "pod1"), attach(net, add_pod, "pod2")
    promised = expect.pods_reach_each_other(net.network)
    ping = net.live.probe.ping("pod1", ip6_of(pod2), timeout=DEADLINE if promised else QUIET_WINDOW)
    if not promised:
        assert not ping, f"{expect.kind(net.network)} promises pods apart, yet pod1 reached pod2: {ping}"
        return
    assert ping, f"pod1 ({ip6_of(pod1)}) -> pod2 ({ip6_of(pod2)}): {ping.error}"
    hops = expect.pod_to_pod_hops(net.network)
    assert ping.ttl == 64 - hops, f"the reply came with hop limit {ping.ttl}: {64 - ping.ttl} router(s), expected {hops}"
    exchange = net.live.probe.udp("pod1", "pod2", ip6_of(pod2), 5353)
    assert exchange, exchange.error
    assert exchange.server_saw[0] == ip6_of(pod1), f"pod2 saw pod1 as {exchange.server_saw} (NAT inside the network?)"


def test_ipv6_pod_traffic_leaves_as_the_configuration_says(net, add_pod):
    """bridge and ptp's ipMasq masquerade each of the pod's addresses, IPv6 ones with ip6tables
    (containernetworking/plugins pkg/ip/ipmasq_linux.go SetupIPMasq: ``isV6`` picks ip6tables)."""
    needs_ipv6(net.network)
    egress = expect.egress(net.network, UPLINK6)
    pod = attach(net, add_pod, "pod1")
    exchange = net.live.probe.udp("pod1", "internet", INTERNET6, 53,
                                  timeout=DEADLINE if egress in ("masquerade", "direct") else QUIET_WINDOW)
    if egress == "masquerade":
        assert exchange, f"pod1 ({ip6_of(pod)}) -> {INTERNET6}: {exchange.error}"
        assert exchange.server_saw[0] == HOST_UPLINK6, f"the internet saw pod1 as {exchange.server_saw}"
        assert exchange.client_saw == (INTERNET6, 53) and exchange.reply == b"netconform", exchange
    elif egress == "unrouted":
        assert not exchange and exchange.server_saw is None, f"no IPv6 default route, yet: {exchange}"
    else:
        assert exchange.server_saw and exchange.server_saw[0] == ip6_of(pod), \
            f"the internet saw pod1 as {exchange.server_saw} ({exchange.error}), expected its own {ip6_of(pod)}"
        if egress == "direct":
            assert exchange, exchange.error
        else:
            assert not exchange, f"a reply to {ip6_of(pod)} returned though the internet has no route back: {exchange}"


@pytest.mark.promises(expect.port_mapping_capable, NO_PORT_MAPPINGS)
def test_a_mapped_host_port_reaches_the_pod_over_ipv6_from_outside(net, add_pod):
    """portmap DNATs each of the pod's addresses' family with its own tool (portmap.go forwardPorts:
    ip6tables for an IPv6 container address)."""
    needs_ipv6(net.network)
    attach(net, add_pod, "pod1", portMappings=PORT_MAPPINGS)
    exchange = published(net, "internet", HOST_UPLINK6)
    assert exchange, f"internet -> [{HOST_UPLINK6}]:{MAPPED} -> pod1:{CONTAINER_PORT}: {exchange.error}"
    assert exchange.server_saw[0] == ROUTER6, f"pod1 saw the client as {exchange.server_saw} (SNAT on the way in?)"
    assert exchange.client_saw == (HOST_UPLINK6, MAPPED), f"the reply came from {exchange.client_saw}"


def test_an_unmapped_host_port_does_not_reach_the_pod_over_ipv6(net, add_pod):
    needs_ipv6(net.network)
    attach(net, add_pod, "pod1", portMappings=PORT_MAPPINGS)
    ports = [UNMAPPED] + ([] if expect.port_mapping_capable(net.network) else [MAPPED])
    for port in ports:
        exchange = published(net, "internet", HOST_UPLINK6, port, timeout=QUIET_WINDOW)
        assert not exchange, f"[{HOST_UPLINK6}]:{port} reached pod1: {exchange}"


@pytest.mark.promises(expect.port_mapping_capable, NO_PORT_MAPPINGS)
@pytest.mark.parametrize("dst", [HOST_UPLINK6, "::1"])
def test_the_host_reaches_its_own_mapped_port_over_ipv6(net, add_pod, dst):
    """IPv6 has no route_localnet: portmap marks only IPv4's 127.0.0.1 for masquerade (portmap.go
    fillDnatRules: "mark localhost for masq (for v4)"), so ``[::1]:port`` is promised nothing."""
    needs_ipv6(net.network)
    attach(net, add_pod, "pod1", portMappings=PORT_MAPPINGS)
    promised = dst == HOST_UPLINK6 or (dst == "::1" and expect.kind(net.network) == "netavark-bridge"
                                       and expect.localhost_port_mapping(net.network))
    exchange = published(net, "host", dst, timeout=DEADLINE if promised else QUIET_WINDOW)
    if not promised:
        assert not exchange, f"[{dst}]:{MAPPED} reached pod1, which nothing promises over IPv6: {exchange}"
        return
    assert exchange, f"host -> [{dst}]:{MAPPED} -> pod1:{CONTAINER_PORT}: {exchange.error}"
    assert exchange.client_saw == (dst, MAPPED), exchange


@pytest.mark.promises(expect.port_mapping_capable, NO_PORT_MAPPINGS)
def test_a_pod_reaches_itself_through_the_mapped_port_over_ipv6(net, add_pod):
    """portmap's hairpin mark covers both families (fillDnatRules: ``-s containerNet -j SETMARK``)."""
    needs_ipv6(net.network)
    pod = attach(net, add_pod, "pod1", portMappings=PORT_MAPPINGS)
    promised = expect.hairpin_port_mapping(net.network)
    exchange = published(net, "pod1", HOST_UPLINK6, timeout=DEADLINE if promised else QUIET_WINDOW)
    if not promised:
        assert not exchange, f"hairpin worked though nothing masquerades it: {exchange}"
        return
    assert exchange, f"pod1 -> [{HOST_UPLINK6}]:{MAPPED} -> pod1:{CONTAINER_PORT}: {exchange.error}"
    assert exchange.server_saw[0] == gateway6_of(pod), \
        f"pod1 saw itself as {exchange.server_saw}, not masqueraded to its gateway {gateway6_of(pod)}"


# ---------------------------------------------------------------- other networks

@pytest.fixture
def other(request, network, tmp_path):
    """The same configuration as a second network (another name, bridge and subnet)."""
    if expect.attached_to_uplink(network):
        pytest.skip(f"{expect.kind(network)} pods sit on the uplink's segment: no second network to route to")
    net = request.getfixturevalue("net")
    state = tmp_path / "other-state"
    state.mkdir()
    sibling = derived.sibling(net.network)
    clash = derived.overlaps(net.network, sibling)
    if clash:  # an IPAM whose addresses the harness cannot move: no second network to claim anything of
        pytest.skip(f"cannot derive a second network apart from this one: {', '.join(clash)} overlaps it")
    backend = type(net)(net.live, sibling, str(state), path=net.path)
    yield backend
    backend.close(lab_goes=True)  # net's lab goes with the test


def test_another_network_is_reached_only_when_routed_and_not_isolated(net, other, add_pod):
    pod1 = attach(net, add_pod, "pod1")
    add_pod("pod2")
    pod2 = other.attach("pod2")
    promised = expect.routed_by_host(net.network) and not expect.isolated(net.network)
    exchange = net.live.probe.udp("pod1", "pod2", ip_of(pod2), 5353, timeout=DEADLINE if promised else QUIET_WINDOW)
    if not promised:  # isolated (netavark's isolate), or no route out of the pod's own network
        assert not exchange and exchange.server_saw is None, \
            f"{net.network.name} promises {other.network.name} out of reach, yet pod2 heard pod1: {exchange}"
        return
    assert exchange, f"pod1 ({ip_of(pod1)}) -> pod2 ({ip_of(pod2)}) on {other.network.name}: {exchange.error}"
    expected = other.attached[("pod2", "eth0")].gateway() if expect.masquerades(net.network) else ip_of(pod1)
    assert exchange.server_saw[0] == expected, \
        f"pod2 saw pod1 as {exchange.server_saw[0]}, expected {expected} (ipMasq: {expect.masquerades(net.network)})"


# ---------------------------------------------------------------- DEL leaves nothing

def snapshot(live, node, state_dir=None) -> set[str]:
    """The node's links, addresses, routes, rules, iptables and ip6tables rules and the nftables tables
    plugins make, IPv4 and IPv6, read over netlink (harness.kernel.state), as one fact per line; and the
    state dir's files (the plugins' /var/lib/cni)."""
    found = state.snapshot(live.fd(node), ("links", "addresses", "routes", "rules", "iptables", "ip6tables", "nft"),
                           families=(AF_INET, AF_INET6), ipr=live.ipr(node))
    seen = {f"link {name} {entry['kind']}" for name, entry in found["links"].items()}
    seen |= {f"addr {key}" for key in found["addresses"]}
    for key, route in found["routes"].items():
        proto = "kernel" if route["proto"] == RTPROT_KERNEL else route["proto"]
        seen.add(f"route {key}" + (f" via {route['via']}" if route["via"] else "")
                 + (f" dev {route['dev']}" if route["dev"] and " dev " not in key else "") + f" proto {proto}")
    seen |= {f"rule {key} table {rule['table']}" for key, rule in found["rules"].items()}
    for tool in ("iptables", "ip6tables"):
        table = None
        for line in found[tool] or ():
            if line.startswith("*"):
                table = line[1:]
            else:
                seen.add(f"{tool} {table} {line}")
    seen |= nft_facts(found["nft"] or ())
    for root, _, files in os.walk(state_dir or "/nonexistent"):
        seen |= {f"file {os.path.relpath(os.path.join(root, f), state_dir)}" for f in files}
    return seen


IPTABLES_NFT_TABLES = re.compile(r"(ip|ip6) (filter|nat|mangle|raw|security)")  # iptables-nft's: read as iptables


def nft_facts(lines) -> set[str]:
    """``nft list ruleset`` as facts ``nft FAMILY TABLE CHAIN LINE`` (a table, a chain and each rule or
    declaration in it), for the tables a plugin's nftables backend makes (bridge and ptp's
    ipMasqBackend, portmap's backend); the tables iptables-nft keeps are read with iptables-save."""
    facts, table, chain = set(), None, None
    for line in lines:
        words = line.strip()
        if words.startswith("table "):
            table, chain = words[len("table "):].rstrip(" {"), None
            if not IPTABLES_NFT_TABLES.fullmatch(table):
                facts.add(f"nft {table}")
        elif words.startswith("chain "):
            chain = words[len("chain "):].rstrip(" {")
            if table and not IPTABLES_NFT_TABLES.fullmatch(table):
                facts.add(f"nft {table} {chain}")
        elif words == "}":
            chain = None
        elif table and not IPTABLES_NFT_TABLES.fullmatch(table):
            facts.add(f"nft {table} {chain or '-'} {words}")
    return facts



def mapping_args(network) -> dict:
    """The port mappings the runtime passes (SPEC.md: to a chain that declares the capability)."""
    return {"portMappings": PORT_MAPPINGS} if expect.declares(network, "portMappings") else {}


def is_kept(entry, network) -> bool:
    return any(re.fullmatch(pattern, entry) for pattern in expect.kept(network))


def of_the_pods(entries, pods) -> list[str]:
    """The entries that name one of the pods: its container id or one of its addresses (either family)."""
    return [entry for entry in entries for pod in pods
            if pod.container_id in entry or any(re.search(rf"(?<![\w:.]){re.escape(address.split('/')[0])}(?![\w:])", entry)
                                                for address in pod.addresses())]


def test_the_snapshot_sees_what_add_creates(net, add_pod):
    before = snapshot(net.live, "host", net.state_dir)
    pods = [attach(net, add_pod, "pod1", **mapping_args(net.network)), attach(net, add_pod, "pod2")]
    added = snapshot(net.live, "host", net.state_dir) - before
    assert of_the_pods(added, pods), f"the host gained nothing that names the pods: {added}"
    for pod in pods:  # every address the result gave, of either family
        seen = snapshot(net.live, pod.pod)
        for address in pod.addresses():
            assert f"addr {ipaddress.ip_interface(address).with_prefixlen} dev {pod.ifname}" in seen, pod.result


def test_del_leaves_nothing_of_the_pods_behind(net, add_pod):
    """SPEC.md, DEL: the runtime's "delete a container from a network" undoes what ADD did for it."""
    host_before = snapshot(net.live, "host", net.state_dir)
    pods_before = {name: snapshot(net.live, add_pod(name)) for name in ("pod1", "pod2")}
    pods = [net.attach("pod1", **mapping_args(net.network)), net.attach("pod2")]
    for pod in pods:
        net.detach(pod.pod)
    theirs = of_the_pods(snapshot(net.live, "host", net.state_dir) - host_before, pods)
    assert not theirs, f"after DEL the host still has the pods' {theirs}"
    for name, before in pods_before.items():
        assert snapshot(net.live, name) == before, f"{name} still has {snapshot(net.live, name) - before}"


@pytest.mark.promises(lambda network: expect.kept(network) is not None, "the chain keeps no state the harness knows of")
def test_after_the_last_del_the_host_keeps_only_the_shared_state(net, add_pod):
    """What each type keeps after its last pod leaves (a bridge, shared chains) is its semantics'
    ``kept`` (harness/cni/semantics.yaml); anything else ADD made must go."""
    host_before = snapshot(net.live, "host", net.state_dir)
    pods = [attach(net, add_pod, "pod1", **mapping_args(net.network)), attach(net, add_pod, "pod2")]
    added = snapshot(net.live, "host", net.state_dir) - host_before
    assert [e for e in added if not is_kept(e, net.network)], f"the host gained nothing DEL must remove: {added}"
    for pod in pods:
        net.detach(pod.pod)
    left = snapshot(net.live, "host", net.state_dir) - host_before
    unexpected = sorted(e for e in left if not is_kept(e, net.network))
    assert not unexpected, \
        f"after DEL the host kept more than the shared state {expect.kept(net.network)}: {unexpected}"
