"""The datapath of a CNI implementation, checked on the wire of the cni-host lab.

Each test runs on every profile (or ``--cni-conf``) and takes what to expect from the
configuration (``harness.cni.expect``), never from a profile's name: a promised
behaviour is checked with ping/udp/tcp (what each end saw), a promised absence (no
ipMasq, no portMappings capability, isolation...) is asserted, and the rest is skipped
with the reason. The lab: the host (uplink eth0 192.168.1.100/24, default via
192.168.1.1; 2001:db8:1::100/64, default via 2001:db8:1::1) and "internet" (192.168.1.1 and
8.8.8.8, 2001:db8:1::1 and 2001:db8:8888::8888, no route to any pod network). A
configuration with an IPv6 range gets every family-parametrized check over IPv6 too (the
``family`` fixture, ids ``-ipv4`` and ``-ipv6``); one without is skipped there in one line.
routed-calico-like.conflist is Calico's routing as close as ptp gets; its ``_comment``
(top level: a runtime hands plugins their own object only) says where it differs.
"""
import ipaddress
from dataclasses import dataclass

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from harness.cni import derived, expect
from harness.kernel import state
from harness.kernel.constants import AF_INET, AF_INET6
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


@dataclass(frozen=True)
class Family:
    """The lab's roles in one IP family (harness/lab/data/cni-host.yaml), and a pod's address and
    gateway of that family, read from its CNI result."""
    version: int
    host_uplink: str  # the host's address on the uplink
    router: str  # "internet"'s address on the uplink: the host's default gateway
    internet: str  # an "internet" address beyond the router
    uplink: ipaddress.IPv4Network | ipaddress.IPv6Network
    localhost: str

    def address(self, attachment) -> str | None:
        return next((a.split("/")[0] for a in attachment.addresses()
                     if ipaddress.ip_interface(a).version == self.version), None)

    def gateway(self, attachment) -> str | None:
        return next((ip["gateway"] for ip in attachment.result.get("ips", [])
                     if ip.get("gateway") and ipaddress.ip_address(ip["gateway"]).version == self.version), None)

    def tcp(self, dst: str):
        """A template of a TCP segment of this family to ``dst`` (for expect_none)."""
        return Ether() / (IP(dst=dst) if self.version == 4 else IPv6(dst=dst)) / TCP()


FAMILIES = {4: Family(4, HOST_UPLINK, ROUTER, INTERNET, UPLINK, "127.0.0.1"),
            6: Family(6, HOST_UPLINK6, ROUTER6, INTERNET6, UPLINK6, "::1")}
EACH_FAMILY = pytest.mark.parametrize("family", [4, 6], indirect=True, ids=["ipv4", "ipv6"])


@pytest.fixture
def family(request, network) -> Family:
    """Each IP family the configuration has a range of (harness.cni.expect.families); a family it has
    none of is skipped in one line, before a lab is built (list this fixture before ``net``). Where the
    harness reads no range at all (an IPAM it does not know), IPv4 is checked from the result, as a
    runtime's pods have it, and IPv6 is not."""
    known = expect.families(network)
    if request.param not in (known or [4]):
        pytest.skip(f"the configuration has no IPv{request.param} range" if known else
                    f"the harness reads no range in this configuration: IPv{request.param} is not checked")
    return FAMILIES[request.param]


# ---------------------------------------------------------------- gateway, pods, host

@EACH_FAMILY
def test_a_pod_reaches_its_gateway_and_the_expected_node_answers(family, net, add_pod):
    pod = attach(net, add_pod, "pod1")
    gateway, owner = family.gateway(pod), expect.gateway_owner(net.network)
    if not gateway:
        # The bridge plugin's isGateway (or isDefaultGateway) gives the bridge the gateway address
        # and fills a missing one in the result (calcGatewayIP): a result without one is a finding.
        assert not (expect.interface_plugin(net.network)["type"] == "bridge" and owner == "host"), \
            f"the configuration sets isGateway on the bridge, yet the result names no IPv{family.version} gateway"
        pytest.skip(f"the result names no IPv{family.version} gateway")
    ping = net.live.probe.ping("pod1", gateway, timeout=DEADLINE if owner else QUIET_WINDOW)
    if owner is None:
        assert not ping, f"nothing should hold the gateway {gateway} (no isGateway), yet it answered: {ping}"
        return
    assert ping, f"pod1 ({family.address(pod)}) -> gateway {gateway}: {ping.error}"
    answered_by = net.live.neighbour("pod1", gateway)  # ARP's or neighbour discovery's answer
    node = "host" if owner == "host" else "internet"
    assert answered_by in macs(net.live, node), \
        f"the gateway {gateway} answered from {answered_by}, not from a link of {node} {sorted(macs(net.live, node))}"


@EACH_FAMILY
def test_an_unassigned_address_on_the_pod_network_does_not_answer(family, net, add_pod):
    pod = attach(net, add_pod, "pod1")
    subnet = next(ipaddress.ip_interface(a).network for a in pod.addresses()
                  if ipaddress.ip_interface(a).version == family.version)
    nobody = str(subnet.broadcast_address - 1)
    assert nobody not in (family.address(pod), family.gateway(pod)), nobody
    ping = net.live.probe.ping("pod1", nobody, timeout=QUIET_WINDOW)
    assert not ping, f"{nobody} answered pod1 though nothing was given that address: {ping}"
    assert net.live.neighbour("pod1", nobody) is None, f"ARP or neighbour discovery found a holder of {nobody}"


@EACH_FAMILY
def test_two_pods_on_the_network_reach_each_other_with_their_own_addresses_and_not_after_del(family, net, add_pod):
    """Pods of one network reach each other, each seen with its own address; after pod2's DEL its address
    no longer answers (the twin: the same probe, which reached it before)."""
    pod1, pod2 = attach(net, add_pod, "pod1"), attach(net, add_pod, "pod2")
    mine, theirs = family.address(pod1), family.address(pod2)
    promised = expect.pods_reach_each_other(net.network)
    ping = net.live.probe.ping("pod1", theirs, timeout=DEADLINE if promised else QUIET_WINDOW)
    if not promised:
        assert not ping, f"{expect.kind(net.network)} promises pods apart, yet pod1 reached pod2: {ping}"
        return
    assert ping, f"pod1 ({mine}) -> pod2 ({theirs}): {ping.error}"
    hops = expect.pod_to_pod_hops(net.network)
    assert ping.ttl == 64 - hops, \
        f"the reply came with TTL (hop limit) {ping.ttl}: {64 - ping.ttl} router(s), expected {hops}"
    exchange = net.live.probe.udp("pod1", "pod2", theirs, 5353)
    assert exchange, exchange.error
    assert exchange.server_saw[0] == mine, f"pod2 saw pod1 as {exchange.server_saw} (NAT inside the network?)"
    net.detach("pod2")
    ping = net.live.probe.ping("pod1", theirs, timeout=QUIET_WINDOW)
    assert not ping, f"pod2's address {theirs} still answers after DEL: {ping}"


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

@EACH_FAMILY
def test_pod_traffic_leaves_for_the_internet_as_the_configuration_says(family, net, add_pod):
    """With ipMasq, bridge and ptp masquerade each of the pod's addresses, IPv6 ones with ip6tables
    (containernetworking/plugins pkg/ip/ipmasq_linux.go SetupIPMasq: ``isV6`` picks ip6tables): the
    internet sees the host's uplink address and answers it. Without, it sees the pod's own address,
    and answers only a pod on the uplink's subnet; without a default route nothing leaves."""
    egress = expect.egress(net.network, family.uplink)
    pod = attach(net, add_pod, "pod1")
    own = family.address(pod)
    exchange = net.live.probe.udp("pod1", "internet", family.internet, 53,
                                  timeout=DEADLINE if egress in ("masquerade", "direct") else QUIET_WINDOW)
    if egress == "masquerade":
        assert exchange, f"pod1 ({own}) -> {family.internet}: {exchange.error}"
        assert exchange.server_saw[0] == family.host_uplink, f"the internet saw pod1 as {exchange.server_saw}"
        assert exchange.client_saw == (family.internet, 53) and exchange.reply == b"netconform", exchange
    elif egress == "unrouted":  # no default route, or nobody holds the gateway: nothing leaves
        assert not exchange and exchange.server_saw is None, f"no IPv{family.version} default route, yet: {exchange}"
    else:
        assert exchange.server_saw and exchange.server_saw[0] == own, \
            f"the internet saw pod1 as {exchange.server_saw} ({exchange.error}), expected its own {own}"
        if egress == "direct":  # the pod's address is on the uplink's subnet: the internet answers it
            assert exchange, exchange.error
        else:
            assert not exchange, f"a reply to {own} returned though the internet has no route back: {exchange}"


# ---------------------------------------------------------------- port mappings

def published(net, client, dst, port=MAPPED, server="pod1", timeout=DEADLINE):
    return net.live.probe.tcp(client, server, dst, port, listen_port=CONTAINER_PORT, timeout=timeout)


def shown(address: str) -> str:
    return f"[{address}]" if ":" in address else address


@EACH_FAMILY
@pytest.mark.promises(expect.port_mapping_capable, NO_PORT_MAPPINGS)
def test_a_mapped_host_port_reaches_the_pod_from_outside(family, net, add_pod):
    """portmap DNATs each of the pod's addresses' family with its own tool (portmap.go forwardPorts:
    ip6tables for an IPv6 container address)."""
    attach(net, add_pod, "pod1", portMappings=PORT_MAPPINGS)
    exchange = published(net, "internet", family.host_uplink)
    assert exchange, f"internet -> {shown(family.host_uplink)}:{MAPPED} -> pod1:{CONTAINER_PORT}: {exchange.error}"
    assert exchange.server_saw[0] == family.router, \
        f"pod1 saw the client as {exchange.server_saw} (SNAT on the way in?)"
    assert exchange.client_saw == (family.host_uplink, MAPPED), f"the reply came from {exchange.client_saw}"


@EACH_FAMILY
def test_an_unmapped_host_port_does_not_reach_the_pod(family, net, add_pod):
    pod = attach(net, add_pod, "pod1", portMappings=PORT_MAPPINGS)
    ports = [UNMAPPED] + ([] if expect.port_mapping_capable(net.network) else [MAPPED])
    net.live.probe.listen(Port("pod1", "eth0"))
    for port in ports:  # without the capability the runtime passes no mapping at all
        exchange = published(net, "internet", family.host_uplink, port, timeout=QUIET_WINDOW)
        assert not exchange, f"{shown(family.host_uplink)}:{port} reached pod1: {exchange}"
    assert net.live.probe.expect_none(Port("pod1", "eth0"), family.tcp(family.address(pod))) == [], \
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


def localhost_mapping_promised(network, family: Family) -> bool:
    """portmap's snat sets route_localnet and marks 127.0.0.1 for masquerade, for IPv4 only (portmap.go
    fillDnatRules: "mark localhost for masq (for v4)"): IPv6 has no route_localnet, so ``[::1]:port``
    is promised only by netavark's bridge, which maps it too."""
    if family.version == 4:
        return expect.localhost_port_mapping(network)
    return expect.kind(network) == "netavark-bridge" and expect.localhost_port_mapping(network)


@EACH_FAMILY
@pytest.mark.promises(expect.port_mapping_capable, NO_PORT_MAPPINGS)
@pytest.mark.parametrize("target", ["uplink", "localhost"])
def test_the_host_reaches_its_own_mapped_port(family, net, add_pod, target):
    attach(net, add_pod, "pod1", portMappings=PORT_MAPPINGS)
    dst = family.host_uplink if target == "uplink" else family.localhost
    promised = target == "uplink" or localhost_mapping_promised(net.network, family)
    exchange = published(net, "host", dst, timeout=DEADLINE if promised else QUIET_WINDOW)
    if not promised:
        assert not exchange, f"{shown(dst)}:{MAPPED} reached pod1, which nothing promises: {exchange}"
        return
    assert exchange, f"host -> {shown(dst)}:{MAPPED} -> pod1:{CONTAINER_PORT}: {exchange.error}"
    assert exchange.client_saw == (dst, MAPPED), exchange


@EACH_FAMILY
@pytest.mark.promises(expect.port_mapping_capable, NO_PORT_MAPPINGS)
def test_a_pod_reaches_itself_through_the_mapped_port(family, net, add_pod):
    """portmap's hairpin mark covers both families (fillDnatRules: ``-s containerNet -j SETMARK``)."""
    pod = attach(net, add_pod, "pod1", portMappings=PORT_MAPPINGS)
    promised = expect.hairpin_port_mapping(net.network)
    exchange = published(net, "pod1", family.host_uplink, timeout=DEADLINE if promised else QUIET_WINDOW)
    if not promised:
        assert not exchange, f"hairpin worked though nothing masquerades it: {exchange}"
        return
    assert exchange, f"pod1 -> {shown(family.host_uplink)}:{MAPPED} -> pod1:{CONTAINER_PORT}: {exchange.error}"
    assert exchange.server_saw[0] == family.gateway(pod), \
        f"pod1 saw itself as {exchange.server_saw}, not masqueraded to its gateway {family.gateway(pod)}"


# ---------------------------------------------------------------- every range, every family

def kernel_addresses(live, pod, ifname) -> set[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    return {ipaddress.ip_interface(a) for a in live.addresses(pod, ifname)}


def test_every_range_gives_the_pod_an_address_in_it_on_its_interface(net, add_pod):
    """CNI spec, Result: ``ips`` are the addresses the plugin assigned; host-local gives one per
    range set. Each family with a range: an address of it in the result, configured on the pod's
    interface; a family without: no global address of it on the pod (its twin)."""
    pod = attach(net, add_pod, "pod1")
    seen = kernel_addresses(net.live, "pod1", pod.ifname)
    given = [ipaddress.ip_interface(a) for a in pod.addresses()]
    for version in (4, 6):
        ranges = [subnet for subnet, _ in expect.subnets(net.network, version)]
        mine = [a for a in given if a.version == version]
        global_seen = {a for a in seen if a.version == version and not a.ip.is_link_local}
        if not ranges:
            assert not global_seen, f"IPv{version}: no range configured, yet pod1 has {sorted(map(str, global_seen))}"
            continue
        assert mine, f"IPv{version}: ranges {[str(r) for r in ranges]}, but the result gave no address: {pod.result}"
        for address in mine:
            assert any(address.ip in subnet for subnet in ranges), \
                f"the result's {address} is in none of the ranges {[str(r) for r in ranges]}"
            assert address in seen, f"the result's {address} is not on pod1's {pod.ifname}: {sorted(map(str, seen))}"


@EACH_FAMILY
def test_the_pod_has_a_default_route_for_each_family_promised(family, net, add_pod):
    pod = attach(net, add_pod, "pod1")
    default = "0.0.0.0/0" if family.version == 4 else "::/0"
    found = [r for r in state.routes(net.live.ipr("pod1"), (AF_INET if family.version == 4 else AF_INET6,))
             if r.dst == default and r.table == 254]
    if not expect.default_route(net.network, family.version):
        assert not found, f"no default route of IPv{family.version} is configured, yet pod1 has {found}"
        return
    assert found, f"pod1 has no {default} route (ipam routes or isDefaultGateway promise one): {pod.result}"
    gateway = family.gateway(pod)
    vias = {r.via for r in found}
    assert gateway is None or gateway in vias or any(v and v.startswith("fe80:") for v in vias), \
        f"pod1's {default} goes via {vias}, not via its gateway {gateway}"


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
