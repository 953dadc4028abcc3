"""The in-process builder: build, run, and teardown that leaves nothing (the pytest side, hooks and the
requires marker: tests/test_lab_hooks.py).

Every test runs in the plugin's sandbox (a private network namespace and a private
tmpfs on /run/netns), so an empty /run/netns before and after each test is the
proof that nothing was left behind.
"""
import contextlib
import copy
import os

import pytest

from harness.kernel import capabilities
from harness.lab.build import build
from harness.errors import BuildError, CapabilityMissing, LabError, NetconformError
from harness.lab.file import bundled_labs, lab_from_dict, load_lab
from harness.lab.model import HOST

NETNS = "/run/netns"


def netns_state():
    """(names in /run/netns, netns bind mounts under it): both empty when no lab stands."""
    with open("/proc/self/mountinfo") as handle:
        mounts = sorted(line.split()[4] for line in handle if line.split()[4].startswith(NETNS + "/"))
    return sorted(os.listdir(NETNS)), mounts


def open_fds():
    """(number of open fds, number of them that are sockets) of this process."""
    kinds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            kinds.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # the fd of the listing itself, closed already
            continue
    return len(kinds), sum(kind.startswith("socket:") for kind in kinds)


def one_line(message: str) -> str:
    assert message and "\n" not in message and "\r" not in message, f"not one line: {message!r}"
    assert "Traceback" not in message and 'File "' not in message, message
    return message


@pytest.fixture(autouse=True)
def nothing_left_behind():
    assert netns_state() == ([], []), "a lab was standing before the test"
    yield
    assert netns_state() == ([], []), "the test left namespaces behind"


# --- every bundled lab builds, tears down, and leaks nothing


@pytest.mark.parametrize("name", bundled_labs())
def test_bundled_lab_builds_and_tears_down_without_leaks(name):
    try:  # warm-up: lazy imports and caches open what they open once
        build(load_lab(name)).teardown()
    except CapabilityMissing as exc:  # as the lab fixtures do: a kernel without the link kind skips
        pytest.skip(f"lab {name}: {exc}")
    fds_before = open_fds()
    lab = load_lab(name)
    live = build(lab)
    try:
        assert live.nodes[0] == HOST
        assert sorted(os.listdir(NETNS)) == sorted(n for n in live.nodes if n != HOST)
        for node, ifname in lab.interfaces():
            assert live.ifindex(node, ifname) > 1, f"{node}/{ifname} missing"
        assert open_fds()[0] > fds_before[0], "a standing lab holds namespace fds and sockets"
    finally:
        live.teardown()
    assert netns_state() == ([], [])
    assert open_fds() == fds_before, "fds or sockets leaked by a build+teardown cycle"
    assert live.nodes == [] and live.closed
    live.teardown()  # a second teardown is harmless
    assert open_fds() == fds_before


# --- a build the kernel refuses halfway: one line, and nothing half-built


def two_node_lab(name: str, **ns2_extra) -> dict:
    """host bridge br0 with ns1 and ns2 on it; ``ns2_extra`` is merged into node ns2."""
    def member(n):
        return {"links": [{"name": f"veth-{n}", "kind": "veth", "addresses": [f"10.0.0.{n}/24"],
                           "peer": {"name": f"veth-{n}-br", "node": HOST, "master": "br0"}}]}
    data = {"lab": name, "nodes": {
        HOST: {"links": [{"name": "br0", "kind": "bridge", "addresses": ["10.0.0.254/24"]}]},
        "ns1": member(1), "ns2": member(2)}}
    for key, value in ns2_extra.items():
        ns2 = data["nodes"]["ns2"]
        ns2[key] = ns2.get(key, []) + value if key == "links" else value
    return data


REFUSED = [
    # (id, ns2 additions, build stage reached, "node ns2: <step>", the kernel's or tool's words, capability)
    ("iptables-unknown-target", {"iptables": ["-t nat -A POSTROUTING -j NO_SUCH_TARGET"]}, "firewall",
     "node ns2: iptables: ", "NO_SUCH_TARGET", "iptables"),
    ("nft-syntax-error", {"nftables": "table inet t { chain c { no such words } }\n"}, "firewall",
     "node ns2: nft: ", "Error", "nft"),
    ("onlink-gateway-on-a-down-link",
     {"links": [{"name": "veth-9", "kind": "veth", "up": False, "peer": {"name": "veth-9-br", "node": HOST}}],
      "routes": [{"dst": "default", "via": "10.9.9.9", "dev": "veth-9", "onlink": True}]},
     "routes", "node ns2: route default via 10.9.9.9: ", "Network is down", None),
    ("blackhole-route-with-dev", {"routes": [{"dst": "10.5.0.0/16", "type": "blackhole", "dev": "veth-2"}]},
     "routes", "node ns2: route 10.5.0.0/16: ", "Invalid argument", None),
    ("same-route-twice", {"routes": [{"dst": "10.5.0.0/16", "dev": "veth-2"}] * 2},
     "routes", "node ns2: route 10.5.0.0/16: ", "File exists", None),
    ("bridge-its-own-master", {"links": [{"name": "b2", "kind": "bridge", "master": "b2"}]},
     "ports and state", "node ns2: configure b2: ", "Too many levels of symbolic links", None),
    ("sysctl-the-kernel-lacks", {"sysctls": {"net.ipv4.no_such_knob": 1}},
     "sysctls", "node ns2: sysctl net.ipv4.no_such_knob: ", "No such file or directory", None),
]


def build_expecting(exc_type, data, steps):
    lab = lab_from_dict(copy.deepcopy(data), source="refused.yaml")
    with pytest.raises(exc_type) as info:
        build(lab, stage=lambda what: steps.append(what) or contextlib.nullcontext())
    return one_line(str(info.value))


@pytest.mark.parametrize(("extra", "stage", "step", "words", "capability"),
                         [pytest.param(*case[1:], id=case[0]) for case in REFUSED])
def test_kernel_refusal_is_one_line_and_leaves_nothing(extra, stage, step, words, capability):
    if capability and capabilities.missing(capability):
        pytest.skip(capabilities.missing(capability))
    data = two_node_lab("refused", **extra)
    build_expecting(BuildError, data, [])  # warm-up, as for the leak test
    fds_before = open_fds()
    steps: list[str] = []
    message = build_expecting(BuildError, data, steps)
    assert message.startswith("lab refused (refused.yaml): "), message
    assert step in message, message
    assert words in message, message
    assert steps[0] == "namespaces" and steps[-1] == stage, f"failed at {steps}, not halfway at {stage!r}"
    assert netns_state() == ([], []), "a refused build left namespaces behind"
    assert open_fds() == fds_before, "a refused build leaked fds or sockets"


# Validation lets these through and the build crashes with a bare Python exception.
CRASHES = [
    pytest.param({"iptables": ["-P INPUT"]}, id="iptables-policy-without-target"),
    pytest.param({"routes": [{"dst": "10.5.0.0/16", "dev": "veth-2", "table": "nosuch"}]}, id="route-table-name"),
    pytest.param({"routes": [{"dst": "2001:db8::/64", "via": "10.0.0.254"}]}, id="route-family-mismatch"),
    pytest.param({"fdb": [{"mac": "zz", "dev": "veth-2"}]}, id="fdb-mac-malformed"),
]


@pytest.mark.parametrize("extra", CRASHES)
def test_bad_lab_never_crashes_the_build(extra):
    with pytest.raises(NetconformError) as info:
        build(lab_from_dict(two_node_lab("crash", **extra), source="crash.yaml"))
    one_line(str(info.value))


def test_a_crashing_build_still_leaves_nothing():
    data = two_node_lab("crash", iptables=["-A INPUT -t"])
    with pytest.raises(Exception):  # IndexError today; a LabError once validation catches it
        build(lab_from_dict(data, source="crash.yaml"))
    assert netns_state() == ([], [])


# --- one sandbox, one holder per namespace name


def test_second_build_of_a_standing_lab_is_refused_and_the_first_survives():
    first = build(load_lab("001-vbridge"))
    try:
        standing = netns_state()
        assert standing[0] == ["ns1", "ns2", "ns3", "upstream"]
        for other in ("001-vbridge", "002-br0"):  # the same lab, and another lab with an ns1
            with pytest.raises(LabError) as info:
                build(load_lab(other))
            message = one_line(str(info.value))
            assert message.startswith(f"lab {other}: "), message
            assert "'ns1' already exists" in message and "holds that name" in message, message
            assert netns_state() == standing, "the refused build touched the first lab's names"
        ping = first.run("ns2", ["ping", "-c", "1", "-W", "5", "192.168.28.1"])
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert first.addresses("ns1", "veth-1") == ["192.168.28.1/24"]
    finally:
        first.teardown()
    assert netns_state() == ([], [])


# --- LiveLab.run and LiveLab.nodes


def link_names(done) -> set[str]:
    assert done.returncode == 0, done.stderr
    return {line.split(": ")[1].split("@")[0] for line in done.stdout.splitlines()}


def test_run_runs_inside_the_node_and_refuses_a_shell_string():
    with build(load_lab("001-vbridge")) as live:
        assert link_names(live.run("ns1", ["ip", "-o", "link"])) == {"lo", "veth-1"}
        assert {"vbridge", "veth-1-br", "veth-2-br"} <= link_names(live.run(HOST, ["ip", "-o", "link"]))
        with pytest.raises(TypeError, match="argument list"):
            live.run("ns1", "ip -o link")
        with pytest.raises(LabError) as info:
            live.run("ns9", ["true"])
        assert one_line(str(info.value)) == "lab 001-vbridge: no node 'ns9' (nodes: host, ns1, ns2, ns3, upstream)"


@pytest.mark.parametrize(("name", "nodes"), [
    ("000-bridge-abc", [HOST, "container-a", "container-b", "container-c"]),
    ("003-example1", [HOST, "ns1", "ns2"]),  # no host in the file: it is added, first
])
def test_nodes_lists_host_first_then_the_lab_in_order(name, nodes):
    with build(load_lab(name)) as live:
        assert live.nodes == nodes


def test_nodes_keeps_file_order_even_with_host_declared_last():
    data = {"lab": "order", "nodes": {
        "zeta": {"links": [{"name": "z0", "kind": "veth", "peer": {"name": "z1", "node": "alpha"}}]},
        "alpha": None,
        HOST: {"links": [{"name": "br0", "kind": "bridge"}]}}}
    with build(lab_from_dict(data)) as live:
        assert live.nodes == [HOST, "zeta", "alpha"]
        assert sorted(os.listdir(NETNS)) == ["alpha", "zeta"]
