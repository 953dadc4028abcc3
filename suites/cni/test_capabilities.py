"""Capability arguments and configuration keys of the reference plugins, observed on the wire or in the kernel.

SPEC.md (1.0.0, 1.1.0), Plugin configuration objects: "Plugins that consume any of these configuration keys
should respect their intended semantics" (SPEC-010); CONVENTIONS.md, Plugins: "Plugins should accept arguments
according to these conventions" (CONV-003): the well-known capabilities (CONVENTIONS.md, Dynamic Plugin specific
fields: ``bandwidth``, ``portMappings`` with ``hostIP`` and ``protocol``, ``ipRanges``, ``ips``, ``mac``) as
runtimeConfig, and the plugins' own keys. Both are SHOULD: a build that does not honour one is a deviation, listed
in harness/impl/expectations.

Each check is a binary's: it runs once per build, in the smallest configuration of the run holding that plugin
(``owners(smallest=True)``, at the newest cniVersion the chain claims), on a chain derived from it in the same
lab (the plugin under test given the capability or keys; harness.cni.derived's ``sibling`` where a second
network must coexist). Each has its twin: the same probe on a pod that did not ask.
"""
from __future__ import annotations

import copy
import ipaddress
from dataclasses import replace

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from harness.cni import derived, expect
from harness.kernel import nsutil
from harness.probe import QUIET_WINDOW, Port
from pytest_netconform.cni import BUNDLED_VERSIONS, announce_attaches
from pytest_netconform.cni_select import backend_class_of, id_of, ipam_checks, owners, runnable_at
from pytest_netconform.deviations import verdict

pytestmark = pytest.mark.area("CNI spec")
HOST_UPLINK, ROUTER = "192.168.1.100", "192.168.1.1"  # harness/lab/data/cni-host.yaml
MAPPED, OTHER, CONTAINER_PORT = 8080, 8082, 80


def checked_here(request, cni_network, cni_config, cni_path, plugin_type):
    """The ``cni`` fixture's chain when this configuration is the smallest of the run holding ``plugin_type``
    at the newest cniVersion it can run; elsewhere a one-line skip naming where it is checked."""
    backend_class, network = cni_network
    if backend_class.NAME != "cni":
        pytest.skip(f"{network.profile}: backend {backend_class.NAME!r} is not a CNI plugin chain")
    if plugin_type not in network.types:
        pytest.skip(f"no {plugin_type} plugin in this chain")
    version = next((v for v in dict.fromkeys((network.cni_version, *BUNDLED_VERSIONS))
                    if runnable_at(network, cni_path, v)), None)
    if version is not None:  # else the cni fixture says why the chain cannot run
        impl = request.getfixturevalue("cni_impl")
        owner = owners(request.config, impl[0].id if impl else None, cni_path, version, smallest=True)[plugin_type]
        if owner != cni_config:
            pytest.skip(f"{plugin_type}'s semantics are checked once per binary, in "
                        f"{id_of(owner, backend_class_of(owner))}")
    return request.getfixturevalue("cni")


@pytest.fixture
def chains(request, tmp_path):
    """chains(net, change, sibling=False): a backend, in ``net``'s lab, of ``net``'s chain with ``change``
    applied to a copy of its plugins (``sibling``: on another bridge and subnet, beside ``net``'s pods)."""
    made = []

    def make(net, change, sibling=False):
        base = derived.sibling(net.network, len(made) + 1) if sibling else net.network
        plugins = copy.deepcopy(base.plugins)
        change(plugins)
        name = f"{base.name}-caps{len(made)}"
        network = replace(base, name=name, plugins=plugins, raw=dict(base.raw, name=name, plugins=plugins))
        state = tmp_path / f"caps-state{len(made)}"
        state.mkdir()
        backend = type(net)(net.live, network, str(state), path=net.path)
        backend.build = net.build
        announce_attaches(request.config, backend)  # the fault catalogue's hook sees these pods too
        made.append(backend)
        return backend
    yield make
    for backend in made:
        backend.close(lab_goes=True)


def plugin_of(plugins, plugin_type) -> dict:
    return next(p for p in plugins if p["type"] == plugin_type)


def address_of(attachment) -> str:
    return next(a.split("/")[0] for a in attachment.addresses() if ":" not in a)


# ---------------------------------------------------------------- bandwidth

RATE = 8_000_000  # bits/s: 1 MB/s, a 256 KiB transfer takes about 0.2 s after the burst
BURST = 512_000  # bits: 64000 bytes; the plugin's queue holds the burst and 25 ms at the rate (89 KB)
WINDOW = 16 * 1024  # the sender's buffer (the kernel doubles it): the bytes in flight stay below that queue
SIZE = 256 * 1024
# The measured rate, after the burst: at most CEILING times the rate asked (a shaper's promise is a ceiling),
# and at least FLOOR times it. The floor is loose: TCP through the shaper's tail drops reached 57 % of the
# rate on a CPU-starved VM (qemu TCG), and what it must catch is a rate off by a factor (bits taken for
# bytes: an eighth; kbit for bit: a thousandth), not a slow machine.
CEILING, FLOOR = 1.25, 0.4
FAST = 4  # the twin: without the capability the same transfer goes at least 4 times the rate asked


@pytest.fixture
def bandwidth_chain(request, cni_network, cni_config, cni_path):
    return checked_here(request, cni_network, cni_config, cni_path, "bandwidth")


DIRECTIONS = ("ingress", "egress")  # into the pod (the host sends), out of it (the pod sends)


def configured_rates(plugin: dict) -> dict:
    return {key: plugin[key] for d in DIRECTIONS for key in (f"{d}Rate", f"{d}Burst") if plugin.get(key)}


@pytest.mark.spec("SPEC-010", "CONV-003")
def test_bandwidth_shapes_each_direction_to_the_rate_its_capability_or_configuration_asks(request, bandwidth_chain,
                                                                                         chains, add_pod):
    """CONVENTIONS.md, Dynamic Plugin specific fields: ``bandwidth`` (ingressRate, ingressBurst, egressRate,
    egressBurst, in bits) given as runtimeConfig to a bandwidth plugin declaring the capability (pod1, on a
    sibling chain whose bandwidth plugin has no rates of its own); and the same keys in the plugin's
    configuration (pod3, on the chain under test, where it has them). A bounded TCP transfer of SIZE bytes
    each way between the pod and the host: the rate after the burst between FLOOR and CEILING times the rate asked; the
    twin, pod2 on the sibling chain attached without the argument, goes at least FAST times RATE."""
    def capability_only(plugins):  # no rates of its own: only the runtime's argument shapes
        plugins[plugins.index(plugin_of(plugins, "bandwidth"))] = {"type": "bandwidth",
                                                                   "capabilities": {"bandwidth": True}}
    sibling = chains(bandwidth_chain, capability_only, sibling=True)
    asked = {f"{d}{key}": value for d in DIRECTIONS for key, value in (("Rate", RATE), ("Burst", BURST))}
    pods = [("pod1", sibling.attach(add_pod("pod1"), bandwidth=asked), asked),
            ("pod2", sibling.attach(add_pod("pod2")), {})]
    own = configured_rates(plugin_of(bandwidth_chain.network.plugins, "bandwidth"))
    if own:
        pods.append(("pod3", bandwidth_chain.attach(add_pod("pod3")), own))
    problems, measured = [], []
    for pod, attachment, rates in pods:
        for direction, client, server, dst in (("ingress", "host", pod, address_of(attachment)),
                                               ("egress", pod, "host", attachment.gateway())):
            done = sibling.live.probe.transfer(client, server, dst, 5201, SIZE, window=WINDOW)
            assert done, f"{client} -> {server} ({dst}), {SIZE} bytes: {done.error}"
            rate, burst = rates.get(f"{direction}Rate"), rates.get(f"{direction}Burst", 0)
            got = done.rate(discount=burst // 8)
            seen = f"{direction} of {pod}: {SIZE} bytes in {done.seconds:.3f} s, {got / 1e6:.2f} Mbit/s"
            measured.append(seen)
            if rate is None and got < FAST * RATE:
                problems.append(f"the twin is not fast: {seen}, asking no {direction}Rate")
            elif rate is not None and not FLOOR * rate <= got <= CEILING * rate:
                problems.append(f"{seen}, asked {direction}Rate {rate / 1e6:g} Mbit/s "
                                f"(burst {burst} bits; between {FLOOR:g} and {CEILING:g} times the rate)")
    request.node.user_properties.append(("measured", "; ".join(measured)))
    verdict(request, sibling, "bandwidth-rates", sibling.network.cni_version, {"bandwidth": problems})


# ---------------------------------------------------------------- tuning

IFF_PROMISC = 0x100  # linux/if.h
ASKED_MAC = "02:00:00:ca:fe:01"


@pytest.fixture
def tuning_chain(request, cni_network, cni_config, cni_path):
    return checked_here(request, cni_network, cni_config, cni_path, "tuning")


def kernel_view(live, pod: str, sysctls) -> dict:
    """What the pod's eth0 is, read from its kernel: mtu, mac, promisc, and each sysctl of ``sysctls``."""
    link = live.link(pod, "eth0")
    with live.entered(pod):
        values = {key: nsutil.read_sysctl(key) for key in sysctls}
    return {"mtu": link.get_attr("IFLA_MTU"), "mac": link.get_attr("IFLA_ADDRESS").lower(),
            "promisc": bool(link["flags"] & IFF_PROMISC), **values}


@pytest.mark.spec("SPEC-010", "CONV-003")
def test_tuning_sets_the_mtu_mac_promisc_and_sysctls_its_configuration_and_capability_ask(request, tuning_chain,
                                                                                       chains, add_pod):
    """tuning (containernetworking/plugins plugins/meta/tuning/README.md): ``mtu``, ``promisc``, ``sysctl``
    and ``mac`` set on the pod's interface; ``mac`` also as the well-known capability (CONVENTIONS.md,
    Dynamic Plugin specific fields: "mac"), and reported in the result's interface. Read back from the pod's
    kernel: pod1 on the chain under test, pod2 on a sibling chain whose tuning asks other values (mtu 100 less,
    promisc, another sysctl, the mac capability); each pod shows its own configuration's value, and pod1 not the
    sibling's (the twin). pod1's own sysctls have no reverse twin: the bridge plugin itself sets arp_notify in
    the pod from 1.0 on, so pod2 may well have it."""
    own = plugin_of(tuning_chain.network.plugins, "tuning")
    mine_sysctls = dict(own.get("sysctl") or {})
    other_sysctl = next(k for k in ("net.ipv4.conf.eth0.arp_ignore", "net.ipv4.conf.eth0.arp_announce")
                        if k not in mine_sysctls)
    other = {"type": "tuning", "mtu": int(own.get("mtu") or 1500) - 100, "promisc": not own.get("promisc"),
             "sysctl": {other_sysctl: "2"}, "capabilities": {"mac": True}}

    def retuned(plugins):  # the interface plugin and the other tuning: a second network beside the first
        plugins[:] = [plugins[0], other]
    sibling = chains(tuning_chain, retuned, sibling=True)
    pod1 = tuning_chain.attach(add_pod("pod1"), mac=ASKED_MAC)  # the chain under test declares no mac capability
    pod2 = sibling.attach(add_pod("pod2"), mac=ASKED_MAC)
    keys = [*mine_sysctls, other_sysctl]
    seen = {"pod1": kernel_view(tuning_chain.live, "pod1", keys), "pod2": kernel_view(sibling.live, "pod2", keys)}
    wanted = {"pod1": {"promisc": bool(own.get("promisc")), **{k: str(v) for k, v in mine_sysctls.items()}},
              "pod2": {"mtu": other["mtu"], "promisc": other["promisc"], "mac": ASKED_MAC, other_sysctl: "2"}}
    if own.get("mtu"):
        wanted["pod1"]["mtu"] = int(own["mtu"])
    problems = [f"{pod}'s eth0 has {key} {seen[pod][key]!r}, its chain's tuning asks {value!r}"
                for pod, asked in wanted.items() for key, value in asked.items() if seen[pod][key] != value]
    # the twins: what one chain asks is not what the other pod has
    problems += [f"pod1's eth0 has {key} {seen['pod1'][key]!r}, which only pod2's chain asks"
                 for key in ("mtu", "mac", "promisc", other_sysctl) if seen["pod1"][key] == wanted["pod2"][key]]
    reported = [i.get("mac", "").lower() for i in pod2.result.get("interfaces") or [] if i.get("sandbox")]
    if seen["pod2"]["mac"] == ASKED_MAC and ASKED_MAC not in reported:
        problems.append(f"pod2's eth0 has the mac asked, {ASKED_MAC}, but its result's sandbox interfaces say "
                        f"{reported}")
    verdict(request, tuning_chain, "tuning-keys", tuning_chain.network.cni_version,
            {"tuning": problems + ([f"  read from the kernel: {seen}"] if problems else [])})


# ---------------------------------------------------------------- portmap

@pytest.fixture
def portmap_chain(request, cni_network, cni_config, cni_path):
    net = checked_here(request, cni_network, cni_config, cni_path, "portmap")
    if not any((p.get("capabilities") or {}).get("portMappings") for p in net.network.plugins):
        pytest.skip("the chain's portmap does not declare the portMappings capability")
    return net


def mapping(host_port: int, protocol: str = "tcp", **more) -> dict:
    return {"hostPort": host_port, "containerPort": CONTAINER_PORT, "protocol": protocol, **more}


@pytest.mark.spec("SPEC-010", "CONV-003")
def test_a_port_mapping_with_a_host_ip_forwards_only_from_that_address(portmap_chain, add_pod):
    """CONVENTIONS.md, Dynamic Plugin specific fields, ``portMappings``: ``hostIP`` restricts the mapping to
    that host address. pod1 maps MAPPED on the host's uplink address: the host reaches pod1 there, and not
    through its other address (the bridge's gateway), where no TCP segment reaches pod1's eth0; the twin, pod2
    mapping OTHER without hostIP, is reached through that same other address."""
    net = portmap_chain
    pod1 = net.attach(add_pod("pod1"), portMappings=[mapping(MAPPED, hostIP=HOST_UPLINK)])
    net.attach(add_pod("pod2"), portMappings=[mapping(OTHER)])
    gateway = pod1.gateway()
    there = net.live.probe.tcp("host", "pod1", HOST_UPLINK, MAPPED, listen_port=CONTAINER_PORT)
    assert there, f"host -> {HOST_UPLINK}:{MAPPED} (the mapping's hostIP) -> pod1:{CONTAINER_PORT}: {there.error}"
    twin = net.live.probe.tcp("host", "pod2", gateway, OTHER, listen_port=CONTAINER_PORT)
    assert twin, f"host -> {gateway}:{OTHER} (a mapping without hostIP) -> pod2:{CONTAINER_PORT}: {twin.error}"
    net.live.probe.listen(Port("pod1", "eth0"))
    elsewhere = net.live.probe.tcp("host", "pod1", gateway, MAPPED, listen_port=CONTAINER_PORT, timeout=QUIET_WINDOW)
    segments = Ether() / IP(dst=address_of(pod1)) / TCP(dport=CONTAINER_PORT)
    strays = net.live.probe.expect_none(Port("pod1", "eth0"), segments)
    assert not elsewhere and strays == [], \
        f"host -> {gateway}:{MAPPED} reached pod1 though its mapping names hostIP {HOST_UPLINK}: {elsewhere}, " \
        f"{strays}\n" + net.live.probe.evidence(Port("pod1", "eth0"))


@pytest.mark.spec("SPEC-010", "CONV-003")
def test_a_udp_port_mapping_forwards_udp_and_a_tcp_one_does_not(portmap_chain, add_pod):
    """CONVENTIONS.md, ``portMappings``: ``protocol`` (tcp, udp). From the internet, a datagram to the host's
    MAPPED reaches pod1, which mapped it for udp, and its answer returns; the twin: pod2 maps OTHER for tcp
    only, which a TCP connection reaches, and a datagram to OTHER does not reach pod2's eth0."""
    net = portmap_chain
    net.attach(add_pod("pod1"), portMappings=[mapping(MAPPED, "udp")])
    pod2 = net.attach(add_pod("pod2"), portMappings=[mapping(OTHER, "tcp")])
    udp = net.live.probe.udp("internet", "pod1", HOST_UPLINK, MAPPED, listen_port=CONTAINER_PORT)
    assert udp, f"internet -> {HOST_UPLINK}:{MAPPED}/udp -> pod1:{CONTAINER_PORT}: {udp.error}"
    assert udp.server_saw[0] == ROUTER and udp.client_saw == (HOST_UPLINK, MAPPED), udp
    tcp = net.live.probe.tcp("internet", "pod2", HOST_UPLINK, OTHER, listen_port=CONTAINER_PORT)
    assert tcp, f"internet -> {HOST_UPLINK}:{OTHER}/tcp -> pod2:{CONTAINER_PORT}: {tcp.error}"
    net.live.probe.listen(Port("pod2", "eth0"))
    stray = net.live.probe.udp("internet", "pod2", HOST_UPLINK, OTHER, listen_port=CONTAINER_PORT,
                               timeout=QUIET_WINDOW)
    datagrams = Ether() / IP(dst=address_of(pod2)) / UDP(dport=CONTAINER_PORT)
    strays = net.live.probe.expect_none(Port("pod2", "eth0"), datagrams)
    assert not stray and stray.server_saw is None and strays == [], \
        f"a datagram to {HOST_UPLINK}:{OTHER} reached pod2, whose mapping is tcp only: {stray}, {strays}"


# ---------------------------------------------------------------- host-local: ipRanges and ips

@pytest.fixture
def host_local_chain(request, cni_network, cni_config, cni_path):
    backend_class, network = cni_network
    if backend_class.NAME != "cni" or "host-local" not in ipam_checks(request.config, cni_config, network,
                                                                       smallest=True):
        pytest.skip("host-local's capabilities are checked in the smallest configuration delegating to it")
    return request.getfixturevalue("cni")


def kernel_ipv4(live, pod: str) -> list[str]:
    return sorted(a for a in live.addresses(pod, "eth0") if ":" not in a)


@pytest.mark.spec("SPEC-010", "CONV-003")
def test_host_local_gives_the_address_and_range_the_ips_and_ip_ranges_capabilities_ask(request, host_local_chain,
                                                                                        chains, add_pod):
    """CONVENTIONS.md, Dynamic Plugin specific fields: ``ipRanges`` ("Dynamically configure the IP range(s)
    for address allocation"; host-local prepends them to its ranges: a pod gets an address of each, issue
    containernetworking/plugins#95) and ``ips`` ("Dynamically allocate IPs for
    container interface"), declared by the interface plugin, whose runtimeConfig reaches its host-local.
    pod1 asks a range of the configuration's size 16 subnets up, pod2 the configured range's 77th address;
    each gets it, in its result and on its eth0; the twin, pod3 asking nothing, gets neither. A bridge is no
    gateway here: with two IPv4 ranges it would need two IPv4 gateways, and it keeps one per bridge."""
    subnet = next((s for s, _ in expect.subnets(host_local_chain.network, 4)), None)
    if subnet is None:
        pytest.skip("no IPv4 range in the chain's host-local")
    moved = ipaddress.ip_network(f"{subnet.network_address + 16 * subnet.num_addresses}/{subnet.prefixlen}")
    wanted = f"{subnet.network_address + 77}/{subnet.prefixlen}"

    def capable(plugins):
        plugins[0]["capabilities"] = {**(plugins[0].get("capabilities") or {}), "ipRanges": True, "ips": True}
        if plugins[0]["type"] == "bridge":  # the bridge holds one IPv4 gateway (ensureAddr refuses a second)
            plugins[0]["isGateway"] = plugins[0]["isDefaultGateway"] = False
    net = chains(host_local_chain, capable)
    pods = {"pod1": net.attach(add_pod("pod1"), ipRanges=[[{"subnet": str(moved)}]]),
            "pod2": net.attach(add_pod("pod2"), ips=[wanted]),
            "pod3": net.attach(add_pod("pod3"))}
    given = {pod: sorted(a for a in attachment.addresses() if ":" not in a) for pod, attachment in pods.items()}
    seen = {pod: kernel_ipv4(net.live, pod) for pod in pods}
    in_moved = lambda addresses: [a for a in addresses if ipaddress.ip_interface(a).ip in moved]  # noqa: E731
    problems = []
    if not in_moved(given["pod1"]) or not in_moved(seen["pod1"]):
        problems.append(f"pod1 asked ipRanges [[{moved}]]: its result gives {given['pod1']}, its eth0 has "
                        f"{seen['pod1']}")
    if wanted not in given["pod2"] or wanted not in seen["pod2"]:
        problems.append(f"pod2 asked ips [{wanted}]: its result gives {given['pod2']}, its eth0 has {seen['pod2']}")
    if in_moved(seen["pod3"]) or wanted in seen["pod3"]:  # the twin: without the arguments, neither
        problems.append(f"pod3 asked nothing, yet its eth0 has {seen['pod3']} ({moved}, or {wanted})")
    verdict(request, net, "capability-ips-ip-ranges", net.network.cni_version, {"host-local": problems})


# ---------------------------------------------------------------- the well-known dns key

DNS = {"nameservers": ["192.0.2.53"], "domain": "netconform.test", "search": ["netconform.test"],
       "options": ["ndots:2"]}
# The interface plugins of containernetworking/plugins whose ADD puts the configuration's dns in its result
# (bridge.go, ptp.go, macvlan.go, ipvlan.go, vlan.go: result.DNS = n.DNS); another type claims nothing.
REPORTS_DNS = ("bridge", "ptp", "macvlan", "ipvlan", "vlan")


@pytest.fixture
def interface_chain(request, cni_network, cni_config, cni_path):
    backend_class, network = cni_network
    if backend_class.NAME == "cni" and network.types[0] not in REPORTS_DNS:
        pytest.skip(f"{network.types[0]}: the harness does not know whether it reports the dns key")
    return checked_here(request, cni_network, cni_config, cni_path, network.types[0])


@pytest.mark.spec("SPEC-010")
def test_the_interface_plugin_reports_the_dns_its_configuration_gives(request, interface_chain, chains, add_pod):
    """SPEC.md 1.0.0, Plugin configuration objects, well-known keys: ``dns`` (nameservers, domain, search,
    options), which the runtime reads back from the result (Section 5, Result: ``dns``). pod2, on a sibling
    chain whose interface plugin is given DNS, has it in its result, unchanged; the twin, pod1 on the chain
    under test (no dns key), has none of it."""
    def with_dns(plugins):
        plugins[0]["dns"] = DNS
    sibling = chains(interface_chain, with_dns, sibling=True)
    pod1 = interface_chain.attach(add_pod("pod1"))
    pod2 = sibling.attach(add_pod("pod2"))
    given = {key: value for key, value in (pod2.result.get("dns") or {}).items() if value}
    problems = [] if given == DNS else [f"its configuration's dns is {DNS}, pod2's result says {given}"]
    twin = pod1.result.get("dns") or {}
    if any(DNS[key] == twin.get(key) for key in DNS):
        problems.append(f"pod1's chain has no dns key, yet its result says {twin}")
    plugin = interface_chain.network.types[0]
    verdict(request, interface_chain, "dns-key", interface_chain.network.cni_version, {plugin: problems})
