"""Bridge ports: document 000 ("Linux bridge 原理", containers A, B, C on br0; "STP 控制:
ip link set <bridge> type bridge stp_state 1"). Hairpin, broadcast flooding, STP and
port isolation, each seen on the wire of the ports.
"""
import pytest
from scapy.layers.l2 import LLC, STP, Dot3

from pytest_netconform import lab_fixture
from harness import DEADLINE, Port, bridge, l2_frame, set_link

pytestmark = pytest.mark.area("bridge")

bridge_abc = lab_fixture("000-bridge-abc")

MAC_A, MAC_B, MAC_C = "02:00:00:00:aa:aa", "02:00:00:00:bb:bb", "02:00:00:00:cc:cc"
MAC_A2 = "02:00:00:00:aa:ab"  # a second station behind port 1 (a VM behind container A, say)
BROADCAST, BPDU_DST = "ff:ff:ff:ff:ff:ff", "01:80:c2:00:00:00"
# A configuration BPDU from A naming itself root with the worst priority (65535): inferior to
# any bridge's own, so an STP bridge answers it on that port rather than adopting it.
INFERIOR_BPDU = (Dot3(src=MAC_A, dst=BPDU_DST) / LLC()
                 / STP(rootid=65535, rootmac=MAC_A, bridgeid=65535, bridgemac=MAC_A))
A, B, C = Port("container-a", "eth0"), Port("container-b", "eth0"), Port("container-c", "eth0")
BR0 = Port("host", "br0")
HELLO_TIME = 1.0  # seconds: the kernel's minimum (the default is 2)
FORWARD_DELAY = 2.0  # seconds: the kernel's minimum with STP on (the default is 15)


def learned(lab):
    return bridge.learned(lab, "host", "br0")


def set_bridge(lab, **options):
    """`ip link set br0 type bridge ...` over netlink (times in centiseconds, as IFLA_BR_* has them)."""
    lab.ipr("host").link("set", index=lab.ifindex("host", "br0"), kind="bridge", **options)


def is_bpdu(packet):
    return packet.dst == BPDU_DST and packet.haslayer(STP)


def is_bpdu_from(bridge_mac):
    """A BPDU whose sender is the bridge with ``bridge_mac`` (A's own, or br0's)."""
    return lambda packet: is_bpdu(packet) and packet[STP].bridgemac == bridge_mac


def teach_second_mac_on_port1(lab):
    """A frame from MAC_A2 out of A: the bridge learns MAC_A2 behind veth1."""
    lab.probe.send(A, l2_frame(MAC_A2, MAC_C, "from the second station behind A"))
    assert bridge.wait_fdb(lab, "host", "br0", lambda entries: MAC_A2 in entries, DEADLINE), learned(lab)
    assert learned(lab)[MAC_A2] == "veth1"


# -- hairpin ---------------------------------------------------------------------------

@pytest.mark.document("000", "工作机制: 「2. 转发 - 根据目标 MAC 查找出端口」 "
                        "(hairpin on: the kernel's bridge option; no document has hairpin)")
def test_hairpin_on_sends_a_frame_back_out_of_its_ingress_port(bridge_abc):
    probe = bridge_abc.probe
    probe.listen_all()
    bridge.set_port(bridge_abc, "host", "veth1", hairpin=True)
    teach_second_mac_on_port1(bridge_abc)
    frame = l2_frame(MAC_A, MAC_A2, "A to the station behind its own port")
    probe.send(A, frame)
    assert probe.expect(A, frame), "hairpin on, but the frame did not come back\n" + probe.evidence(A, match=frame)
    assert probe.expect_none(B, frame) == [] and probe.expect_none(C, frame) == [], "a known unicast was flooded"


@pytest.mark.document("000", "工作机制: 「2. 转发 - 根据目标 MAC 查找出端口」 (hairpin off: the kernel's default; no document has hairpin)")
def test_hairpin_off_drops_a_frame_for_its_own_ingress_port(bridge_abc):
    probe = bridge_abc.probe
    probe.listen_all()
    teach_second_mac_on_port1(bridge_abc)
    frame = l2_frame(MAC_A, MAC_A2, "A to the station behind its own port")
    probe.send(A, frame)
    assert probe.expect_none(A, frame) == [], \
        f"the frame came back out of veth1; its flags: {bridge.port_flags(bridge_abc, 'host', 'veth1')}"
    assert probe.expect_none(B, frame) == [] and probe.expect_none(C, frame) == [], "it was flooded instead"


# -- broadcast -----------------------------------------------------------------------------

@pytest.mark.document("000", "Bridge 工作机制: 泛洪 - 向所有端口广播")
def test_broadcast_is_flooded_to_every_other_port_and_the_bridge(bridge_abc):
    probe = bridge_abc.probe
    probe.listen_all()
    frame = l2_frame(MAC_A, BROADCAST, "broadcast from A")
    probe.send(A, frame)
    for port in (B, C, BR0):
        assert probe.expect(port, frame), probe.evidence(port, match=frame)
    assert probe.expect_none(A, frame) == [], "the broadcast came back to its sender (hairpin is off)"


@pytest.mark.document("000", "Bridge 工作机制: 「泛洪」")
def test_a_port_with_broadcast_flooding_off_gets_no_broadcast(bridge_abc):
    probe = bridge_abc.probe
    probe.listen_all()
    bridge.set_port(bridge_abc, "host", "veth3", bcast_flood=False)
    frame = l2_frame(MAC_A, BROADCAST, "broadcast from A")
    probe.send(A, frame)
    assert probe.expect(B, frame), probe.evidence(B, match=frame)
    assert probe.expect_none(C, frame) == [], "veth3 has bcast_flood off but C got the broadcast"


# -- STP -------------------------------------------------------------------------------------

@pytest.mark.document("000", "「STP 控制」: 「ip link set <bridge> type bridge stp_state 1」")
def test_stp_on_makes_the_bridge_send_bpdus_every_hello_time(bridge_abc):
    probe = bridge_abc.probe
    probe.listen_all()
    set_bridge(bridge_abc, br_hello_time=int(HELLO_TIME * 100))
    probe.drain()
    set_bridge(bridge_abc, br_stp_state=1)
    seen = probe.expect(A, is_bpdu, timeout=HELLO_TIME + DEADLINE)
    assert seen, f"no BPDU on veth1 within {HELLO_TIME + DEADLINE:g} s of stp_state 1\n" + probe.evidence(A)
    bpdu = seen.packet[STP]
    # The bridge is alone, so it is the root: it announces its own ID, br0's MAC.
    assert (bpdu.rootmac, bpdu.bridgemac, bpdu.pathcost) == ((bridge_abc.mac("host", "br0"),) * 2 + (0,)), bpdu
    assert bpdu.hellotime == HELLO_TIME
    for port in (B, C):
        assert probe.expect(port, is_bpdu, timeout=HELLO_TIME + DEADLINE), probe.evidence(port)
    # The twin of stp off's flood: an STP bridge takes the group address in, it forwards no BPDU.
    probe.send(A, INFERIOR_BPDU)
    kept = probe.expect_none_on((B, C), is_bpdu_from(MAC_A))
    assert all(strays == [] for strays in kept.values()), {str(port): strays.format() for port, strays in kept.items()}


@pytest.mark.document("000", "「STP 控制」 (stp_state 0, the default)")
def test_stp_off_floods_a_bpdu_like_any_frame_and_sends_none_of_its_own(bridge_abc):
    """Event, not a window of hello times: a bridge without STP forwards the bridge group
    address like any multicast (IEEE 802.1D 7.12.6 reserves it for a bridge that runs STP;
    the kernel's br_handle_frame: "If STP is turned off, then must forward"), while one with
    STP takes it in and answers it (the twin above shows both). So A's BPDU reaching B and C
    is the wire's own word that STP is off; br0's BPDUs are then counted in one quiet window."""
    probe = bridge_abc.probe
    probe.listen_all()
    probe.send(A, INFERIOR_BPDU)
    for port in (B, C):
        assert probe.expect(port, is_bpdu_from(MAC_A)), \
            "A's BPDU was not forwarded: the bridge took it in, as one running STP does\n" + probe.evidence(port)
    own = probe.expect_none_on((A, B, C), is_bpdu_from(bridge_abc.mac("host", "br0")))
    assert all(strays == [] for strays in own.values()), {str(port): strays.format() for port, strays in own.items()}


@pytest.mark.parametrize("stp_state,phases", [
    # (the port's state, how long it may take to get there, does it forward, does it learn)
    pytest.param(1, [("listening", DEADLINE, False, False), ("learning", FORWARD_DELAY + DEADLINE, False, True)],
                 id="with-stp-it-listens-then-learns-before-it-forwards",
                 marks=pytest.mark.document("000", "「STP 控制」: 「stp_state 1」 (listening, learning, forwarding)")),
    pytest.param(0, [("forwarding", DEADLINE, True, True)], id="without-stp-it-forwards-at-once",
                 marks=pytest.mark.document("000", "「STP 控制」 (stp_state 0): a port forwards as soon as it is up")),
])
def test_a_port_that_comes_up(bridge_abc, stp_state, phases):
    probe = bridge_abc.probe
    probe.listen_all()
    set_bridge(bridge_abc, br_forward_delay=int(FORWARD_DELAY * 100))
    if stp_state:  # 0 is the lab's own (the kernel's default)
        set_bridge(bridge_abc, br_stp_state=stp_state)
    set_link(bridge_abc, "host", "veth1", up=False)
    set_link(bridge_abc, "host", "veth1", up=True)
    for state, deadline, forwards, learns in phases:
        assert bridge.wait_port_state(bridge_abc, "host", "veth1", state, deadline), \
            bridge.port_state(bridge_abc, "host", "veth1")
        frame = l2_frame(MAC_A, MAC_B, f"A while veth1 is {state}")
        probe.send(A, frame)
        if learns:
            assert bridge.wait_fdb(bridge_abc, "host", "br0", lambda entries: MAC_A in entries, DEADLINE), \
                learned(bridge_abc)
        if forwards:
            assert probe.expect(B, frame), probe.evidence(B, match=frame)
        else:
            assert probe.expect_none(B, frame) == [], f"a {state} port forwarded a frame"
        if not learns:
            assert MAC_A not in learned(bridge_abc), f"a {state} port learned a MAC"


# -- port isolation ------------------------------------------------------------------------

def isolate_ports_1_and_2(lab):
    for port in ("veth1", "veth2"):
        bridge.set_port(lab, "host", port, isolated=True)
    assert [bridge.port_flags(lab, "host", p)["isolated"] for p in ("veth1", "veth2", "veth3")] == [True, True, False]


@pytest.mark.requires("port_isolation")
@pytest.mark.document("000", "「Bridge vs 纯路由」: 「| 广播域 | 共享广播域 | 隔离广播 |」 "
                        "(port isolation is the kernel's bridge option; no document has it)")
def test_isolated_ports_cannot_talk_to_each_other(bridge_abc):
    probe = bridge_abc.probe
    probe.listen_all()
    isolate_ports_1_and_2(bridge_abc)
    for src, mac, dst in ((A, MAC_A, B), (B, MAC_B, A)):
        frame = l2_frame(mac, BROADCAST, f"{src} to everyone")
        probe.send(src, frame)
        assert probe.expect(C, frame), probe.evidence(C, match=frame)  # the flood happened...
        assert probe.expect_none(dst, frame) == [], f"{dst} is isolated like {src} but got its frame"


@pytest.mark.requires("port_isolation")
@pytest.mark.document("000", "「Bridge vs 纯路由」: 「| 广播域 | 共享广播域 |」 (isolated ports and a non-isolated one: the kernel's; no document has it)")
def test_isolated_ports_still_talk_to_a_port_that_is_not_isolated(bridge_abc):
    probe = bridge_abc.probe
    probe.listen_all()
    isolate_ports_1_and_2(bridge_abc)
    for src, mac, dst, dst_mac in ((A, MAC_A, C, MAC_C), (C, MAC_C, A, MAC_A), (C, MAC_C, B, MAC_B)):
        frame = l2_frame(mac, dst_mac, f"{src} to {dst}")
        probe.send(src, frame)
        assert probe.expect(dst, frame), probe.evidence(dst, match=frame)
