"""The builder's IP-in-IP tunnels and route protocols (document 000's Calico routes, issue 15).

This machine's kernel may have no ipip: the RTM_NEWLINK request is checked by decoding it with
pyroute2's own parser (not ours), the tunl0 fallback logic against a stand-in socket, and a build
with ipip either works or is one line with the kernel's reason. Route ``proto`` and ``onlink``
need no ipip and are checked in the kernel.
"""
import errno
import struct

import pytest
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from harness.errors import CapabilityMissing, LabError
from harness.kernel import capabilities
from harness.kernel.constants import RTNH_F_ONLINK, RTPROT_BIRD, RTPROT_BOOT
from harness.kernel.rtnl import RTM_NEWLINK, NetlinkRefused, ipip_link_body
from harness.kernel.tunnels import make_ipip
from harness.lab.build import build
from harness.lab.file import lab_from_dict
from harness.lab.script import shell_script

from test_builder import netns_state, one_line
from test_lab_hooks import kernel_words


def decoded(body: bytes) -> ifinfmsg:
    msg = ifinfmsg(struct.pack("=IHHII", 16 + len(body), RTM_NEWLINK, 0, 1, 0) + body)
    msg.decode()
    return msg


def test_the_ipip_request_is_what_pyroute2_reads_as_an_ipip_link():  # pyroute2 says IFLA_IPIP_* for IFLA_IPTUN_*
    msg = decoded(ipip_link_body("tunl1", local="192.168.1.101", remote="192.168.1.102", ttl=64, link=7, mtu=1480))
    assert msg.get_attr("IFLA_IFNAME") == "tunl1" and msg.get_attr("IFLA_MTU") == 1480
    assert msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "ipip"
    data = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
    assert {key: data.get_attr(f"IFLA_IPIP_{key}") for key in ("LOCAL", "REMOTE", "TTL", "LINK", "PMTUDISC")} == {
        "LOCAL": "192.168.1.101", "REMOTE": "192.168.1.102", "TTL": 64, "LINK": 7, "PMTUDISC": 1}


def test_the_fallback_request_names_no_endpoint():
    # Calico's tunl0: any local, any remote; the outer destination is the route's gateway.
    data = decoded(ipip_link_body("tunl0")).get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
    assert [data.get_attr(f"IFLA_IPIP_{key}") for key in ("LOCAL", "REMOTE", "TTL", "LINK")] == [None] * 4


class StandIn:
    """The calls make_ipip makes on an Rtnl: the kernel refuses the add with ``code``; ``existing``
    is the kind of the link already named so."""

    def __init__(self, code, existing):
        self.code, self.existing, self.calls = code, existing, []

    def add_ipip(self, name, **options):
        self.calls.append(("add", name))
        raise NetlinkRefused(self.code, None)

    def link_kinds(self):
        return [(5, "tunl0", self.existing)] if self.existing else []

    def ifindex(self, name):
        return 5

    def set_link(self, index, **options):
        self.calls.append(("set", index, options))


def test_the_kernels_own_tunl0_is_taken_as_felix_takes_it():
    rtnl = StandIn(errno.EEXIST, "ipip")
    assert make_ipip(rtnl, "tunl0", mtu=1440) is False
    assert rtnl.calls == [("add", "tunl0"), ("set", 5, {"mtu": 1440})]


@pytest.mark.parametrize("name,options,existing,code", [
    ("tunl0", {"remote": "192.168.1.102"}, "ipip", errno.EEXIST),  # a tunnel of its own: not the fallback
    ("tunl0", {}, "veth", errno.EEXIST),  # a veth holds the name: not the module's device
    ("tunl1", {}, "ipip", errno.EEXIST),  # only tunl0 is the fallback
    ("tunl0", {}, None, errno.EOPNOTSUPP),  # no ipip in this kernel: the kernel's answer, as it is
])
def test_any_other_refusal_is_the_kernels(name, options, existing, code):
    with pytest.raises(NetlinkRefused) as info:
        make_ipip(StandIn(code, existing), name, **options)
    assert info.value.code == code


def calico_nodes(**node1_route) -> dict:
    """node1 with eth0 192.168.1.101/24 to node2, and one route of ``node1_route``'s keys."""
    return {"lab": "dev-ipip", "nodes": {
        "node1": {"links": [{"name": "eth0", "kind": "veth", "addresses": ["192.168.1.101/24"],
                             "peer": {"name": "eth0", "node": "node2", "addresses": ["192.168.1.102/24"]}}],
                  "routes": [{"dst": "10.244.2.0/24", "via": "192.168.1.102", "dev": "eth0", **node1_route}]},
        "node2": None}}


def kernel_route(live, node, dst):
    return next(r for r in live.ipr(node).get_routes(family=2) if r.get_attr("RTA_DST") == dst)


def test_a_route_keeps_the_protocol_and_onlink_the_lab_gives():
    with build(lab_from_dict(calico_nodes(proto="bird", onlink=True))) as live:
        route = kernel_route(live, "node1", "10.244.2.0")
        assert (route["proto"], route["flags"] & RTNH_F_ONLINK) == (RTPROT_BIRD, RTNH_F_ONLINK), route
    with build(lab_from_dict(calico_nodes())) as live:  # the twin: `ip route add`'s own protocol, not onlink
        route = kernel_route(live, "node1", "10.244.2.0")
        assert (route["proto"], route["flags"] & RTNH_F_ONLINK) == (RTPROT_BOOT, 0), route
    assert netns_state() == ([], [])


def test_the_reproducer_says_proto_bird_onlink_and_takes_the_modules_tunl0():
    data = calico_nodes(proto="bird", onlink=True)
    data["nodes"]["node1"]["links"].append({"name": "tunl0", "kind": "ipip", "addresses": ["10.244.1.0/32"]})
    script = shell_script(lab_from_dict(data))
    assert "ip -n node1 route add 10.244.2.0/24 via 192.168.1.102 dev eth0 proto bird onlink" in script, script
    assert "ip -n node1 link add tunl0 type ipip 2>/dev/null || ip -n node1 link show dev tunl0 >/dev/null" in script


@pytest.mark.parametrize("change,fault", [
    (lambda d: d["nodes"]["node1"]["routes"][0].update(proto="birdd"), "routes[0].proto"),
    (lambda d: d["nodes"]["node1"]["links"][0].update(ipip={"remote": "192.168.1.102"}), "a veth is not an ipip"),
])
def test_a_wrong_protocol_or_tunnel_key_is_one_line(change, fault):
    data = calico_nodes()
    change(data)
    with pytest.raises(LabError) as info:
        lab_from_dict(data, "dev-ipip.yaml")
    assert fault in one_line(str(info.value)), info.value


def test_build_agrees_with_capabilities_on_ipip():
    data = calico_nodes(dev="tunl0", proto="bird", onlink=True)
    data["nodes"]["node1"]["links"] += [{"name": "tunl0", "kind": "ipip", "addresses": ["10.244.1.0/32"]},
                                        {"name": "ipip1", "kind": "ipip", "parent": "eth0",
                                         "ipip": {"local": "192.168.1.101", "remote": "192.168.1.102", "ttl": 64}}]
    reason = capabilities.missing("ipip")
    if reason is None:
        with build(lab_from_dict(data)) as live:
            for name in ("tunl0", "ipip1"):
                assert live.link("node1", name).get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "ipip"
            assert kernel_route(live, "node1", "10.244.2.0")["proto"] == RTPROT_BIRD
    else:
        with pytest.raises(CapabilityMissing) as info:
            build(lab_from_dict(data))
        message = one_line(str(info.value))
        assert "ipip" in message and kernel_words(message), message
    assert netns_state() == ([], [])
