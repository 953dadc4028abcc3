"""NAT: MASQUERADE source rewriting and its reverse - document 000 (routed containers,
step 6) and document 001 (vbridge, step 4). The documents' internet (8.8.8.8) is a lab
namespace ("internet", "upstream").
"""
import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from pytest_netconform import lab_fixture
from harness import QUIET_WINDOW, Port, write_sysctl

pytestmark = pytest.mark.area("NAT")

routed = lab_fixture("000-routed-containers")
vbridge = lab_fixture("001-vbridge")

ENS33, UPSTREAM, VBRIDGE = Port("host", "ens33"), Port("upstream", "eth0"), Port("host", "vbridge")


def flush_masquerade(lab):
    done = lab.run("host", ["iptables", "-t", "nat", "-F", "POSTROUTING"])
    assert done.returncode == 0, done.stderr


@pytest.mark.document("000", "「步骤 6」: ping 8.8.8.8")
def test_container1_pings_the_internet(routed):
    result = routed.probe.ping("container1", "8.8.8.8")
    assert result, result.error


@pytest.mark.parametrize("client", [
    pytest.param("container1", marks=pytest.mark.document(
        "000", "「步骤 6」: 「iptables -t nat -A POSTROUTING -s 10.0.1.0/24 -o eth0 -j MASQUERADE」")),
    pytest.param("container2", marks=pytest.mark.document(
        "000", "「步骤 6」: 「iptables -t nat -A POSTROUTING -s 10.0.2.0/24 -o eth0 -j MASQUERADE」")),
])
@pytest.mark.parametrize("exchange", ["udp", "tcp"])  # tcp: the document's `curl -s ifconfig.me`, a TCP exchange
def test_masquerade_rewrites_the_source_and_reverses_it_for_the_reply(routed, client, exchange):
    result = getattr(routed.probe, exchange)(client, "internet", "8.8.8.8", 53)
    assert result, result.error
    assert result.server_saw[0] == "192.168.1.100", f"the internet saw {result.server_saw}"
    assert result.client_saw == ("8.8.8.8", 53) and result.reply == b"netconform"


@pytest.mark.document("000", "「步骤 6」")
def test_without_masquerade_the_private_source_leaves_and_no_reply_returns(routed):
    flush_masquerade(routed)
    result = routed.probe.udp("container1", "internet", "8.8.8.8", 53, timeout=QUIET_WINDOW)
    assert not result
    assert result.server_saw and result.server_saw[0] == "10.0.1.2", result


@pytest.mark.document("000", "「步骤 6」: 「-o eth0」")
def test_traffic_between_containers_is_not_masqueraded(routed):
    result = routed.probe.udp("container1", "container2", "10.0.2.2", 53)
    assert result, result.error
    assert result.server_saw[0] == "10.0.1.2", f"container2 saw {result.server_saw}"


# ---------------------------------------------------------------- document 001, step 4

def echo(src, dst, kind=8):
    return Ether() / IP(src=src, dst=dst) / ICMP(type=kind)


@pytest.mark.document("001", "「step4」: 「ip netns exec ns1 ping 8.8.8.8」 (before sysctl -w net.ipv4.ip_forward=1)")
def test_001_before_forwarding_is_on_nothing_leaves_ens33(vbridge):
    """The document says that before forwarding is on the packet "can be sent out of the NIC"
    and only the reply fails, for its private source. The kernel does not do that: a host
    with ip_forward=0 does not forward at all, so nothing leaves ens33. Checked as the
    kernel does it."""
    with vbridge.entered("host"):
        write_sysctl("net.ipv4.ip_forward", 0)
    probe = vbridge.probe
    probe.listen(VBRIDGE, ENS33, UPSTREAM)
    result = probe.ping("ns1", "8.8.8.8", timeout=QUIET_WINDOW)
    assert not result, f"8.8.8.8 answered although the host does not forward: {result}"
    reached = probe.expect(VBRIDGE, echo("192.168.28.1", "8.8.8.8"))
    assert reached, "ns1's echo never reached the host\n" + reached.format()
    for port in (ENS33, UPSTREAM):
        strays = probe.expect_none(port, Ether() / IP(dst="8.8.8.8") / ICMP(type=8), inbound=port == UPSTREAM)
        assert strays == [], strays.format()
    # The twin (step 3's 细节, "如果是目的地址是一个本机地址，则...交由内核协议栈处理"): an address
    # of the host itself, even on ens33, is answered without forwarding.
    own = probe.ping("ns1", "192.168.17.10")
    assert own and own.reply_from == "192.168.17.10", own


@pytest.mark.document("001", "「step4」: 「数据包的源地址是一个内网地址，因此无法回数据包」")
def test_001_without_masquerade_upstream_sees_the_private_source_and_no_reply_returns(vbridge):
    flush_masquerade(vbridge)
    probe = vbridge.probe
    probe.listen(UPSTREAM, Port("ns1", "veth-1"))
    result = probe.ping("ns1", "8.8.8.8", timeout=QUIET_WINDOW)
    assert not result, f"8.8.8.8 answered a private source it has no route to: {result}"
    seen = probe.expect(UPSTREAM, echo("192.168.28.1", "8.8.8.8"))
    assert seen, "the echo did not reach upstream with ns1's own source\n" + seen.format()
    replies = probe.expect_none(Port("ns1", "veth-1"), echo("8.8.8.8", "192.168.28.1", kind=0))
    assert replies == [], replies.format()


@pytest.mark.document("001", "「step4」: 「iptables -t nat -A POSTROUTING -s 192.168.28.0/24 -j MASQUERADE」")
def test_001_with_masquerade_upstream_sees_ens33s_address_and_the_reply_returns(vbridge):
    probe = vbridge.probe
    probe.listen(UPSTREAM)
    result = probe.ping("ns1", "8.8.8.8")
    assert result, result.error
    seen = probe.expect(UPSTREAM, echo("192.168.17.10", "8.8.8.8"))
    assert seen, "the echo did not reach upstream from ens33's 192.168.17.10\n" + seen.format()
