"""The documents' own commands (harness/lab/data/shell/LAB.sh) build what the harness builds.

For each document lab the harness builds it (``builder.build``) and its state is read
back, namespace by namespace; then the script's build part runs with ``sh -e`` in a
scratch namespace standing in for the document's host (the node ``host``; every
``ip netns add`` is a node), its state is read the same way and the two are compared
with ``harness.kernel.state.differences``. The teardown part must then leave the scratch
namespace with nothing but ``lo`` and no named namespace. Negative twins prove that
the comparison and the teardown check each see a broken script.
"""
import os
import re

import pytest

from harness.kernel import capabilities
from harness.lab import docshell
from harness.kernel import nsutil, state
from harness.lab.build import build
from harness.lab.file import bundled_labs, load_lab
from harness.lab.model import HOST
from harness.kernel.netops import RTMGRP_LINK, NetlinkWatch, close_quietly, ipr_in, safe_close_fd

NETNS = nsutil.NETNS_RUN_DIR
SCRIPTS = docshell.scripts()
CLEANUP_TIMEOUT = 20.0  # seconds for the kernel to destroy the deleted namespaces' links
HEADER = re.compile(r'^# (?P<lab>\S+): document (?P<doc>\d{3}) \((?P<seed>\d{3}_[0-9a-f]{16}\.txt)\), section "[^"]+"')


def document_labs():
    return [name for name in bundled_labs() if load_lab(name).document]


def declared_macs(lab):
    """{node: names of the links whose MAC the lab fixes}."""
    macs = {}
    for node in lab.nodes:
        for link in node.links:
            if link.mac:
                macs.setdefault(node.name, set()).add(link.name)
            if link.peer is not None and link.peer.mac:
                macs.setdefault(link.peer.node or node.name, set()).add(link.peer.name)
    return macs


def skip_reason(lab):
    """The exact reason from capabilities.missing() for the first thing the lab needs and lacks."""
    needs = sorted({link.kind for node in lab.nodes for link in node.links})
    needs += ["iptables"] * any(node.iptables for node in lab.nodes)
    needs += ["nft"] * any(node.nftables for node in lab.nodes)
    return next((reason for reason in map(capabilities.missing, needs) if reason), None)


def harness_state(lab):
    macs = declared_macs(lab)
    live = build(lab)
    try:
        return {node: docshell.state(live.fd(node), macs.get(node, ())) for node in live.nodes}
    finally:
        live.teardown()  # frees the names in /run/netns for the script's `ip netns add`


def host_links(host):
    """{name: True when its peer is in another namespace} for the links of ``host``."""
    ipr = ipr_in(host)
    try:
        return {m.get_attr("IFLA_IFNAME"): m.get_attr("IFLA_LINK_NETNSID") is not None for m in ipr.get_links()}
    finally:
        close_quietly(ipr)


def leftovers(host):
    """What a teardown left: named namespaces, links but lo, routes, rules, firewall rules.

    The kernel destroys a deleted namespace asynchronously, and with it the peers of its
    veths here: with no named namespace left, wait (on link notifications) until no link
    of the host has a peer elsewhere."""
    found = [f"named namespace {name} left" for name in sorted(os.listdir(NETNS))]
    if not found:
        with NetlinkWatch(host, RTMGRP_LINK) as watch:
            watch.wait_for(lambda: not any(host_links(host).values()), CLEANUP_TIMEOUT)
    found += [f"link {name} left" for name in sorted(host_links(host)) if name != "lo"]
    left = docshell.state(host)
    found += [f"{section} left: {left[section]}" for section in ("routes", "rules", "neighbours", "fdb")
              if left[section]]
    found += [f"iptables left: {line}" for line in left["iptables"] if line.startswith("-A") or line.endswith(" DROP")]
    found += [f"nft rule left: {line.strip()}" for line in left["nft"]
              if line.strip() != "}" and not line.strip().startswith(("table ", "chain ", "type "))]
    return found


def run_script(lab, build_text, teardown_text):
    """({node: state} after the build part, leftovers after the teardown part), in a scratch host."""
    macs = declared_macs(lab)
    host = nsutil.create_netns()
    fds = {}
    try:
        with nsutil.entered(host):
            try:
                docshell.run(build_text, f"{lab.name}: build")
            except docshell.ScriptError:
                docshell.run(teardown_text, f"{lab.name}: teardown after a failed build", errexit=False)
                raise
        fds = {name: os.open(os.path.join(NETNS, name), os.O_RDONLY | os.O_CLOEXEC) for name in os.listdir(NETNS)}
        built = {HOST: docshell.state(host, macs.get(HOST, ()))}
        built.update({name: docshell.state(fd, macs.get(name, ())) for name, fd in fds.items()})
        for fd in fds.values():  # a held fd would keep its namespace (and its links) alive
            safe_close_fd(fd)
        fds = {}
        with nsutil.entered(host):
            docshell.run(teardown_text, f"{lab.name}: teardown")
        return built, leftovers(host)
    finally:
        for fd in fds.values():
            safe_close_fd(fd)
        for name in os.listdir(NETNS):  # whatever happened, leave no name for the next build
            nsutil.release_netns_name(name)
            os.unlink(os.path.join(NETNS, name))
        safe_close_fd(host)


@pytest.fixture(autouse=True)
def no_named_namespaces():
    assert os.listdir(NETNS) == [], "a lab was standing before the test"
    yield
    assert os.listdir(NETNS) == [], "the test left named namespaces behind"


# ------------------------------------------------------------------ the scripts as files

def test_every_document_lab_has_a_script():
    assert sorted(SCRIPTS) == sorted(document_labs())


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_names_its_document_and_has_both_parts(name):
    lab = load_lab(name)
    with open(SCRIPTS[name], encoding="utf-8") as handle:
        first = handle.readline()
    header = HEADER.match(first)
    assert header, f"{SCRIPTS[name]}: first line is not '# LAB: document NNN (SEED.txt), section \"...\"'"
    assert (header["lab"], header["doc"]) == (name, lab.document)
    assert header["seed"].startswith(lab.document + "_"), header["seed"]
    build_text, teardown_text = docshell.parts(SCRIPTS[name])
    assert docshell.commands(build_text) > 0 and docshell.commands(teardown_text) > 0
    run = [line for line in (build_text + teardown_text).splitlines() if line.strip() and not line.startswith("#")]
    assert not [line for line in run if line.startswith("sudo ")], "the scripts run as root, without sudo"


def test_parts_refuses_a_file_without_its_teardown_line(tmp_path):
    path = tmp_path / "no-teardown.sh"
    path.write_text("ip netns add ns1\n")
    with pytest.raises(docshell.ScriptError, match="exactly one line '#### teardown', found 0"):
        docshell.parts(str(path))


# ------------------------------------------------------------------ the script builds the lab

@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_builds_what_the_harness_builds_and_tears_it_down(name):
    lab = load_lab(name)
    reason = skip_reason(lab)
    if reason:
        pytest.skip(f"lab {name}: {reason}")
    expected = harness_state(lab)
    for node, ifname in lab.interfaces():  # the state really reads the lab
        assert ifname in expected[node]["links"], f"{node}/{ifname} missing from the harness build"
    got, left = run_script(lab, *docshell.parts(SCRIPTS[name]))
    assert state.differences(got, expected) == []
    assert left == []


# ------------------------------------------------------------------ negative twins

TWINS = [  # (lab, script line, its broken twin, the difference that must show)
    ("001-vbridge", "ip netns exec ns2 ip addr add 192.168.28.2/24 dev veth-2",
     "ip netns exec ns2 ip addr add 192.168.28.22/24 dev veth-2", "ns2 addresses"),
    ("004-macvlan-vepa", "ip link add link enp0s8 dev mac2 type macvlan mode vepa",
     "ip link add link enp0s8 dev mac2 type macvlan mode private", "pod-b links mac2"),
    ("004-macvlan-vepa", "ip netns exec switch bridge link set dev swp1 hairpin on", "", "switch links swp1"),
    ("000-routed-containers", "iptables -t nat -A POSTROUTING -s 10.0.2.0/24 -o eth0 -j MASQUERADE", "",
     "host iptables"),
    ("000-lpm", "ip rule add from 10.0.1.0/24 table 100", "", "host rules"),
    ("004-flannel-vxlan", "ip netns exec node2 ip link set cni0 mtu 1450",
     "ip netns exec node2 ip link set cni0 mtu 1400", "node2 links cni0"),
]


@pytest.mark.parametrize("name, line, twin, expected", TWINS, ids=[f"{t[0]}: {t[3]}" for t in TWINS])
def test_comparison_sees_a_broken_script(name, line, twin, expected):
    lab = load_lab(name)
    reason = skip_reason(lab)
    if reason:
        pytest.skip(f"lab {name}: {reason}")
    build_text, teardown_text = docshell.parts(SCRIPTS[name])
    assert build_text.count(line + "\n") == 1, f"{line!r} should be one line of {SCRIPTS[name]}"
    broken = build_text.replace(line + "\n", twin + "\n")
    if "rule add" in line:  # the teardown undoes what the twin no longer does
        teardown_text = teardown_text.replace("ip rule del from 10.0.1.0/24 table 100\n", "")
    got, _ = run_script(lab, broken, teardown_text)
    found = state.differences(got, harness_state(lab))
    assert any(difference.startswith(expected) for difference in found), found
    assert all("\n" not in difference for difference in found)


def test_teardown_check_sees_what_a_broken_teardown_leaves():
    lab = load_lab("001-vbridge")
    build_text, teardown_text = docshell.parts(SCRIPTS["001-vbridge"])
    broken = teardown_text.replace("ip link del vbridge\n", "").replace("iptables -t nat -F POSTROUTING\n", "")
    _, left = run_script(lab, build_text, broken)
    assert "link vbridge left" in left, left
    assert any(problem.startswith("iptables left: -A POSTROUTING") for problem in left), left


def test_a_failing_script_reports_one_line_and_leaves_nothing():
    lab = load_lab("002-veth-pair")
    build_text, teardown_text = docshell.parts(SCRIPTS["002-veth-pair"])
    with pytest.raises(docshell.ScriptError) as failure:
        run_script(lab, build_text + "ip netns exec ns1 ip addr add 192.168.1.1/24 dev no-such-link\n", teardown_text)
    message = str(failure.value)
    assert message.startswith("002-veth-pair: build failed (exit 1): ") and "\n" not in message, message
