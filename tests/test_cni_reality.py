"""harness.cni.reality's DEL snapshot reads links, addresses and routes on the lab's raw rtnetlink
socket; what it reads must be what harness.kernel.state reads over pyroute2, the reference reader
of every other state dump, on a lab holding every kind of fact a CNI chain makes."""
import glob
import os

from harness.cni.backend import backend_for
from harness.cni.reality import _netlink_facts, leftovers, snapshot
from harness.kernel import state
from harness.kernel.constants import RT_TABLE_LOCAL
from harness.lab.build import build
from harness.lab.file import load_lab

PROFILES = os.path.join(os.path.dirname(__file__), "..", "harness", "cni", "profiles")


def pyroute2_facts(live, node: str) -> list[str]:
    """The same facts, read as harness.kernel.state reads them."""
    ipr = live.ipr(node)
    seen = state.snapshot(live.fd(node), ("links", "addresses"), macs=(), ipr=ipr)
    facts = [f"{node}: link {name} ({link['kind'] or 'device'})" for name, link in seen["links"].items()]
    facts += [f"{node}: address {key.partition(' dev ')[0]} on {key.partition(' dev ')[2]}" for key in seen["addresses"]]
    facts += [f"{node}: route {r.dst}{f' via {r.via}' if r.via else ''} dev {r.dev} table {r.table}"
              for r in state.routes(ipr) if r.table != RT_TABLE_LOCAL]
    return facts


def test_the_raw_reading_is_the_pyroute2_reading_on_a_dual_stack_attachment(tmp_path):
    backend_class, network = backend_for(next(p for p in glob.glob(os.path.join(PROFILES, "bridge-dual-stack.*"))))
    live = build(load_lab("cni-host"))
    try:
        live.add_node("pod1")
        backend = backend_class(live, network, str(tmp_path))
        backend.attach("pod1", portMappings=[{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}])
        live.run("host", ["ip", "route", "add", "10.123.0.0/24", "via", "192.168.1.1", "table", "100"], check=True)
        for node in live.nodes:
            raw, reference = sorted(_netlink_facts(live, node)), sorted(pyroute2_facts(live, node))
            assert raw == reference, (node, set(raw) ^ set(reference))
        facts = snapshot(live).facts
        # the reading is not empty of what matters: the pod's veth, both families' addresses, a table's route
        assert {"pod1: link eth0 (veth)", "host: link cni0 (bridge)",
                "host: route 10.123.0.0/24 via 192.168.1.1 dev eth0 table 100"} <= facts, sorted(facts)
        assert any(f.startswith("pod1: address 2001:db8:") for f in facts), sorted(facts)
    finally:
        live.teardown()


def test_the_del_snapshot_sees_ip6tables_and_plugin_made_nftables_but_not_a_table_s_built_in_chains():
    """A DEL that leaves an IPv6 masquerade or an nftables table of its own left something; an
    ip6tables table that a listing instantiated (its built-in chains, policy ACCEPT) is not a leftover."""
    live = build(load_lab("cni-host"))
    try:
        before = snapshot(live)
        live.run("host", ["ip6tables", "-t", "nat", "-S"], check=True)  # instantiates the nat table, nothing more
        assert not leftovers(live, before), leftovers(live, before)  # the twin: a table's scaffolding is nothing
        live.run("host", ["ip6tables", "-t", "nat", "-N", "CNI-dev-test"], check=True)
        live.run("host", ["ip6tables", "-t", "nat", "-A", "POSTROUTING", "-s", "2001:db8:88::2", "-j", "MASQUERADE"],
                 check=True)
        live.run("host", ["nft", "add table inet cni_plugins_masquerade"], check=True)
        live.run("host", ["ip6tables", "-P", "FORWARD", "DROP"], check=True)
        left = set(leftovers(live, before))
        assert {"host: ip6tables -t nat chain CNI-dev-test",
                "host: ip6tables -t nat -A POSTROUTING -s 2001:db8:88::2/128 -j MASQUERADE",
                "host: nft inet cni_plugins_masquerade",
                "host: ip6tables -t filter chain FORWARD policy DROP"} <= left, sorted(left)
    finally:
        live.teardown()
