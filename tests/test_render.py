"""harness.lab.script and harness.lab.topology: the shell reproducer builds what the harness builds; the diagrams name everything.

Each lab is built twice: by ``builder.build`` and by running ``script.shell_script``
with ``sh`` in a scratch "host" namespace. Both are read back over netlink (pyroute2),
plus sysctls, iptables-save and nft, and compared node by node.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

from harness.kernel import nsutil
from harness.lab import script, topology
from harness.lab.build import build
from harness.errors import CapabilityMissing
from harness.lab.file import bundled_labs, lab_from_dict, load_lab
from harness.lab.live import BR_NETFILTER_SYSCTLS
from harness.lab.model import HOST
from harness.kernel.netops import close_quietly, ipr_in, safe_close_fd

AF_INET, AF_BRIDGE = 2, 7
IFF_UP, RTNH_F_ONLINK, NUD_PERMANENT = 0x1, 0x4, 0x80
INFO_KEYS = {  # the IFLA_INFO_DATA attributes a lab decides, per kind
    "bridge": ("IFLA_BR_STP_STATE", "IFLA_BR_AGEING_TIME", "IFLA_BR_FORWARD_DELAY", "IFLA_BR_VLAN_FILTERING"),
    "vxlan": ("IFLA_VXLAN_ID", "IFLA_VXLAN_PORT", "IFLA_VXLAN_LEARNING", "IFLA_VXLAN_GROUP", "IFLA_VXLAN_LOCAL",
              "IFLA_VXLAN_LINK"),
    "macvlan": ("IFLA_MACVLAN_MODE",), "ipvlan": ("IFLA_IPVLAN_MODE",), "vlan": ("IFLA_VLAN_ID",),
    "vrf": ("IFLA_VRF_TABLE",), "tun": ("IFLA_TUN_TYPE", "IFLA_TUN_PI"),
}
PORT_KEYS = ("IFLA_BRPORT_LEARNING", "IFLA_BRPORT_UNICAST_FLOOD", "IFLA_BRPORT_MODE", "IFLA_BRPORT_ISOLATED",
             "IFLA_BRPORT_COST")
SCRIPT_TIMEOUT = 60

# Labs beyond the bundled ones, for the commands those never use. A kind this kernel lacks skips its lab.
NFT = "table inet lab {\n  chain input {\n    type filter hook input priority 0; policy accept;\n" \
      "    tcp dport 22 counter accept\n  }\n}\n"
L3_LAB = {"lab": "render-l3", "nodes": {
    "host": {"links": [{"name": "h-r1", "kind": "veth", "addresses": ["10.1.0.1/24"], "mtu": 1400,
                        "peer": {"name": "r1-h", "node": "r1", "addresses": ["10.1.0.2/24"], "mtu": 1400,
                                 "mac": "02:00:00:00:01:02"}}],
             "sysctls": {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 2},
             "routes": [{"dst": "10.2.0.0/24", "via": "10.1.0.2", "metric": 50}],
             "iptables": ["-N LAB", "-A LAB -m comment --comment lab-chain -j ACCEPT",
                          "-I FORWARD 1 -s 10.1.0.0/24 -j LAB", "-P FORWARD DROP",
                          "-t nat -A POSTROUTING -o h-r1 -j MASQUERADE"],
             "rules": [{"from": "10.1.0.0/24", "table": 100, "priority": 900}], "nftables": NFT},
    "r1": {"links": [{"name": "r1-r2", "kind": "veth", "addresses": ["10.2.0.1/24"], "up": True,
                      "peer": {"name": "r2-r1", "node": "r2", "addresses": ["10.2.0.2/24"], "up": False}}],
           "routes": [{"dst": "default", "via": "10.1.0.1", "metric": 100},
                      {"dst": "10.9.0.0/16", "type": "blackhole"}, {"dst": "10.8.0.0/16", "type": "unreachable"},
                      {"dst": "10.7.0.0/16", "type": "prohibit", "table": 200},
                      {"dst": "10.6.0.0/24", "dev": "r1-h", "scope": "link", "table": 100},
                      {"dst": "10.5.0.0/24", "via": "10.2.0.2", "src": "10.2.0.1", "table": "main"},
                      {"dst": "10.4.0.0/24", "via": "10.99.0.1", "dev": "r1-h", "onlink": True},
                      {"dst": "10.3.0.0/24", "nexthops": [{"via": "10.1.0.1", "dev": "r1-h", "weight": 2},
                                                          {"via": "10.2.0.2", "dev": "r1-r2"}]}],
           "rules": [{"from": "10.1.0.0/24", "to": "10.6.0.0/24", "table": 100, "priority": 1000},
                     {"iif": "r1-h", "table": 200, "priority": 1001}, {"oif": "r1-r2", "table": "main"}],
           "neighbours": [{"dst": "10.1.0.99", "lladdr": "02:00:00:00:00:99", "dev": "r1-h"},
                          {"dst": "10.1.0.77", "dev": "r1-h", "proxy": True}]},
    "r2": {"nftables": NFT}}}
L2_LAB = {"lab": "render-l2", "nodes": {
    "host": {"links": [
        {"name": "br-l2", "kind": "bridge", "bridge": {"stp": False, "ageing_time": 12.5, "forward_delay": 4}},
        {"name": "p1", "kind": "veth", "master": "br-l2",
         "port": {"learning": False, "flood": False, "hairpin": True, "isolated": True, "cost": 7},
         "peer": {"name": "eth0", "node": "c1", "mac": "02:00:00:00:0c:01"}},
        {"name": "up0", "kind": "veth", "peer": {"name": "up1", "master": "br-l2", "port": {"cost": 3}}},
        {"name": "mv-here", "kind": "macvlan", "parent": "up0", "mode": "private", "mac": "02:00:00:00:0d:01"},
        {"name": "vx0", "kind": "vxlan", "addresses": ["10.3.0.1/24"],
         "vxlan": {"id": 42, "port": 4789, "local": "10.3.0.1", "learning": False}},
        {"name": "tun0", "kind": "tun"}, {"name": "mv-back", "kind": "macvlan", "parent": "c2:trunk"}],
        "fdb": [{"mac": "02:00:00:00:0e:01", "dev": "p1", "master": True},
                {"mac": "00:00:00:00:00:00", "dev": "vx0", "dst": "10.3.0.9"}]},
    "c1": {"links": [{"name": "mv0", "kind": "macvlan", "parent": "host:up0"}, {"name": "tap0", "kind": "tap"}]},
    "c2": {"links": [{"name": "trunk", "kind": "veth", "peer": {"name": "trunk-c3", "node": "c3"}}]},
    "c3": {"links": [{"name": "mv-up", "kind": "macvlan", "parent": "c2:trunk", "mode": "bridge"}]}}}
KINDS_LAB = {"lab": "render-kinds", "nodes": {"host": {"links": [
    {"name": "vrf-blue", "kind": "vrf", "table": 10}, {"name": "d0", "kind": "dummy", "master": "vrf-blue"},
    {"name": "d0.7", "kind": "vlan", "parent": "d0", "id": 7, "addresses": ["10.7.0.1/24"]},
    {"name": "ipv0", "kind": "ipvlan", "parent": "d0", "mode": "l3"}]}}}
QUOTING_LAB = {"lab": "render-quoting", "nodes": {  # names a shell would expand if they were not quoted
    "it's-$HOME": {"links": [{"name": 'e"$x`y', "kind": "veth", "addresses": ["10.4.0.2/24"],
                              "peer": {"name": "v;ls&<#>", "node": "host", "addresses": ["10.4.0.1/24"]}}]}}}
EXTRA_LABS = {data["lab"]: data for data in (L3_LAB, L2_LAB, KINDS_LAB, QUOTING_LAB)}
ALL_LABS = bundled_labs() + sorted(EXTRA_LABS)


def lab_named(name):
    return lab_from_dict(EXTRA_LABS[name], source=f"<{name}>") if name in EXTRA_LABS else load_lab(name)


# ---------------------------------------------------------------- reading a node back

def _declared_macs(lab, node):
    return {name for owner, name in lab.interfaces() if owner == node and _link_spec(lab, owner, name).mac}


def _link_spec(lab, node, name):
    for owner in lab.nodes:
        for link in owner.links:
            if owner.name == node and link.name == name:
                return link
            if link.peer is not None and link.peer.name == name and (link.peer.node or owner.name) == node:
                return link.peer
    raise KeyError((node, name))


def _sysctls(lab, node):
    keys = ["net.ipv6.conf.default.disable_ipv6", "net.ipv6.conf.all.disable_ipv6",
            *(key for key in BR_NETFILTER_SYSCTLS if os.path.exists("/proc/sys/" + key.replace(".", "/"))),
            *lab.node(node).sysctls]
    return {key: nsutil.read_sysctl(key) if os.path.exists("/proc/sys/" + key.replace(".", "/")) else None
            for key in keys}


def _tool_output(argv):
    if shutil.which(argv[0]) is None:
        return None
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    text = re.sub(r"\[\d+:\d+\]", "", done.stdout)  # iptables-save counters
    text = re.sub(r"counter packets \d+ bytes \d+", "counter", text)
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def snapshot(lab, node, fd):
    """Node ``node`` of ``lab`` as comparable data, read from the namespace ``fd``."""
    ipr = ipr_in(fd)
    try:
        raw = list(ipr.get_links())
        names = {msg["index"]: msg.get_attr("IFLA_IFNAME") for msg in raw}
        macs = _declared_macs(lab, node)
        links = {}
        for msg in raw:
            info = msg.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info else None
            entry = {"kind": kind, "master": names.get(msg.get_attr("IFLA_MASTER")), "mtu": msg.get_attr("IFLA_MTU"),
                     "up": bool(msg["flags"] & IFF_UP)}
            lower = msg.get_attr("IFLA_LINK")
            if lower and lower != msg["index"]:
                other = msg.get_attr("IFLA_LINK_NETNSID") is not None
                entry["lower"] = "(another netns)" if other else names.get(lower)
            if msg.get_attr("IFLA_IFNAME") in macs:
                entry["mac"] = msg.get_attr("IFLA_ADDRESS")
            data = info.get_attr("IFLA_INFO_DATA") if info else None
            for key in INFO_KEYS.get(kind, ()):
                value = data.get_attr(key) if data is not None else None
                entry[key] = names.get(value) if key.endswith("_LINK") else value
            port = info.get_attr("IFLA_INFO_SLAVE_DATA") if info else None
            if port is not None:
                entry.update({key: port.get_attr(key) for key in PORT_KEYS})
            links[msg.get_attr("IFLA_IFNAME")] = entry
        addresses = [(names[m["index"]], f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}", m["scope"])
                     for m in ipr.get_addr(family=AF_INET)]
        routes = [{"table": m.get_attr("RTA_TABLE"), "dst": f"{m.get_attr('RTA_DST') or '0.0.0.0'}/{m['dst_len']}",
                   "type": m["type"], "scope": m["scope"], "proto": m["proto"], "via": m.get_attr("RTA_GATEWAY"),
                   "dev": names.get(m.get_attr("RTA_OIF")), "metric": m.get_attr("RTA_PRIORITY"),
                   "src": m.get_attr("RTA_PREFSRC"), "onlink": bool(m["flags"] & RTNH_F_ONLINK),
                   "nexthops": [(h.get_attr("RTA_GATEWAY"), names.get(h["oif"]), h["hops"], h["flags"])
                                for h in m.get_attr("RTA_MULTIPATH") or ()]}
                  for m in ipr.get_routes(family=AF_INET)]
        rules = [{"priority": m.get_attr("FRA_PRIORITY"), "table": m.get_attr("FRA_TABLE"), "action": m["action"],
                  "from": f"{m.get_attr('FRA_SRC')}/{m['src_len']}", "to": f"{m.get_attr('FRA_DST')}/{m['dst_len']}",
                  "iif": m.get_attr("FRA_IIFNAME"), "oif": m.get_attr("FRA_OIFNAME"),
                  "proto": m.get_attr("FRA_PROTOCOL")} for m in ipr.get_rules(family=AF_INET)]
        neighbours = [(m.get_attr("NDA_DST"), names.get(m["ifindex"]), m.get_attr("NDA_LLADDR"), m["state"],
                       m["flags"]) for m in ipr.get_neighbours(family=AF_INET) if m["state"] & NUD_PERMANENT]
        fdb_macs = {entry.mac.lower() for entry in lab.node(node).fdb}
        fdb = [(m.get_attr("NDA_LLADDR"), names.get(m["ifindex"]), names.get(m.get_attr("NDA_MASTER")),
                m.get_attr("NDA_DST"), m["state"], m["flags"])
               for m in ipr.get_neighbours(family=AF_BRIDGE) if m.get_attr("NDA_LLADDR") in fdb_macs]
    finally:
        close_quietly(ipr)
    with nsutil.entered(fd):
        sysctls = _sysctls(lab, node)
        iptables = _tool_output(["iptables-save"])
        nftables = _tool_output(["nft", "list", "ruleset"])
    return {"links": links, "addresses": sorted(addresses), "routes": sorted(routes, key=repr),
            "rules": sorted(rules, key=repr), "neighbours": sorted(neighbours, key=repr),
            "fdb": sorted(fdb, key=repr), "sysctls": sysctls, "iptables": iptables, "nftables": nftables}


def differences(script, harness):
    """One line per difference between two {node: snapshot}s; [] when they are the same."""
    out = []
    for node in sorted(set(script) | set(harness)):
        if node not in script or node not in harness:
            out.append(f"{node}: node only in the {'harness' if node in harness else 'script'} build")
            continue
        for section, mine in script[node].items():
            theirs = harness[node][section]
            if mine == theirs:
                continue
            if isinstance(mine, dict) and isinstance(theirs, dict):
                for key in sorted(set(mine) | set(theirs), key=str):
                    if mine.get(key) != theirs.get(key):
                        out.append(f"{node} {section} {key}: script {mine.get(key)!r} != harness {theirs.get(key)!r}")
            elif isinstance(mine, list) and isinstance(theirs, list):
                extra = [item for item in mine if item not in theirs]
                missing = [item for item in theirs if item not in mine]
                out.append(f"{node} {section}: only in the script build {extra!r}; only in the harness build "
                           f"{missing!r}" + ("" if extra or missing else "; same items, other order"))
            else:
                out.append(f"{node} {section}: script {mine!r} != harness {theirs!r}")
    return out


# ---------------------------------------------------------------- the two builds

def harness_build(lab):
    try:
        live = build(lab)
    except CapabilityMissing as exc:
        pytest.skip(f"lab {lab.name}: {exc}")
    try:
        return {node: snapshot(lab, node, live.fd(node)) for node in live.nodes}
    finally:
        live.teardown()  # frees the names in /run/netns for the script's `ip netns add`


def run_in_scratch_host(lab, scripts, tmp_path):
    """Run ``scripts`` one after the other in a scratch host namespace; {node: snapshot} of what they left.

    Every node the lab names is released afterwards, whatever happened.
    """
    host = nsutil.create_netns()
    fds = {HOST: host}
    try:
        for i, text in enumerate(scripts):
            path = tmp_path / f"{i}.sh"
            path.write_text(text, encoding="utf-8")
            with nsutil.entered(host):
                done = subprocess.run(["sh", "-e", str(path)], capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
            assert done.returncode == 0, f"{path} failed with exit {done.returncode}:\n{done.stderr}"
        for node in lab.node_names:
            path = os.path.join(nsutil.NETNS_RUN_DIR, node)
            if node != HOST and os.path.exists(path):
                fds[node] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        return {node: snapshot(lab, node, fd) for node, fd in fds.items()}
    finally:
        for node in lab.node_names:
            if node != HOST:
                nsutil.release_netns_name(node)
        for fd in fds.values():
            safe_close_fd(fd)


@pytest.mark.parametrize("name", ALL_LABS)
def test_script_builds_what_the_harness_builds(name, tmp_path):
    lab = lab_named(name)
    expected = harness_build(lab)
    for node, ifname in lab.interfaces():  # the snapshot really reads the lab
        assert ifname in expected[node]["links"], f"{node}/{ifname} missing from the harness build"
    got = run_in_scratch_host(lab, [script.shell_script(lab)], tmp_path)
    assert differences(got, expected) == []


GAP_TAP = {"lab": "gap-tap", "nodes": {"host": {"links": [
    {"name": "tap0", "kind": "tap", "mtu": 1400, "mac": "02:00:00:00:0f:01"}]}}}
GAP_QUOTE = {"lab": "gap-quote", "nodes": {"host": {"iptables": ["-A INPUT -m comment --comment 'two words'"]}}}


@pytest.mark.parametrize("data", [
    GAP_TAP,
    GAP_QUOTE,
], ids=["tap-mac-mtu", "iptables-quoted-arg"])
def test_builder_and_script_agree_where_they_once_differed(data, tmp_path):
    """A tap's MAC and MTU, and an iptables argument with a space in it."""
    lab = lab_from_dict(data, source=f"<{data['lab']}>")
    expected = harness_build(lab)
    assert differences(run_in_scratch_host(lab, [script.shell_script(lab)], tmp_path), expected) == []


MUTATIONS = [  # (what the twin script loses, the difference it must show)
    (r"^ip -n ns2 route add default", "ns2 routes"),
    (r"^ip link set dev veth-1-br master vbridge$", "host links veth-1-br"),
    (r"^ip link set dev vbridge up$", "host links vbridge"),
    (r"^sysctl -q -w net.ipv4.ip_forward=1$", "host sysctls net.ipv4.ip_forward"),
    (r"^iptables -t nat -A POSTROUTING", "host iptables"),
]


@pytest.mark.parametrize("pattern, expected", MUTATIONS, ids=[m[1] for m in MUTATIONS])
def test_comparison_sees_a_missing_command(pattern, expected, tmp_path):
    lab = load_lab("001-vbridge")
    baseline = harness_build(lab)
    lines = script.shell_script(lab).splitlines()
    twin = [line for line in lines if not re.search(pattern, line)]
    assert len(twin) == len(lines) - 1, f"{pattern!r} should match exactly one line of the script"
    found = differences(run_in_scratch_host(lab, ["\n".join(twin) + "\n"], tmp_path), baseline)
    assert any(line.startswith(expected) for line in found), found


@pytest.mark.parametrize("name", ALL_LABS)
def test_teardown_script_removes_the_lab(name, tmp_path):
    lab = lab_named(name)
    harness_build(lab)  # skips when the kernel lacks a kind
    empty = lab_from_dict({"lab": "empty", "nodes": {"host": None}})
    left = run_in_scratch_host(lab, [script.shell_script(lab), script.teardown_script(lab)], tmp_path)
    assert set(left) == {HOST}, f"namespaces left behind: {sorted(set(left) - {HOST})}"
    assert list(left[HOST]["links"]) == ["lo"]
    assert [r for r in left[HOST]["routes"] if r["table"] != 255] == []
    assert left[HOST]["rules"] == run_in_scratch_host(empty, [], tmp_path)[HOST]["rules"]
    assert not [line for line in left[HOST]["iptables"] or [] if line.startswith("-")]
    assert not [line for line in left[HOST]["nftables"] or [] if line.strip().startswith("table inet")]


# ---------------------------------------------------------------- topology and scripts as text

@pytest.mark.parametrize("fmt", topology.FORMATS)
@pytest.mark.parametrize("name", ALL_LABS)
def test_topology_names_every_namespace_and_interface(name, fmt):
    lab = lab_named(name)
    text = topology.topology(lab, fmt)
    escape = topology._mermaid_text if fmt == "mermaid" else (lambda s: topology._dot_text(s)[1:-1])
    for node in lab.node_names:
        assert f"netns {escape(node)}" in text, f"namespace {node} missing"
    for node, ifname in lab.interfaces():
        assert escape(ifname) in text, f"interface {node}/{ifname} missing"
    assert text == topology.topology(lab_named(name), fmt), "output differs between two runs"
    if fmt == "mermaid":  # every label is one quoted string: no quote left inside it
        for label in re.findall(r'\["(.*)"\]', text):
            assert '"' not in label, label


@pytest.mark.parametrize("name", ALL_LABS)
def test_dot_output_is_valid_graphviz(name, tmp_path):
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("graphviz `dot` is not installed: the DOT syntax is not checked here")
    done = subprocess.run([dot, "-Tsvg"], input=topology.topology(lab_named(name), "dot"), capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0 and not done.stderr, done.stderr


def test_names_are_quoted_for_the_shell_and_escaped_for_diagrams():
    lab = lab_named("render-quoting")
    text = script.shell_script(lab)
    assert "ip netns add 'it'\"'\"'s-$HOME'" in text
    assert "'e\"$x`y'" in text and "'v;ls&<#>'" in text
    mermaid, dot = topology.topology(lab, "mermaid"), topology.topology(lab, "dot")
    assert '["e#quot;$x#96;y<br/>veth<br/>10.4.0.2/24"]' in mermaid and "v;ls#amp;#lt;#35;#gt;" in mermaid
    assert '[label="e\\"$x`y\\nveth\\n10.4.0.2/24"]' in dot and '"v;ls&amp;<#>\\nveth' in dot


def test_cli_check_names_the_file_and_field(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("lab: broken\nnodes:\n  ns1:\n    links:\n      - {name: veth-far-too-long0, kind: veth}\n")
    done = subprocess.run([sys.executable, "-m", "harness", "check", str(broken)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and done.stdout == "", done
    assert lines[0].startswith(f"{broken}: nodes.ns1.links[0].name: ") and "Traceback" not in done.stderr


def test_cli_check_script_and_labs():
    run = lambda *args: subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,  # noqa: E731
                                       text=True, timeout=60)
    good = load_lab("001-vbridge")
    done = run("check", good.source)
    assert done.returncode == 0 and done.stdout.startswith(f"{good.source}: OK"), done
    assert run("script", "001-vbridge").stdout == script.shell_script(good)
    assert run("topology", "001-vbridge", "--format", "dot").stdout == topology.topology(good, "dot")
    assert [line.split("\t")[0] for line in run("labs").stdout.splitlines()] == bundled_labs()
    missing = run("script", "no-such-lab")
    assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1, missing
