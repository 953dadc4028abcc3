"""The CNI spec (SPEC.md of containernetworking/cni, spec-v0.4.0, -v1.0.0, -v1.1.0) on a pod's
attachments: ADD into a name the pod already has, more than one attachment per container, and DEL
after the pod's network namespace is gone (kubelet's usual order).

These rules depend on the plugin that makes the pod's interface, not on the chain after it nor on the
cniVersion: each runs once per interface plugin type on one representative bundled profile
(REPRESENTATIVE), in the cniVersion the fixtures ask it (the profile's, or the newest an older
build claims), and on every ``--cni-conf`` the user gives. Each test names its statements
(``pytest.mark.spec``, harness/cni/spec/statements.yaml); a failed SHOULD is a deviation at
SHOULD level (fixtures/spec.py).
"""
import os

import pytest

from harness.cni import derived, expect
from harness.cni.conf import bundled_profiles
from harness.cni.reality import leftovers, mismatches, snapshot
from harness.cni.runtime import CniError, evidence
from harness.kernel.constants import RTMGRP_LINK
from harness.kernel.netops import NetlinkWatch
from harness.probe import DEADLINE, QUIET_WINDOW
from pytest_netconform.deviations import verdict

pytestmark = pytest.mark.area("CNI spec")

# One bundled profile per interface plugin type: the rules here are the interface plugin's (and its
# IPAM's, host-local in all of them).
REPRESENTATIVE = {"bridge": "bridge-host-local", "ptp": "ptp", "macvlan": "macvlan-bridge", "ipvlan": "ipvlan-l2"}
SQUATTER_MAC = "02:00:5e:00:53:27"  # the link already in the pod, and its address (TEST-NET-3)
SQUATTER_ADDRESS = ("203.0.113.27", 32)


def representative(request, cni_network, cni_config) -> str | None:
    """Why this configuration is not the one these rules run on (a skip reason), or None."""
    backend_class, network = cni_network
    if backend_class.NAME != "cni":
        return f"{network.profile}: backend {backend_class.NAME!r} is not a CNI plugin chain"
    if cni_config not in bundled_profiles():
        return None  # the user's own configuration (--cni-conf) or a corpus file: always
    kind, name = expect.kind(network), os.path.basename(cni_config).rsplit(".", 1)[0]
    if REPRESENTATIVE.get(kind) != name:
        return f"{name}: the rule is the interface plugin's; {kind} runs it on " \
               f"{REPRESENTATIVE.get(kind, 'no bundled profile')}"
    return None


@pytest.fixture
def net(request, cni_network, cni_config, cni_path):  # cni_path: parametrized by --impl
    """The backend under test, on a representative profile only (decided before any lab is built)."""
    reason = representative(request, cni_network, cni_config)
    if reason:
        pytest.skip(reason)
    return request.getfixturevalue("cni")


def link_state(live, pod: str, name: str) -> tuple | None:
    """(ifindex, kind, MAC, addresses) of ``name`` in ``pod``, or None when it has no such link."""
    links = {m.get_attr("IFLA_IFNAME"): m for m in live.ipr(pod).get_links()}
    link = links.get(name)
    if link is None:
        return None
    info = link.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info else None
    return link["index"], kind, link.get_attr("IFLA_ADDRESS"), sorted(live.addresses(pod, name))


def reserved(net, address: str) -> bool:
    """Whether the plugins' state directory holds a file named by ``address`` (host-local's reservation)."""
    return any(f.startswith("state: file ") and f.endswith(f"/{address}")
               for f in snapshot(net.live, net.state_dir).facts)


def forget_neighbour(live, node: str, address: str) -> None:
    """Delete ``node``'s neighbour entries for ``address`` (as `ip neigh del`), if it has any."""
    ipr = live.ipr(node)
    for entry in ipr.get_neighbours(dst=address):
        ipr.neigh("del", dst=address, ifindex=entry["ifindex"])


def beside(request, net, network, state):
    """A backend for ``network`` on ``net``'s lab, with the same plugins and catalogue build (whose
    expectations apply), its own state directory; closed after the test."""
    state.mkdir()
    backend = type(net)(net.live, network, str(state), path=net.path)
    backend.build = net.build
    request.addfinalizer(backend.close)
    return backend


def holder(network) -> str:
    """The node that holds the pod's gateway: the host, or the uplink's router (the lab's internet)."""
    return "internet" if expect.gateway_owner(network) == "uplink" else "host"


# ---------------------------------------------------------------- ADD into an existing name
@pytest.mark.spec("SPEC-027", "SPEC-022", "SPEC-023", "SPEC-123")
def test_add_into_an_ifname_the_pod_has_fails_and_leaves_that_link(net, add_pod):
    """SPEC.md ADD (1.0.0): "If an interface of the requested name already exists in the container, the
    CNI plugin MUST return with an error." The twin: the same ADD with a free name succeeds."""
    if net.network.cni_version == "0.4.0":
        pytest.skip("SPEC-027 is 1.0.0's: CNI 0.4.0 says nothing of an existing CNI_IFNAME")
    ipr = net.live.ipr(add_pod("pod1"))
    # A veth (its peer in the pod too): this kernel may lack dummy, and any kind of link is a name taken.
    ipr.link("add", ifname="eth0", kind="veth", peer="squat0", address=SQUATTER_MAC)
    index = net.live.ifindex("pod1", "eth0")
    ipr.addr("add", index=index, address=SQUATTER_ADDRESS[0], prefixlen=SQUATTER_ADDRESS[1])
    ipr.link("set", index=index, state="up")
    before = link_state(net.live, "pod1", "eth0")
    # The plugin that makes the interface, exec'd alone: through Runtime.add, the DEL the runtime owes
    # after a failed ADD (SPEC-083) would remove eth0 by its name before the link could be read.
    first = net.network.plugins[0]
    run = net.runtime.exec("ADD", first["type"], net.runtime.prepare(net.network, first, None, None),
                           net.container_id("pod1"), net.netns_path("pod1"), "eth0")
    if run.returncode == 0 and not run.problem:
        pytest.fail(f"SPEC-027: ADD with CNI_IFNAME eth0, which pod1 already has ({before}), succeeded:\n"
                    f"{evidence([run])}", pytrace=False)
    assert run.returncode not in (0, None), f"SPEC-022: {run.describe()}"
    assert run.error is not None and not run.problem, \
        f"SPEC-023, SPEC-123: not an error object on stdout: {run.describe()}\n{evidence([run])}"
    after = link_state(net.live, "pod1", "eth0")
    assert after == before, f"SPEC-027: the refused ADD changed pod1's own eth0: {before} -> {after}\n{evidence([run])}"
    attachment = net.attach("pod1", "eth1")  # the twin: a free name
    assert link_state(net.live, "pod1", "eth1") is not None and not mismatches(net.live, attachment), \
        f"ADD with the free name eth1: {mismatches(net.live, attachment)}"


# ---------------------------------------------------------------- a delegated plugin fails during ADD
@pytest.mark.spec("SPEC-109", "SPEC-110", "SPEC-022", "SPEC-023")
def test_an_add_whose_ipam_fails_returns_the_error_and_leaves_nothing_of_the_pod(request, net, add_pod, tmp_path):
    """SPEC.md 1.0.0, Delegated plugins: "If any of the delegated plugins return error, error should be
    returned by the upper plugin", and "If, on ADD, a delegated plugin fails, the "upper" plugin should
    execute again with DEL before returning failure". host-local narrowed to one address: pod1 takes it
    (the twin: the same ADD succeeds while an address is free); the interface plugin's ADD for pod2, exec'd
    alone (a runtime's DEL after the failure, SPEC-083, would hide what the plugin itself left), must fail
    with an error object and leave nothing of pod2: no link in it, no host end, nothing reserved."""
    if net.network.cni_version in ("0.3.0", "0.3.1", "0.4.0"):
        pytest.skip(f"SPEC-109 and SPEC-110 are 1.0.0's: CNI {net.network.cni_version} says nothing of delegation")
    narrow = derived.one_address(net.network)
    if narrow is None:
        pytest.skip(f"{expect.kind(net.network)}: its IPAM is not host-local with one range (nothing to exhaust)")
    backend = beside(request, net, narrow, tmp_path / "one-address-state")
    backend.attach(add_pod("pod1"))
    # pod2's namespace before the snapshot: what the kernel gives a new one (lo; tunl0 and the other fallback
    # tunnels where their modules are loaded, as in a VM that ran the Calico IPIP suite) is not the ADD's.
    pod2 = add_pod("pod2")
    before = snapshot(net.live, backend.state_dir)
    first = narrow.plugins[0]
    run = backend.runtime.exec("ADD", first["type"], backend.runtime.prepare(narrow, first, None, None),
                               backend.container_id(pod2), backend.netns_path(pod2), "eth0")
    problems = []
    if run.returncode == 0 and not run.problem:
        problems.append(f"SPEC-109: ADD succeeded though host-local had no address left: {run.describe()}")
    elif run.error is None or run.problem:
        problems.append(f"SPEC-023, SPEC-123: not an error object on stdout: {run.describe()}")
    left = leftovers(net.live, before)
    # A link left behind is one leftover: its own link-local address and route are named with it.
    links = {(fact.split(":")[0], fact.split()[2]) for fact in left if fact.split()[1] == "link"}
    problems += [f"SPEC-110: the failed ADD left {fact}" for fact in left
                 if fact.split()[1] == "link" or (fact.split(":")[0], fact.split()[-1]) not in links
                 and (fact.split(":")[0], fact.split()[-3] if fact.split()[1] == "route" else "") not in links]
    verdict(request, backend, "ipam-fails-during-add", narrow.cni_version,
            {first["type"]: problems + [evidence([run])] if problems else []})


# ---------------------------------------------------------------- more than one attachment
@pytest.fixture(params=["same-network", "another-network"])
def second(request, net, tmp_path):
    """What the pod's second attachment (eth1) is made by: the network under test again, or a second
    network derived from it (another name, bridge and subnet: harness.cni.derived)."""
    if request.param == "same-network":
        return net
    if expect.attached_to_uplink(net.network):
        pytest.skip(f"{expect.kind(net.network)} pods sit on the uplink's segment: no second network to reach")
    other = derived.sibling(net.network)
    clash = derived.overlaps(net.network, other)
    if clash:
        pytest.skip(f"cannot derive a second network apart from this one: {', '.join(clash)} overlaps it")
    return beside(request, net, other, tmp_path / "second-state")


@pytest.mark.spec("SPEC-029", "SPEC-139", "SPEC-197")
def test_a_second_attachment_has_its_own_interface_and_del_of_it_leaves_the_first(request, net, second, add_pod):
    """SPEC.md ADD: a container may be added to a network more than once, each time with another
    interface name; 0.4.0: plugins key their state by (network name, CNI_CONTAINERID, CNI_IFNAME), and
    should skip a default route another network has already configured. So the second ADD succeeds,
    each address is on its own interface, and DEL of eth1 takes only eth1's: eth0 still answers on the
    wire, eth1's address no longer does (the twin)."""
    first = net.attach(add_pod("pod1"), "eth0")
    try:
        other = second.attach("pod1", "eth1")
    except CniError as exc:
        if second is net:  # SPEC-029 permits the runtime this; no statement makes a plugin accept it
            pytest.skip(f"{net.network.name} refuses a second attachment of one container (no statement "
                        f"requires it to accept one; SPEC-139 cannot be judged): {exc}")
        raise AssertionError(f"SPEC-197: ADD of pod1's second interface eth1 ({second.network.name}) "
                             f"was refused: {exc}\n{evidence([exc.run] if exc.run else [])}") from None
    for attachment in (first, other):
        wrong = mismatches(net.live, attachment)
        assert not wrong, f"SPEC-139: {attachment.ifname}'s result is not what is there: {wrong}"
    kept, gone = first.addresses()[0].split("/")[0], other.addresses()[0].split("/")[0]
    assert kept != gone, f"SPEC-139: eth0 and eth1 of one container were given the same address {kept}"
    near, far = holder(net.network), holder(second.network)
    for node, address in ((near, kept), (far, gone)):
        ping = net.live.probe.ping(node, address)
        assert ping, f"{node} -> pod1 {address} before any DEL: {ping.error}"
    try:
        second.detach("pod1", "eth1")
    except CniError as exc:  # e.g. state (an iptables chain) keyed by container alone, still used by eth0
        verdict(request, second, "second-ifname-del", second.network.cni_version,
                {exc.run.plugin if exc.run else "the chain": [f"SPEC-139: DEL of pod1's eth1 was refused: {exc}",
                                                              evidence([exc.run] if exc.run else [])]})
    have = link_state(net.live, "pod1", "eth0")
    assert have and set(first.addresses()) <= set(have[3]), \
        f"SPEC-139: DEL of eth1 changed eth0: it has {have}, ADD gave {first.addresses()}"
    if second is net:  # one network, one state directory: eth0's reservation stays, eth1's goes
        assert reserved(net, kept) and not reserved(net, gone), \
            f"SPEC-139: after DEL of eth1, {kept} (eth0) reserved: {reserved(net, kept)}, {gone} (eth1) " \
            f"reserved: {reserved(net, gone)}"
    # ARP flux: with two interfaces on one subnet, either may have answered the host for either address
    # (arp_ignore 0, the kernel's default), so the host may still hold eth1's MAC for eth0's address. That
    # entry is the kernel's, not the plugin's: the host forgets it, and must then find eth0 again.
    forget_neighbour(net.live, near, kept)
    ping = net.live.probe.ping(near, kept)
    assert ping, f"SPEC-139: after DEL of eth1, {near} -> pod1's eth0 {kept}: {ping.error}"
    ping = net.live.probe.ping(far, gone, timeout=QUIET_WINDOW)
    assert not ping, f"eth1's address {gone} still answers {far} after its DEL: {ping}"


# ---------------------------------------------------------------- DEL after the netns is gone
@pytest.mark.spec("SPEC-033", "SPEC-035", "SPEC-152", "SPEC-032", "SPEC-031", "SPEC-147")
def test_del_after_the_netns_is_gone_succeeds_and_releases_what_add_made(request, net, add_pod):
    """SPEC.md DEL: an IPAM plugin should release an allocation and return success even if the
    container network namespace no longer exists; the bridge plugin should delegate DEL to IPAM and
    clean up its own resources even if the namespace and interface no longer exist. Kubelet's usual
    order: the sandbox's namespace goes, then DEL. The twin: what outlives the namespace before the DEL
    (the reservation at least), which the DEL must take away."""
    net.attach(add_pod("pod0"))  # the network's shared infrastructure (bridge, shared chains) exists
    before = snapshot(net.live, net.state_dir)
    attachment = net.attach(add_pod("pod1"))
    peers = {f.split()[2] for f in leftovers(net.live, before) if f.startswith("host: link ") and "(veth)" in f}
    with NetlinkWatch(net.live.fd("host"), RTMGRP_LINK) as watch:
        net.live.delete_node("pod1")  # the kernel destroys a namespace's veths (and their host peers) later
        if not watch.wait_for(lambda: not peers & {m.get_attr("IFLA_IFNAME") for m in net.live.ipr("host").get_links()},
                              DEADLINE):
            pytest.fail(f"the lab: the host still has {peers}, the veth peers of pod1's deleted namespace "
                        "(not the plugin's doing)", pytrace=False)
    outlived = leftovers(net.live, before)
    if not outlived:  # e.g. an IPAM keeping its state in a dataDir of its own, and no masquerade
        pytest.skip("nothing of pod1's attachment outlived its namespace where the harness looks (links, "
                    "addresses, routes, iptables, the plugins' /var/lib/cni): the DEL after it cannot be judged")
    # Whose: the interface plugin's (SPEC-035: it "should delegate the DEL action to the IPAM plugin and
    # clean up its own resources"); known deviations are listed per implementation (the expectations files),
    # each leftover its own line, so that one not listed is a new failure.
    outlived_lines = [f"  before the DEL: {fact}" for fact in outlived]
    try:
        net.detach("pod1")
    except CniError as exc:
        verdict(request, net, "del-after-netns-gone", net.network.cni_version, {exc.run.plugin if exc.run else
                net.network.types[0]: [f"SPEC-032, SPEC-033, SPEC-035, SPEC-152: DEL of pod1 after its namespace "
                                       f"{attachment.netns} was deleted failed: {exc}",
                                       evidence([exc.run] if exc.run else []), *outlived_lines]})
        return
    left = leftovers(net.live, before)
    problems = [f"SPEC-033: DEL after the namespace went did not release the reservation: {fact}" if
                fact.startswith("state: ") else f"SPEC-035, SPEC-152: DEL after the namespace went left {fact}"
                for fact in left]
    verdict(request, net, "del-after-netns-gone", net.network.cni_version,
            {net.network.types[0]: problems + outlived_lines if problems else []})
