"""Malformed lab input: every fault is one LabError line, ``FILE: FIELD: what is wrong``.

Each case is written to a file and loaded with ``load_lab_file``; the message must
be one line, start with the file's path and the field, say what is wrong (a
distinctive substring per case) and carry nothing that looks like a traceback.
The YAML cases hold for both of PyYAML's parsers (libyaml's CSafeLoader and the pure SafeLoader).
"""
import pytest

from harness.errors import LabError
from harness.lab.file import bundled_labs, lab_from_dict, load_lab, load_lab_file, validate
from harness.lab.model import HOST, Lab, Link, Node, Peer, Route

# ns1 with a veth to the host and 10.0.0.1/24: the base most cases add one line to.
BASE = """\
lab: t
nodes:
  ns1:
    links:
      - {name: veth-1, kind: veth, addresses: [10.0.0.1/24], peer: {name: veth-1-br, node: host}}
"""


def ns1(line: str) -> str:
    """BASE plus one more key of node ns1 (routes, rules, iptables...)."""
    return BASE + "    " + line + "\n"


def links(*specs: str) -> str:
    """A lab whose node ns1 holds exactly these links (flow-style YAML)."""
    return "lab: t\nnodes:\n  ns1:\n    links:\n" + "".join(f"      - {s}\n" for s in specs)


def check_message(message: str, path, where: str, what: str) -> None:
    assert "\n" not in message and "\r" not in message, f"more than one line: {message!r}"
    assert message.startswith(f"{path}: {where}: "), f"expected {path}: {where}: ..., got {message!r}"
    assert what in message, f"{what!r} not in {message!r}"
    assert "Traceback" not in message and 'File "' not in message, message


CASES = [
    # --- YAML that does not parse
    pytest.param("lab: t\nnodes: {ns1: {links: [\n", "line 3, column 1", "broken YAML", id="yaml-unclosed-bracket"),
    pytest.param("lab: t\nnodes:\n  ns1:\n    links: []\n   routes: []\n", "line 5, column 4",
                 "broken YAML: ", id="yaml-bad-indentation"),
    pytest.param("lab: t\nnodes:\n\tns1: {}\n", "line 3, column 1", "cannot start any token", id="yaml-tab"),
    pytest.param("lab: t\nnodes: {ns1: *nowhere}\n", "line 2, column 14", "undefined alias", id="yaml-undefined-alias"),
    # --- the document's shape
    pytest.param("- lab: t\n  nodes: {ns1: {}}\n", "(top)", "is not of type 'object'", id="top-level-list"),
    pytest.param("just words\n", "(top)", "is not of type 'object'", id="top-level-scalar"),
    pytest.param("nodes: {ns1: {}}\n", "(top)", "'lab' is a required property", id="missing-lab"),
    pytest.param("lab: t\n", "(top)", "'nodes' is a required property", id="missing-nodes"),
    pytest.param("lab: t\nnodes: {}\n", "nodes", "should be non-empty", id="nodes-empty"),
    pytest.param("lab: t\nnodes: [ns1]\n", "nodes", "is not of type 'object'", id="nodes-a-list"),
    pytest.param("lab: t\nnodes: {ns1: {}}\nextra: 1\n", "(top)", "'extra' was unexpected", id="unknown-top-level-key"),
    pytest.param(links("{name: b, kind: bridge, colour: red}"), "nodes.ns1.links[0]", "'colour' was unexpected",
                 id="unknown-link-key"),
    pytest.param(ns1("routes: [{dst: default, gw: 10.0.0.2}]"), "nodes.ns1.routes[0]", "'gw' was unexpected",
                 id="unknown-route-key"),
    pytest.param(links("{name: w, kind: wormhole}"), "nodes.ns1.links[0].kind", "'wormhole' is not one of",
                 id="unknown-link-kind"),
    pytest.param("lab: t\nnodes: {'a/b': {}}\n", "nodes.a/b", "not a usable namespace name", id="node-name-slash"),
    # --- wrong types
    pytest.param(links("{name: b, kind: bridge, addresses: 10.0.0.1/24}"), "nodes.ns1.links[0].addresses",
                 "'10.0.0.1/24' is not of type 'array'", id="addresses-as-string"),
    pytest.param(links("{name: b, kind: bridge, mtu: '1500'}"), "nodes.ns1.links[0].mtu",
                 "'1500' is not of type 'integer'", id="mtu-as-string"),
    pytest.param(links("{name: b, kind: bridge, up: 'yes'}"), "nodes.ns1.links[0].up",
                 "'yes' is not of type 'boolean'", id="up-yes-string"),
    pytest.param(links("{name: b, kind: bridge, mac: 'zz:zz'}"), "nodes.ns1.links[0].mac", "does not match",
                 id="mac-malformed"),
    # --- interface names
    pytest.param(links("{name: abcdefghijklmnop, kind: bridge}"), "nodes.ns1.links[0].name", "is 16 characters",
                 id="name-16-characters"),
    pytest.param(links("{name: '', kind: bridge}"), "nodes.ns1.links[0].name", "is 0 characters", id="name-empty"),
    pytest.param(links("{name: a/b, kind: bridge}"), "nodes.ns1.links[0].name", "'a/b' is not a valid interface name",
                 id="name-with-slash"),
    pytest.param(links("{name: b, kind: bridge}", "{name: b, kind: bridge}"), "nodes.ns1.links[1].name",
                 "'b' is defined twice in node 'ns1'", id="link-name-twice"),
    pytest.param(links("{name: b, kind: bridge}", "{name: v, kind: veth, peer: {name: b}}"),
                 "nodes.ns1.links[1].peer.name", "'b' is defined twice in node 'ns1'", id="veth-peer-collides"),
    # --- addresses
    pytest.param(links("{name: b, kind: bridge, addresses: [192.168.28.300/24]}"), "nodes.ns1.links[0].addresses[0]",
                 "invalid CIDR '192.168.28.300/24'", id="cidr-octet-300"),
    pytest.param(links("{name: b, kind: bridge, addresses: [10.0.0.1/33]}"), "nodes.ns1.links[0].addresses[0]",
                 "invalid CIDR '10.0.0.1/33'", id="cidr-prefix-33"),
    pytest.param(links("{name: b, kind: bridge, addresses: [not-an-ip]}"), "nodes.ns1.links[0].addresses[0]",
                 "invalid CIDR 'not-an-ip'", id="cidr-not-an-ip"),
    pytest.param("lab: t\nnodes:\n  ns1: {links: [{name: a, kind: bridge, addresses: [10.0.0.1/24]}]}\n"
                 "  ns2: {links: [{name: b, kind: bridge, addresses: [10.0.0.1/16]}]}\n",
                 "nodes.ns2.links[0].addresses[0]", "duplicate address 10.0.0.1 (already at ns1/a)",
                 id="duplicate-address-two-nodes"),
    # --- peers, masters, parents
    pytest.param(links("{name: v, kind: veth}"), "nodes.ns1.links[0].peer", "a veth needs a peer",
                 id="veth-without-peer"),
    pytest.param(links("{name: b, kind: bridge, peer: {name: p}}"), "nodes.ns1.links[0].peer",
                 "only a veth has a peer", id="peer-on-a-bridge"),
    pytest.param(links("{name: v, kind: veth, peer: {name: p, node: ns9}}"), "nodes.ns1.links[0].peer",
                 "unknown node 'ns9'", id="peer-in-unknown-namespace"),
    pytest.param(links("{name: v, kind: veth, master: br9, peer: {name: p}}"), "nodes.ns1.links[0].master",
                 "no link 'br9' in node 'ns1'", id="master-does-not-exist"),
    pytest.param(links("{name: v, kind: veth, peer: {name: p, master: v}}"), "nodes.ns1.links[0].peer.master",
                 "'v' is a veth, not a bridge", id="master-not-a-bridge"),
    pytest.param(links("{name: m, kind: macvlan}"), "nodes.ns1.links[0].parent", "a macvlan needs a parent link",
                 id="macvlan-without-parent"),
    pytest.param(links("{name: m, kind: macvlan, parent: 'ns9:eth0'}"), "nodes.ns1.links[0].parent",
                 "unknown node 'ns9'", id="parent-in-unknown-node"),
    pytest.param(links("{name: x, kind: vxlan}"), "nodes.ns1.links[0].vxlan.id", "a vxlan needs a VNI",
                 id="vxlan-without-id"),
    # --- routes, rules, neighbours, fdb
    pytest.param(ns1("routes: [{dst: default, via: 10.9.9.9}]"), "nodes.ns1.routes[0].via",
                 "gateway 10.9.9.9 is unreachable", id="route-gateway-unreachable"),
    pytest.param(ns1("routes: [{dst: 10.1.0.0/24, dev: eth9}]"), "nodes.ns1.routes[0].dev",
                 "no link 'eth9' in node 'ns1'", id="route-dev-missing"),
    pytest.param(ns1("routes: [{dst: 10.0.1.5/24, via: 10.0.0.2}]"), "nodes.ns1.routes[0].dst", "host bits set",
                 id="route-dst-host-bits"),
    pytest.param(ns1("routes: [{dst: default, via: 10.0.0.300}]"), "nodes.ns1.routes[0].via",
                 "invalid IP address '10.0.0.300'", id="route-gateway-invalid"),
    pytest.param(ns1("rules: [{iif: eth9, table: 100}]"), "nodes.ns1.rules[0].iif", "no link 'eth9' in node 'ns1'",
                 id="rule-unknown-iif"),
    pytest.param(ns1("neighbours: [{dst: 10.0.0.9, dev: eth9, lladdr: '02:00:00:00:00:09'}]"),
                 "nodes.ns1.neighbours[0].dev", "no link 'eth9' in node 'ns1'", id="neighbour-unknown-dev"),
    pytest.param(ns1("fdb: [{mac: '02:00:00:00:00:09', dev: eth9}]"), "nodes.ns1.fdb[0].dev",
                 "no link 'eth9' in node 'ns1'", id="fdb-unknown-dev"),
    # --- firewall and sysctls
    pytest.param(ns1("iptables: ['-t nat -L']"), "nodes.ns1.iptables[0]", "a rule must add something",
                 id="iptables-adds-nothing"),
    pytest.param(ns1("""iptables: ['-A INPUT -m comment --comment "oops -j ACCEPT']"""), "nodes.ns1.iptables[0]",
                 "No closing quotation", id="iptables-unbalanced-quote"),
    pytest.param(ns1("sysctls: {'ip forward': 1}"), "nodes.ns1.sysctls", "'ip forward' is not a sysctl name",
                 id="sysctl-not-a-name"),
]


# Library defects: today these load cleanly (the build then crashes) or the message is vague.
DEFECTS = [
    pytest.param("", "(top)", "empty", id="empty-file"),
    pytest.param("# nothing but a comment\n", "(top)", "empty", id="comment-only-file"),
    pytest.param("lab: t\nnodes:\n  ns1: {}\n  ns1: {links: [{name: b, kind: bridge}]}\n", "line 4, column 3",
                 "duplicate key 'ns1'", id="duplicate-node-key"),
    pytest.param(ns1("routes: [{dst: 10.1.0.0/24, dev: veth-1, table: nosuch}]"), "nodes.ns1.routes[0].table",
                 "'nosuch'", id="route-table-unknown-name"),
    pytest.param(ns1("rules: [{table: nosuch}]"), "nodes.ns1.rules[0].table", "'nosuch'",
                 id="rule-table-unknown-name"),
    pytest.param(ns1("iptables: ['-P INPUT']"), "nodes.ns1.iptables[0]", "-P", id="iptables-policy-without-target"),
    pytest.param(ns1("iptables: ['-A INPUT -t']"), "nodes.ns1.iptables[0]", "-t", id="iptables-t-without-table"),
    pytest.param(links("{name: v, kind: veth, peer: {name: p}}", "{name: m, kind: macvlan, parent: v, mode: weird}"),
                 "nodes.ns1.links[1].mode", "'weird'", id="macvlan-unknown-mode"),
    pytest.param(links("{name: v, kind: veth, peer: {name: p}}", "{name: i, kind: ipvlan, parent: v, mode: weird}"),
                 "nodes.ns1.links[1].mode", "'weird'", id="ipvlan-unknown-mode"),
    pytest.param(ns1("fdb: [{mac: 'zz', dev: veth-1}]"), "nodes.ns1.fdb[0].mac", "'zz'", id="fdb-mac-malformed"),
    pytest.param(ns1("neighbours: [{dst: 10.0.0.9, dev: veth-1, lladdr: 'zz'}]"), "nodes.ns1.neighbours[0].lladdr",
                 "'zz'", id="neighbour-lladdr-malformed"),
    pytest.param(ns1("routes: [{dst: '2001:db8::/64', via: 10.0.0.2}]"), "nodes.ns1.routes[0].via", "IPv4",
                 id="route-family-mismatch"),
    pytest.param(links("{name: x, kind: vxlan, vxlan: {id: 5, local: nope}}"), "nodes.ns1.links[0].vxlan.local",
                 "invalid IP address 'nope'", id="vxlan-local-not-an-ip"),
]


@pytest.mark.parametrize(("text", "where", "what"), CASES + DEFECTS)
def test_malformed_lab_is_one_line(tmp_path, text, where, what):
    path = tmp_path / "lab.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LabError) as info:
        load_lab_file(str(path))
    check_message(str(info.value), path, where, what)


def test_at_least_25_malformed_cases():
    assert len(CASES) >= 25
    assert len({p.id for p in CASES + DEFECTS}) == len(CASES + DEFECTS)


def test_unknown_bundled_name_lists_the_bundled_labs():
    with pytest.raises(LabError) as info:
        load_lab("no-such-lab")
    message = str(info.value)
    check_message(message, "no-such-lab", "no such lab (bundled labs", "")
    names = bundled_labs()
    assert names, "no bundled labs found"
    assert all(name in message for name in names), message


@pytest.mark.parametrize("suffix", ["missing.yaml", "a-directory"])
def test_unreadable_path_is_one_line_with_the_path(tmp_path, suffix):
    path = tmp_path / suffix
    if suffix == "a-directory":
        path.mkdir()
    with pytest.raises(LabError) as info:
        load_lab(str(path))  # a path (it has a separator): read as a file
    check_message(str(info.value), path, "cannot read", "")


@pytest.mark.parametrize("name", bundled_labs())
def test_bundled_lab_loads_cleanly(name):
    lab = load_lab(name)
    assert lab.name == name
    assert lab.source.endswith(f"{name}.yaml")
    assert lab.node_names[0] == HOST
    assert len(lab.node_names) >= 2
    assert any(node.links for node in lab.nodes)
    validate(lab)  # a loaded lab stays valid when checked again


def test_bundled_labs_are_found():
    assert len(bundled_labs()) >= 8
    assert "001-vbridge" in bundled_labs()


# --- labs built in Python are checked by the same rules


def python_lab(**ns1_links) -> Lab:
    link = Link("eth0", "veth", addresses=["10.0.0.2/24"],
                peer=Peer("veth0", node=HOST, addresses=["10.0.0.1/24"]), **ns1_links)
    return Lab("py", nodes=[Node("ns1", links=[link], routes=[Route("default", via="10.0.0.1")])])


PYTHON_LAB_YAML = """\
lab: py
nodes:
  ns1:
    links:
      - {name: eth0, kind: veth, addresses: [10.0.0.2/24], peer: {name: veth0, node: host, addresses: [10.0.0.1/24]}}
    routes: [{dst: default, via: 10.0.0.1}]
"""


def test_python_lab_validates_like_its_yaml(tmp_path):
    lab = python_lab()
    validate(lab)
    assert lab.node_names == [HOST, "ns1"], "validate() puts the host first"
    path = tmp_path / "py.yaml"
    path.write_text(PYTHON_LAB_YAML)
    assert load_lab_file(str(path)).nodes == lab.nodes


def test_python_lab_fault_is_the_same_line_as_from_a_file(tmp_path):
    lab = Lab("py", nodes=[Node("ns1", links=[Link("abcdefghijklmnop", "veth", peer=Peer("p", node=HOST))])])
    with pytest.raises(LabError) as from_python:
        validate(lab)
    check_message(str(from_python.value), "<python>", "nodes.ns1.links[0].name", "is 16 characters")
    path = tmp_path / "long.yaml"
    path.write_text(links("{name: abcdefghijklmnop, kind: veth, peer: {name: p, node: host}}"))
    with pytest.raises(LabError) as from_file:
        load_lab_file(str(path))
    assert str(from_file.value).replace(str(path), "<python>") == str(from_python.value)


def test_python_lab_unreachable_gateway():
    lab = python_lab()
    lab.node("ns1").routes = [Route("default", via="10.9.9.9")]
    with pytest.raises(LabError) as info:
        validate(lab)
    check_message(str(info.value), "<python>", "nodes.ns1.routes[0].via", "gateway 10.9.9.9 is unreachable")


def test_lab_from_dict_names_its_source():
    with pytest.raises(LabError) as info:
        lab_from_dict({"lab": "d", "nodes": {"ns1": {"links": [{"name": "v", "kind": "veth"}]}}}, source="<dict>")
    check_message(str(info.value), "<dict>", "nodes.ns1.links[0].peer", "a veth needs a peer")


def test_python_link_without_name_is_a_lab_error():
    lab = Lab("py", nodes=[Node("ns1", links=[Link(None, "bridge")])])
    with pytest.raises(LabError) as info:
        validate(lab)
    check_message(str(info.value), "<python>", "nodes.ns1.links[0].name", "")


def test_python_duplicate_node_names_are_a_lab_error():
    lab = Lab("py", nodes=[Node("ns1"), Node("ns1")])
    with pytest.raises(LabError) as info:
        validate(lab)
    check_message(str(info.value), "<python>", "nodes.ns1", "twice")


def test_a_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("lab: caf\xe9\nnodes: {}\n".encode("latin-1"))
    with pytest.raises(LabError) as info:
        load_lab(str(path))
    assert str(info.value) == f"{path}: not UTF-8 text (byte 8: invalid continuation byte)"


def test_a_changed_file_is_read_again(tmp_path):
    """Labs are kept by their text: the same path with other text is parsed and checked anew."""
    path = tmp_path / "lab.yaml"
    path.write_text("lab: t\nnodes: {ns1: {}}\n")
    assert [n.name for n in load_lab(str(path)).nodes] == ["host", "ns1"]
    path.write_text("lab: t\nnodes: {ns2: {}}\n")
    assert [n.name for n in load_lab(str(path)).nodes] == ["host", "ns2"]
    path.write_text("lab: t\nnodes: {ns2: {bogus: 1}}\n")
    with pytest.raises(LabError):
        load_lab(str(path))
