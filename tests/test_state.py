"""harness.kernel.state: one namespace's state over netlink, IPv4 and IPv6, and its differences.

The document and reproducer comparisons (test_doc_shell, test_render) and the CNI DEL
checks use it on whole labs; these tests hold its parts to what they promise.
"""
import os

import pytest

from harness.kernel import nsutil, state
from harness.kernel.constants import AF_INET, AF_INET6, RT_TABLE_LOCAL
from harness.kernel.netops import close_quietly, ipr_in


@pytest.fixture
def netns():
    """A scratch namespace with IPv6 on, a veth pair, IPv4 and IPv6 addresses and routes."""
    fd = nsutil.create_netns()
    with nsutil.entered(fd):
        nsutil.write_sysctl("net.ipv6.conf.all.disable_ipv6", 0)
        nsutil.write_sysctl("net.ipv6.conf.default.accept_dad", 0)
    ipr = ipr_in(fd)
    try:
        ipr.link("add", ifname="dev-a", kind="veth", peer={"ifname": "dev-b"})
        index = ipr.link_lookup(ifname="dev-a")[0]
        ipr.link("set", index=index, state="up")
        ipr.link("set", index=ipr.link_lookup(ifname="dev-b")[0], state="up")  # carrier for dev-a
        ipr.addr("add", index=index, address="10.9.0.1", prefixlen=24)
        ipr.addr("add", index=index, address="2001:db8:9::1", prefixlen=64)
        ipr.route("add", dst="10.8.0.0", dst_len=16, gateway="10.9.0.2", table=100)
        ipr.route("add", dst="2001:db8:8::", dst_len=48, gateway="2001:db8:9::2", family=AF_INET6)
        yield fd
    finally:
        close_quietly(ipr)
        os.close(fd)


def test_both_families_are_read_and_one_family_leaves_the_other_out(netns):
    both = state.snapshot(netns, ("links", "addresses", "routes"))
    assert "10.9.0.1/24 dev dev-a" in both["addresses"] and "2001:db8:9::1/64 dev dev-a" in both["addresses"]
    assert "10.8.0.0/16 table 100" in both["routes"], both["routes"]
    assert any(key.startswith("2001:db8:8::/48 table 254") for key in both["routes"]), both["routes"]
    assert set(both["links"]) == {"dev-a", "dev-b"}  # never lo
    v4 = state.snapshot(netns, ("addresses", "routes"), families=(AF_INET,))
    assert not any(":" in key for key in v4["addresses"]) and not any(":" in key for key in v4["routes"])


def test_routes_are_values_with_their_gateway_and_device(netns):
    ipr = ipr_in(netns)
    try:
        found = {route.dst: route for route in state.routes(ipr)}
    finally:
        close_quietly(ipr)
    assert found["10.8.0.0/16"].via == "10.9.0.2" and found["10.8.0.0/16"].table == 100
    assert found["2001:db8:8::/48"].via == "2001:db8:9::2" and found["2001:db8:8::/48"].dev == "dev-a"
    assert found["2001:db8:8::/48"].family == AF_INET6
    assert all(route.table != RT_TABLE_LOCAL for route in found.values()), "the local table is the kernel's"


def test_the_same_namespace_read_twice_has_no_differences(netns):
    assert state.differences({"n": state.snapshot(netns)}, {"n": state.snapshot(netns)}) == []


def test_a_change_is_one_line_naming_node_section_and_entry(netns):
    before = state.snapshot(netns)
    ipr = ipr_in(netns)
    try:
        ipr.link("set", index=ipr.link_lookup(ifname="dev-b")[0], mtu=1400)
        ipr.route("del", dst="10.8.0.0", dst_len=16, gateway="10.9.0.2", table=100)
    finally:
        close_quietly(ipr)
    found = state.differences({"n": before}, {"n": state.snapshot(netns)}, ("before", "after"))
    assert "n links dev-b: mtu before 1500, after 1400" in found, found
    assert any(line.startswith("n routes 10.8.0.0/16 table 100: only in the before") for line in found), found
    assert all("\n" not in line for line in found)


def test_an_unknown_section_is_refused():
    with pytest.raises(ValueError, match="unknown sections"):
        state.snapshot(0, ("links", "colours"))
