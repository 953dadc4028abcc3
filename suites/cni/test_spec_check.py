"""The CNI spec's CHECK (SPEC.md of containernetworking/cni, spec-v0.4.0, -v1.0.0, -v1.1.0, Section 2,
"CHECK: Check container's networking is as expected") on what a plugin made, one resource at a time: the
plugin "must consult the prevResult to determine the expected interfaces and addresses" (SPEC-037), "should
return an error if other resources not tracked in the Result type [...] are missing" (SPEC-040: firewall
rules, traffic shaping controls, IP reservations), having called CHECK on its delegated IPAM (SPEC-044), and
"if it is aware of a condition where the container is generally unreachable" (SPEC-042). The pod's route and
the host-side veth are in the Result (its routes and interfaces): those are SPEC-039's.

Each check is of the plugin that owns the resource: portmap's DNAT rule, bandwidth's qdisc, host-local's
reservation (through the interface plugin that delegates to it), the interface plugin's route, host-side veth
and bridge. It runs once per binary, in the smallest chain of the run that holds it (pytest_netconform.cni.owners,
smallest=True), at the newest cniVersion the chain claims: what CHECK looks at is the binary's. One ADD,
then the twin first (CHECK of the untouched attachment passes), then the resource is removed, its absence read
back from the kernel or the file system, and CHECK of the owner alone is exec'd with the real prevResult. A
SHOULD that a build does not meet is a deviation at SHOULD level (its expectations file,
harness/impl/expectations/<build>.yaml).
"""
import copy
import dataclasses
import ipaddress
import os
import shlex

import pytest

from pytest_netconform.cni import ASKED_VERSION
from pytest_netconform.cni_select import (backend_class_of, id_of, ipam_checks, newest_claimed, owners,
                                          version_claims)
from pytest_netconform.cni_spec import PORTS, SPEC_VERSIONS, show
from pytest_netconform.deviations import verdict

pytestmark = pytest.mark.area("CNI spec")
VERSIONS = SPEC_VERSIONS


@pytest.fixture
def owning(request, cni_network, cni_config, cni_path):
    """owning(TYPE): the backend under test when this configuration is the smallest of the run that holds the
    plugin TYPE (None: the interface plugin, the chain's first), asked in the newest cniVersion it claims;
    otherwise a skip naming where TYPE is checked. Decided before any lab is built."""
    def make(plugin_type: str | None = None, ipam: bool = False):
        backend_class, network = cni_network
        if backend_class.NAME != "cni":
            pytest.skip(f"{network.profile}: backend {backend_class.NAME!r} is not a CNI plugin chain")
        runs = version_claims(network, cni_path)
        if any(runs[plugin] is None for plugin in network.types):
            return request.getfixturevalue("cni")  # which fails (or skips) naming what is missing
        newest = newest_claimed(runs, VERSIONS)
        if newest is None:
            pytest.skip(f"{network.profile}: its plugins claim none of {', '.join(VERSIONS)} in common")
        plugin_type = plugin_type or network.types[0]
        if ipam:  # an IPAM type: the smallest configuration delegating to it
            if plugin_type not in ipam_checks(request.config, cni_config, network, smallest=True):
                pytest.skip(f"{plugin_type}'s check is made in the smallest configuration delegating to it")
        else:
            if plugin_type not in network.types:
                pytest.skip(f"{network.profile}: no {plugin_type} in this chain")
            impl = request.getfixturevalue("cni_impl")
            build = impl[0].id if impl else None
            owner = owners(request.config, build, cni_path, newest, smallest=True).get(plugin_type)
            if owner is None:  # this chain cannot run here (the kernel lacks what a type needs)
                return request.getfixturevalue("cni")  # which skips saying why
            if owner != cni_config:
                pytest.skip(f"a check of {plugin_type}'s binary at cniVersion {newest}, made in "
                            f"{id_of(owner, backend_class_of(owner))}")
        if network.disable_check:
            pytest.skip("disableCheck: a runtime must not call CHECK for this network")
        request.node.stash[ASKED_VERSION] = newest
        chain = request.getfixturevalue("cni")
        chain.network = dataclasses.replace(chain.network, cni_version=newest)
        return chain
    return make


def attach(chain, pod: str):
    wanted = {cap for p in chain.network.plugins for cap, on in (p.get("capabilities") or {}).items() if on}
    return chain.attach(pod, **({"portMappings": PORTS} if "portMappings" in wanted else {}))


def check(chain, attachment, plugin_type: str, prev: dict | None = None):
    """CHECK of ``plugin_type`` alone for ``attachment``, with ``prev`` (the attachment's result) as prevResult."""
    plugin = next(p for p in chain.network.plugins if p["type"] == plugin_type)
    conf = chain.runtime.prepare(chain.network, plugin, prev or attachment.result, attachment.runtime_args)
    return chain.runtime.exec("CHECK", plugin_type, conf, attachment.container_id, attachment.netns, attachment.ifname)


def failed(run) -> bool:
    """Whether CHECK answered as a failure: non-zero, with the error object on stdout a failure carries."""
    return run.returncode not in (0, None) and not run.problem and run.error is not None


def twin(request, chain, attachment, plugin_type: str):
    """The negative twin: CHECK of the untouched attachment passes (else the test says why, and stops)."""
    run = check(chain, attachment, plugin_type)
    if run.returncode != 0 or run.problem:
        verdict(request, chain, "check-after-add", chain.network.cni_version,
                {plugin_type: [f"SPEC-043: CHECK of the untouched attachment failed: {run.describe()}", show([run])]})
    return run


def judged(request, chain, case: str, plugin_type: str, run, statements: str, what: str, evidence: str) -> None:
    """CHECK after ``what`` was removed must fail with an error object; else a problem naming ``statements``."""
    problems = [] if failed(run) else [f"{statements}: CHECK {'succeeded' if run.returncode == 0 else 'answered'} "
                                       f"after {what} ({evidence})", show([run])]
    verdict(request, chain, case, chain.network.cni_version, {plugin_type: problems})


def host_interface(attachment) -> str:
    """The host-side veth's name, from the result (the interface with no sandbox that is not a bridge)."""
    pods = {i.get("name") for i in attachment.result.get("interfaces", []) if i.get("sandbox")}
    names = [i["name"] for i in attachment.result.get("interfaces", []) if not i.get("sandbox")
             and i.get("name") not in pods]
    veths = [n for n in names if n.startswith("veth")]
    if not veths:
        pytest.skip(f"the result names no host-side veth: {names}")
    return veths[0]


# ---------------------------------------------------------------- SPEC-037: prevResult names what to expect
@pytest.mark.spec("SPEC-037")
def test_check_consults_prev_result_for_interfaces_and_addresses(request, owning, add_pod):
    """A prevResult naming an address the pod does not have, or an interface it does not have, must make the
    interface plugin's CHECK fail; the true prevResult passes (the twin): what CHECK expects comes from it."""
    chain = owning()
    plugin_type = chain.network.types[0]
    attachment = attach(chain, add_pod("pod1"))
    twin(request, chain, attachment, plugin_type)
    held = chain.live.addresses("pod1", "eth0")
    first = attachment.result["ips"][0]
    interface = ipaddress.ip_interface(first["address"])
    other = next(str(ipaddress.ip_interface(f"{a}/{interface.network.prefixlen}"))
                 for a in interface.network.hosts() if f"{a}/{interface.network.prefixlen}" not in held
                 and str(a) != first.get("gateway"))
    forged_address = copy.deepcopy(attachment.result)
    forged_address["ips"][0]["address"] = other
    forged_interface = copy.deepcopy(attachment.result)
    for entry in forged_interface["interfaces"]:
        if entry.get("sandbox") and entry.get("name") == attachment.ifname:
            entry["name"] = "netconform9"
    names = {m.get_attr("IFLA_IFNAME") for m in chain.live.ipr("pod1").get_links()}
    assert "netconform9" not in names and other not in held, (names, held)  # the pod has neither
    problems = []
    for what, prev in ((f"the address {other}, which pod1's eth0 does not hold ({held})", forged_address),
                       (f"the interface netconform9, which pod1 does not have ({sorted(names)})", forged_interface)):
        run = check(chain, attachment, plugin_type, prev)
        if not failed(run):
            problems += [f"SPEC-037: CHECK passed with a prevResult naming {what}", show([run])]
    verdict(request, chain, "check-prev-result", chain.network.cni_version, {plugin_type: problems})


# ---------------------------------------------------------------- SPEC-040: resources not in the Result
def dnat_rules(chain, address: str) -> list[str]:
    """The host's iptables nat rules that DNAT to ``address`` (portmap's, for the pod)."""
    done = chain.live.run("host", ["iptables", "-t", "nat", "-S"], check=True)
    return [line for line in done.stdout.splitlines() if "-j DNAT" in line and f"{address}:" in line]


@pytest.mark.spec("SPEC-040")
def test_check_fails_when_the_dnat_rule_is_gone(request, owning, add_pod):
    """portmap's DNAT rule (a firewall rule, not in the Result) deleted from the host: portmap's CHECK should fail."""
    chain = owning("portmap")
    attachment = attach(chain, add_pod("pod1"))
    twin(request, chain, attachment, "portmap")
    address = attachment.addresses()[0].split("/")[0]
    rules = dnat_rules(chain, address)
    if not rules:
        pytest.skip(f"no iptables DNAT rule to {address} on the host (a backend the harness does not read here)")
    for rule in rules:
        chain.live.run("host", ["iptables", "-t", "nat", "-D", *shlex.split(rule)[1:]], check=True)
    assert not dnat_rules(chain, address), dnat_rules(chain, address)
    run = check(chain, attachment, "portmap")
    judged(request, chain, "check-missing-dnat", "portmap", run, "SPEC-040", "its DNAT rule was deleted",
           f"deleted {rules}; iptables -t nat now has no DNAT to {address}")


SHAPING = ("tbf", "htb")  # the root qdiscs bandwidth shapes a host-side veth with (tbf up to 1.9.1, htb later)


def qdiscs(chain, name: str) -> list[str]:
    """The kinds of the qdiscs on the host's link ``name``."""
    ipr = chain.live.ipr("host")
    return sorted(q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(index=chain.live.ifindex("host", name)))


@pytest.mark.spec("SPEC-040")
def test_check_fails_when_the_shaping_qdisc_is_gone(request, owning, add_pod):
    """bandwidth's root qdisc shaping traffic to the pod (ingressRate; traffic shaping, not in the Result) deleted
    from the host-side veth: bandwidth's CHECK should fail."""
    chain = owning("bandwidth")
    own = next(p for p in chain.network.plugins if p["type"] == "bandwidth")
    if not (own.get("ingressRate") and own.get("ingressBurst")):
        pytest.skip("bandwidth's configuration asks no ingressRate and ingressBurst: no shaping qdisc is promised")
    attachment = attach(chain, add_pod("pod1"))
    twin(request, chain, attachment, "bandwidth")
    veth = host_interface(attachment)
    before = qdiscs(chain, veth)
    shaping = [kind for kind in before if kind in SHAPING]
    assert shaping, f"bandwidth made no shaping qdisc ({'/'.join(SHAPING)}) on {veth}, which ingressRate asks: {before}"
    chain.live.ipr("host").tc("del", index=chain.live.ifindex("host", veth), parent=0xFFFFFFFF)  # the root qdisc
    after = qdiscs(chain, veth)
    assert not set(after) & set(SHAPING), after
    run = check(chain, attachment, "bandwidth")
    judged(request, chain, "check-missing-qdisc", "bandwidth", run, "SPEC-040",
           f"the {shaping[0]} qdisc shaping {veth} was deleted", f"qdiscs on {veth} before {before}, after {after}")


def reservation(chain, address: str) -> str | None:
    """host-local's reservation of ``address``: the file named by it under the run's plugin state."""
    for directory, _, files in os.walk(chain.state_dir):
        if address in files:
            return os.path.join(directory, address)
    return None


@pytest.mark.spec("SPEC-040", "SPEC-044")
def test_check_fails_when_the_reservation_is_gone(request, owning, add_pod):
    """host-local's reservation (an IP reservation, not in the Result) removed: the interface plugin should call
    CHECK on its IPAM (SPEC-044), which should fail; so should the interface plugin's."""
    chain = owning("host-local", ipam=True)
    if any((p.get("ipam") or {}).get("dataDir") for p in chain.network.plugins):
        pytest.skip("host-local's dataDir is set: the harness reads reservations under the run's own /var/lib/cni only")
    plugin_type = chain.network.types[0]
    attachment = attach(chain, add_pod("pod1"))
    twin(request, chain, attachment, plugin_type)
    address = attachment.addresses()[0].split("/")[0]
    path = reservation(chain, address)
    assert path is not None, f"host-local keeps no file named {address} under {chain.state_dir}"
    with open(path) as handle:
        held = handle.read()
    assert attachment.container_id in held, f"{path} holds {held!r}, not {attachment.container_id}"
    os.unlink(path)
    assert reservation(chain, address) is None
    run = check(chain, attachment, plugin_type)
    judged(request, chain, "check-missing-reservation", plugin_type, run, "SPEC-040, SPEC-044",
           f"host-local's reservation of {address} was removed", f"{path}, which held {held!r}, is gone")


# ---------------------------------------------------------------- the interface plugin's own resources
@pytest.mark.spec("SPEC-039")
def test_check_fails_when_the_route_in_the_pod_is_gone(request, owning, add_pod):
    """The pod's route the result lists (a Result resource, made by the interface plugin with its IPAM's routes),
    deleted inside the pod: the interface plugin's CHECK should fail."""
    chain = owning()
    plugin_type = chain.network.types[0]
    attachment = attach(chain, add_pod("pod1"))
    twin(request, chain, attachment, plugin_type)
    listed = [r for r in attachment.result.get("routes", []) if ipaddress.ip_network(r["dst"]).prefixlen == 0
              and ipaddress.ip_network(r["dst"]).version == 4]
    if not listed:
        pytest.skip(f"{chain.network.profile}: the result lists no IPv4 default route")
    ipr = chain.live.ipr("pod1")
    defaults = lambda: [r for r in ipr.get_routes(family=2, table=254) if r["dst_len"] == 0]  # noqa: E731
    assert defaults(), "the pod has no IPv4 default route, which the result lists"
    for route in defaults():
        ipr.route("del", dst="0.0.0.0/0", gateway=route.get_attr("RTA_GATEWAY"), oif=route.get_attr("RTA_OIF"))
    assert not defaults(), defaults()
    run = check(chain, attachment, plugin_type)
    judged(request, chain, "check-missing-route", plugin_type, run, "SPEC-039", "the pod's default route was deleted",
           f"the result lists {listed}; pod1's main table has no default route now")


@pytest.mark.spec("SPEC-039")
def test_check_fails_when_the_host_side_veth_is_gone(request, owning, add_pod):
    """The host-side veth moved out of the host (the pod's eth0 stays, its peer now elsewhere): the interface
    plugin's CHECK should fail."""
    chain = owning()
    plugin_type = chain.network.types[0]
    attachment = attach(chain, add_pod("pod1"))
    veth = host_interface(attachment)
    twin(request, chain, attachment, plugin_type)
    add_pod("elsewhere")
    chain.live.ipr("host").link("set", index=chain.live.ifindex("host", veth), net_ns_fd=chain.live.fd("elsewhere"))
    host = {m.get_attr("IFLA_IFNAME") for m in chain.live.ipr("host").get_links()}
    pod = {m.get_attr("IFLA_IFNAME") for m in chain.live.ipr("pod1").get_links()}
    assert veth not in host and attachment.ifname in pod, (host, pod)
    run = check(chain, attachment, plugin_type)
    judged(request, chain, "check-missing-host-veth", plugin_type, run, "SPEC-039",
           f"the host-side veth {veth} left the host",
           f"the host's links {sorted(host)}; pod1 keeps {attachment.ifname}")


def bridge_of(chain) -> str | None:
    return chain.network.plugins[0].get("bridge") if chain.network.types[0] == "bridge" else None


@pytest.mark.parametrize("condition", ["host-veth-down", "bridge-removed"])
@pytest.mark.spec("SPEC-042")
def test_check_fails_when_the_pod_is_unreachable(request, owning, add_pod, condition):
    """The pod cut off from the host (its host-side veth set down, or the bridge it hangs on deleted): a
    condition the interface plugin knows of, so its CHECK should fail."""
    chain = owning()
    plugin_type = chain.network.types[0]
    if condition == "bridge-removed" and bridge_of(chain) is None:
        pytest.skip(f"{chain.network.profile}: {plugin_type} attaches the pod to no bridge")
    attachment = attach(chain, add_pod("pod1"))
    veth = host_interface(attachment)
    twin(request, chain, attachment, plugin_type)
    ipr = chain.live.ipr("host")
    if condition == "host-veth-down":
        ipr.link("set", index=chain.live.ifindex("host", veth), state="down")
        flags = ipr.get_links(chain.live.ifindex("host", veth))[0]["flags"]
        assert not flags & 1, f"{veth} is still up (flags {flags:#x})"
        what, evidence = f"its host-side veth {veth} was set down", f"{veth} flags {flags:#x} (IFF_UP clear)"
    else:
        bridge = bridge_of(chain)
        ipr.link("del", index=chain.live.ifindex("host", bridge))
        host = {m.get_attr("IFLA_IFNAME") for m in ipr.get_links()}
        assert bridge not in host and veth in host, host
        what, evidence = f"the bridge {bridge} was deleted", f"the host's links {sorted(host)}"
    run = check(chain, attachment, plugin_type)
    judged(request, chain, f"check-unreachable-{condition}", plugin_type, run, "SPEC-042", what, evidence)
