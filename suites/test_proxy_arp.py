"""Proxy ARP, Calico style: document 000 ("Proxy ARP", "Calico 中的 Proxy ARP", step 7).

A host veth with proxy_arp=1 answers who-has, with its own MAC, for any address the
host routes out of another interface; pods on /32 addresses reach each other through
the host's routing with 169.254.1.1 as a gateway nobody owns.
"""
import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from pytest_netconform import lab_fixture
from harness import QUIET_WINDOW, Port, l2_frame, write_sysctl

pytestmark = pytest.mark.area("proxy ARP")

calico = lab_fixture("000-calico")
POD1, POD2 = Port("container1", "eth0"), Port("container2", "eth0")
CALI1 = Port("host", "cali0001")


def echo(src, dst):
    return Ether() / IP(src=src, dst=dst) / ICMP(type=8)


def set_proxy_arp(lab, ifname, value):
    with lab.entered("host"):
        write_sysctl(f"net.ipv4.conf.{ifname}.proxy_arp", value)


@pytest.mark.document("000", "「Calico 中的 Proxy ARP」: 「169.254.1.1」")
def test_host_veth_answers_for_the_gateway_with_its_own_mac(calico):
    reply = calico.probe.arp(POD1, "169.254.1.1")
    assert reply is not None, "nobody answered who-has 169.254.1.1"
    assert reply.mac == calico.mac("host", "cali0001")


@pytest.mark.document("000", "「什么是 Proxy ARP」")
def test_host_veth_answers_for_another_pod_it_routes(calico):
    reply = calico.probe.arp(POD1, "10.244.1.3")
    assert reply is not None and reply.mac == calico.mac("host", "cali0001")


def ask_the_host(lab, target):
    """container1's who-has for ``target``: the reply (or None), whether the question reached
    the host's cali0001, and the is-at for ``target`` that left cali0001 (none, when unanswered)."""
    probe = lab.probe
    probe.listen(POD1, CALI1)
    reply = probe.arp(POD1, target, timeout=QUIET_WINDOW)
    asked = probe.expect(CALI1, Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, pdst=target))
    answers = probe.expect_none(CALI1, Ether() / ARP(op=2, psrc=target), inbound=False)
    return reply, asked, answers


@pytest.mark.document("000", "「sysctl net.ipv4.conf.cali12345.proxy_arp=1」")
def test_no_answer_with_proxy_arp_off(calico):
    set_proxy_arp(calico, "cali0001", 0)
    reply, asked, answers = ask_the_host(calico, "169.254.1.1")
    assert reply is None, f"the host answered for 169.254.1.1 with proxy_arp off: {reply}"
    # It reached the host, which kept silent: no is-at left cali0001.
    assert asked, "container1's question never reached the host's cali0001\n" + asked.format()
    assert answers == [], answers.format()


@pytest.mark.document("000", "「什么是 Proxy ARP」: 「且有路由」")
def test_no_answer_for_an_address_the_host_has_no_route_to(calico):
    calico.ipr("host").route("del", dst="0.0.0.0/0")  # 169.254.1.1 was routed by the default route
    reply, asked, answers = ask_the_host(calico, "169.254.1.1")
    assert reply is None, f"the host answered for 169.254.1.1 with no route to it: {reply}"
    assert asked, "container1's question never reached the host's cali0001\n" + asked.format()
    assert answers == [], answers.format()
    assert calico.probe.arp(POD1, "10.244.1.3") is not None  # a routed address is still answered


@pytest.mark.document("000", "「步骤 7」: container1 ping 10.244.1.3")
def test_pods_on_32_reach_each_other_through_host_routing(calico):
    result = calico.probe.ping("container1", "10.244.1.3")
    assert result, result.error
    neighbours = {n.get_attr("NDA_DST"): n.get_attr("NDA_LLADDR") for n in calico.ipr("container1").get_neighbours()}
    assert neighbours.get("169.254.1.1") == calico.mac("host", "cali0001"), neighbours


@pytest.mark.document("000", "「步骤 7」")
def test_pods_cannot_reach_each_other_without_proxy_arp(calico):
    set_proxy_arp(calico, "cali0001", 0)
    probe = calico.probe
    probe.listen_all()
    result = probe.ping("container1", "10.244.1.3", timeout=QUIET_WINDOW)
    assert not result, "container1 reached 10.244.1.3 without anyone answering ARP for its gateway"
    # Where it went: the who-has for 169.254.1.1 reached the host's cali0001, which no longer
    # answers it, so the echo never left container1 and the host sent nothing to container2.
    asked = probe.expect(CALI1, Ether() / ARP(op=1, pdst="169.254.1.1"))
    assert asked, "container1's ARP request never reached the host\n" + asked.format()
    for port, unwanted in ((POD1, Ether() / ARP(op=2, psrc="169.254.1.1")),
                           (Port("host", "cali0002"), Ether() / IP(dst="10.244.1.3") / ICMP(type=8))):
        strays = probe.expect_none(port, unwanted, inbound=port == POD1)
        assert strays == [], strays.format()


@pytest.mark.document("000", "「Bridge vs 纯路由」: 「| 广播域 | 共享广播域 | 隔离广播 |」 (纯路由, Calico)")
def test_a_broadcast_from_container1_never_reaches_container2(calico):
    probe = calico.probe
    probe.listen_all()
    broadcast = l2_frame(calico.mac("container1", "eth0"), "ff:ff:ff:ff:ff:ff", "broadcast from container1")
    probe.send(POD1, broadcast)
    reached = probe.expect(CALI1, broadcast)
    assert reached, "the broadcast did not even reach the host's cali0001\n" + reached.format()
    strays = probe.expect_none(POD2, broadcast)
    assert strays == [], "a broadcast crossed from container1 to container2\n" + strays.format()
    # The twin: unicast IP between them is routed through the host, and arrives.
    routed = probe.ping("container1", "10.244.1.3")
    assert routed, routed.error


@pytest.mark.document("000", "「Bridge vs 纯路由」: | 策略控制 | ... | 每个 veth 独立策略 |")
def test_a_forward_drop_on_cali0002_blocks_container2_only(calico):
    done = calico.run("host", ["iptables", "-A", "FORWARD", "-o", "cali0002", "-j", "DROP"])
    assert done.returncode == 0, done.stderr
    probe = calico.probe
    probe.listen_all()
    blocked = probe.ping("container1", "10.244.1.3", timeout=QUIET_WINDOW)
    assert not blocked, "container2 answered through a FORWARD DROP on its veth"
    reached = probe.expect(CALI1, echo("10.244.1.2", "10.244.1.3"))
    assert reached, "container1's echo never reached the host\n" + reached.format()
    strays = probe.expect_none(Port("host", "cali0002"), echo("10.244.1.2", "10.244.1.3"), inbound=False)
    assert strays == [], strays.format()
    # Only container2: container1 still reaches the host's uplink address, and container2
    # still reaches container1 (the policy is on the way into cali0002, not out of it).
    assert probe.ping("container1", "192.168.1.100"), "container1 lost the host too"
    out = probe.ping("container2", "10.244.1.2", timeout=QUIET_WINDOW)
    assert not out, "container1's reply went out by cali0002 through the DROP"
    left = probe.expect(CALI1, echo("10.244.1.3", "10.244.1.2"), inbound=False)
    assert left, "container2's echo was not forwarded to container1\n" + left.format()


@pytest.mark.document("000", "「步骤 7」: 「ip route add 10.244.1.3 dev cali0002 scope link」")
def test_without_the_32_route_the_echo_leaves_by_the_default_route_not_cali0002(calico):
    calico.ipr("host").route("del", dst="10.244.1.3/32", scope=253)
    probe = calico.probe
    probe.listen_all()
    result = probe.ping("container1", "10.244.1.3", timeout=QUIET_WINDOW)
    assert not result, "container2 answered without the host's route to it"
    # Proxy ARP still answers for 169.254.1.1 (routed by the default route, out of eth0), so the
    # echo reaches the host; the default route takes it out of eth0, and cali0002 sees nothing.
    wrong_way = probe.expect(Port("host", "eth0"), echo("10.244.1.2", "10.244.1.3"), inbound=False)
    assert wrong_way, "the echo did not leave by the default route\n" + wrong_way.format()
    strays = probe.expect_none(Port("host", "cali0002"), echo("10.244.1.2", "10.244.1.3"), inbound=False)
    assert strays == [], strays.format()


# -- "any IP": the host's uplink address and beyond it ---------------------------------------

UPLINK_PEER = Port("internet", "eth0")  # the far end of the host's uplink eth0 (192.168.1.1)


def upstream_routes_the_pods(lab):
    """The upstream's way back to the pods: in Calico, what BGP tells it (the lab's internet has
    only its connected subnet); the pods' traffic is routed, not NATed, so it needs one."""
    lab.ipr("internet").route("add", dst="10.244.1.0/24", gateway="192.168.1.100")


@pytest.mark.document("000", "「Calico 中的 Proxy ARP」: 「Calico 使用 Proxy ARP 让 Pod 能够与任意 IP 通信」")
def test_a_pod_reaches_the_hosts_uplink_address_and_beyond_it_with_its_own_source(calico):
    upstream_routes_the_pods(calico)
    probe = calico.probe
    probe.listen(CALI1, UPLINK_PEER)
    own = probe.ping("container1", "192.168.1.100")
    assert own and own.reply_from == "192.168.1.100", own
    beyond = probe.ping("container1", "192.168.1.1")
    assert beyond and beyond.reply_from == "192.168.1.1", beyond
    # It left by the uplink with the pod's own address: routed through the host, not NATed.
    left = probe.expect(UPLINK_PEER, echo("10.244.1.2", "192.168.1.1"))
    assert left, "container1's echo did not reach the internet with its own source\n" + left.format()


@pytest.mark.document("000", "「Calico 中的 Proxy ARP」: 「Calico 使用 Proxy ARP 让 Pod 能够与任意 IP 通信」 (ip_forward=0)")
def test_with_forwarding_off_the_host_stops_answering_for_169_254_1_1_and_nothing_leaves(calico):
    """The kernel answers by proxy only on an interface that forwards (arp_process checks
    IN_DEV_FORWARD): with ip_forward=0 container1 cannot resolve its gateway, so it reaches
    neither the host's uplink address nor anything beyond it."""
    upstream_routes_the_pods(calico)
    with calico.entered("host"):
        write_sysctl("net.ipv4.ip_forward", 0)
    probe = calico.probe
    probe.listen(POD1, CALI1, UPLINK_PEER)
    own = probe.ping("container1", "192.168.1.100", timeout=QUIET_WINDOW)
    assert not own, f"container1 reached the host's uplink address with its forwarding off: {own}"
    asked = probe.expect(CALI1, Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, pdst="169.254.1.1"))
    assert asked, "container1's who-has for its gateway never reached the host\n" + asked.format()
    answers = probe.expect_none(POD1, Ether() / ARP(op=2, psrc="169.254.1.1"))
    assert answers == [], answers.format()
    beyond = probe.ping("container1", "192.168.1.1", timeout=QUIET_WINDOW)
    assert not beyond, f"container1 reached the internet with the host's forwarding off: {beyond}"
    echoes = probe.expect_none(UPLINK_PEER, echo("10.244.1.2", "192.168.1.1"))
    assert echoes == [], echoes.format()


@pytest.mark.document("000", "「什么是 Proxy ARP」: 「启用 proxy_arp<br/>且有路由到 10.244.2.0/24」 (the default route is a route)")
def test_without_the_32_route_proxy_arp_still_answers_for_the_pod_by_the_default_route(calico):
    """Deviation from issue 15's reading (both the ping and the answer stop): the kernel answers by
    proxy for any address it routes out of another interface (arp_fwd_proxy), and with the /32 gone
    the default route (out of eth0) still routes 10.244.1.3. Only the ping stops (the test above)."""
    calico.ipr("host").route("del", dst="10.244.1.3/32", scope=253)
    reply, asked, answers = ask_the_host(calico, "10.244.1.3")
    assert reply is not None and reply.mac == calico.mac("host", "cali0001"), reply
    assert asked, "container1's question never reached the host's cali0001\n" + asked.format()
    assert answers != [] and answers[0].packet[ARP].hwsrc == calico.mac("host", "cali0001"), answers.format()


@pytest.mark.document("000", "「什么是 Proxy ARP」: 「且有路由」 (with neither the /32 nor the default route)")
def test_without_the_32_and_the_default_route_proxy_arp_stops_answering_for_the_pod(calico):
    for dst, scope in (("10.244.1.3/32", 253), ("0.0.0.0/0", 0)):
        calico.ipr("host").route("del", dst=dst, scope=scope)
    reply, asked, answers = ask_the_host(calico, "10.244.1.3")
    assert reply is None, f"the host answered for 10.244.1.3 with no route to it: {reply}"
    assert asked, "container1's question never reached the host's cali0001\n" + asked.format()
    assert answers == [], answers.format()
