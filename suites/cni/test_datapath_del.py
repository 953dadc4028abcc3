"""DEL of a CNI implementation's pods, checked in the kernel of the cni-host lab (the datapath suite's last
check, beside suites/cni/test_datapath.py, on every profile or ``--cni-conf``): what ADD made for the pods
is seen, and after DEL nothing on the host names them, each pod's namespace is as before, and the host keeps
only the state its types share (harness/cni/semantics.yaml's ``kept``), where the harness knows it."""
import ipaddress
import os
import re

import pytest

from harness.cni import expect
from harness.cni.reality import nft_facts
from harness.kernel import state
from harness.kernel.constants import AF_INET, AF_INET6, RTPROT_KERNEL

from .test_datapath import PORT_MAPPINGS

pytestmark = pytest.mark.area("CNI datapath")


@pytest.fixture
def net(cni):
    """The implementation under test over a fresh lab (fixtures/cni.py: skipped when it cannot run here)."""
    return cni


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


def mapping_args(network) -> dict:
    """The port mappings the runtime passes (SPEC.md: to a chain that declares the capability)."""
    return {"portMappings": PORT_MAPPINGS} if expect.declares(network, "portMappings") else {}


def of_the_pods(entries, pods) -> list[str]:
    """The entries that name one of the pods: its container id or one of its addresses (either family)."""
    return [entry for entry in entries for pod in pods
            if pod.container_id in entry or any(re.search(rf"(?<![\w:.]){re.escape(address.split('/')[0])}(?![\w:])", entry)
                                                for address in pod.addresses())]


def test_del_removes_what_add_made_for_the_pods_and_keeps_only_the_shared_state(request, net, add_pod):
    """SPEC.md, DEL: the runtime's "delete a container from a network" undoes what ADD did for it. One ADD
    of two pods and their DELs serve three checks, each failure reported:
    - the snapshot sees what ADD made for the pods, on the host and each address in the pods (the twin
      that shows the checks after DEL can fail);
    - after DEL nothing on the host names the pods, and each pod's namespace is as it was before ADD;
    - the host keeps only what its types share (a bridge, shared chains: harness/cni/semantics.yaml's
      ``kept``), where the harness knows it; for a type it does not know, that check claims nothing (the
      run's other tests say so in one line; here the JUnit property ``not_checked``)."""
    host_before = snapshot(net.live, "host", net.state_dir)
    pods_before = {name: snapshot(net.live, add_pod(name)) for name in ("pod1", "pod2")}
    pods = [net.attach("pod1", **mapping_args(net.network)), net.attach("pod2")]
    added = snapshot(net.live, "host", net.state_dir) - host_before
    assert of_the_pods(added, pods), f"the host gained nothing that names the pods: {added}"
    for pod in pods:  # every address the result gave, of either family
        seen = snapshot(net.live, pod.pod)
        for address in pod.addresses():
            assert f"addr {ipaddress.ip_interface(address).with_prefixlen} dev {pod.ifname}" in seen, pod.result
    try:
        kept, unknown = expect.kept(net.network), None
    except expect.UnknownSemantics as exc:  # the other two checks need no semantics
        kept, unknown = None, str(exc)
    assert kept is None or [e for e in added if not any(re.fullmatch(k, e) for k in kept)], \
        f"the host gained nothing DEL must remove: {added}"
    for pod in pods:
        net.detach(pod.pod)
    left = snapshot(net.live, "host", net.state_dir) - host_before
    problems = [f"after DEL the host still has the pods' {theirs}" for theirs in [of_the_pods(left, pods)] if theirs]
    problems += [f"{name} still has {snapshot(net.live, name) - before}" for name, before in pods_before.items()
                 if snapshot(net.live, name) != before]
    unexpected = sorted(e for e in left if not any(re.fullmatch(k, e) for k in kept)) if kept is not None else []
    if unexpected:
        problems.append(f"after DEL the host kept more than the shared state {kept}: {unexpected}")
    assert not problems, "\n".join(problems)
    if unknown:
        request.node.user_properties.append(("not_checked", f"what the host keeps after DEL: {unknown}"))
