"""Fidelity: each document lab's own checks pass as the document writes them.

The pings the documents run (``ip netns exec ns1 ping -c 3 192.168.28.2``...), and the
tables they print, compared as netlink data. Each lab's negative twin: the same source
gets no answer from an address of the same subnet that nobody holds.
"""
import ipaddress

import pytest

from pytest_netconform.labs import build_for
from harness import QUIET_WINDOW

pytestmark = pytest.mark.area("fidelity")

# lab -> the document's pings: (from node, to address)
DOCUMENT_PINGS = {
    "000-veth-basics": [("host", "10.0.0.2"), ("my-namespace", "10.0.0.1")],
    "000-routed-containers": [("container1", "10.0.2.2"), ("container2", "10.0.1.2"), ("container1", "8.8.8.8")],
    "000-calico": [("container1", "10.244.1.3")],
    "001-vbridge": [("ns1", "192.168.28.2"), ("ns1", "192.168.28.3"), ("ns2", "192.168.28.3"),
                    ("ns3", "192.168.28.1"), ("ns3", "192.168.28.2"), ("host", "192.168.28.1"),
                    ("ns1", "192.168.17.10"), ("ns1", "8.8.8.8")],
    "002-veth-pair": [("ns1", "192.168.1.2"), ("ns2", "192.168.1.1")],
    "002-br0": [("ns1", "192.168.1.254")],
    "003-example1": [("ns1", "192.168.1.2"), ("ns2", "192.168.1.1")],
    "004-br0": [("ns1", "192.168.1.12"), ("ns1", "192.168.1.10")],
}
# lab -> (node, the address nobody holds in the subnet of the node's first ping)
NOBODY = {lab: (pings[0][0], str(ipaddress.ip_address(pings[0][1]) + 7)) for lab, pings in DOCUMENT_PINGS.items()}


@pytest.fixture
def lab(request):
    live = build_for(request, request.param)
    yield live
    live.teardown()


@pytest.mark.parametrize("lab", sorted(DOCUMENT_PINGS), indirect=True)
def test_the_documents_pings_answer(lab):
    failed = []
    for source, target in DOCUMENT_PINGS[lab.name]:
        result = lab.probe.ping(source, target)
        if not result:
            failed.append(f"{source} -> {target}: {result.error}")
    assert not failed, f"{lab.name}: " + "; ".join(failed)


@pytest.mark.parametrize("lab", sorted(DOCUMENT_PINGS), indirect=True)
def test_an_address_nobody_holds_does_not_answer(lab):
    source, target = NOBODY[lab.name]
    result = lab.probe.ping(source, target, timeout=QUIET_WINDOW)
    assert not result, f"{lab.name}: {target} answered {source} from {result.reply_from}"


def main_table(lab, node):
    """(destination, gateway, device, protocol, scope, preferred source) of the main table."""
    names = {msg["index"]: msg.get_attr("IFLA_IFNAME") for msg in lab.ipr(node).get_links()}
    rows = []
    for route in lab.ipr(node).get_routes(family=2, table=254):
        dst = route.get_attr("RTA_DST")
        rows.append((f"{dst}/{route['dst_len']}" if dst else "default", route.get_attr("RTA_GATEWAY"),
                     names.get(route.get_attr("RTA_OIF")), route["proto"], route["scope"],
                     route.get_attr("RTA_PREFSRC")))
    return sorted(rows, key=str)


KERNEL, BOOT, LINK, UNIVERSE = 2, 3, 253, 0


@pytest.mark.document("001", "step3: route -n")
@pytest.mark.parametrize("lab", ["001-vbridge"], indirect=True)
def test_001_host_routing_table_reads_as_the_document_prints_it(lab):
    # 0.0.0.0       192.168.17.2  0.0.0.0        UG  ens33
    # 192.168.17.0  0.0.0.0       255.255.255.0  U   ens33
    # 192.168.28.0  0.0.0.0       255.255.255.0  U   vbridge
    assert main_table(lab, "host") == sorted([
        ("default", "192.168.17.2", "ens33", BOOT, UNIVERSE, None),
        ("192.168.17.0/24", None, "ens33", KERNEL, LINK, "192.168.17.10"),
        ("192.168.28.0/24", None, "vbridge", KERNEL, LINK, "192.168.28.5"),
    ], key=str)


@pytest.mark.document("000", "步骤 7: ip route (Calico style)")
@pytest.mark.parametrize("lab", ["000-calico"], indirect=True)
def test_000_calico_tables_read_as_the_document_writes_them(lab):
    # container1: 169.254.1.1 dev eth0 scope link; default via 169.254.1.1 dev eth0
    assert main_table(lab, "container1") == sorted([
        ("169.254.1.1/32", None, "eth0", BOOT, LINK, None),
        ("default", "169.254.1.1", "eth0", BOOT, UNIVERSE, None)], key=str)
    # host: 10.244.1.2 dev cali0001 scope link (and the uplink the lab adds)
    host = main_table(lab, "host")
    assert ("10.244.1.2/32", None, "cali0001", BOOT, LINK, None) in host
    assert ("10.244.1.3/32", None, "cali0002", BOOT, LINK, None) in host
