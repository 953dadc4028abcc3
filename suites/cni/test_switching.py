"""The bridge a CNI configuration puts its pods on, checked as the switch it is, on the wire.

The bridge plugin attaches each pod's veth to a Linux bridge (containernetworking/plugins,
plugins/main/bridge/README.md: "all containers (on the same host) are plugged into a bridge (virtual
switch)"), a learning switch as IEEE 802.1D describes it: a frame for a MAC the bridge has not learned
is flooded to every other port, a frame for a learned MAC leaves by that MAC's port only, and never by
the port it came in on unless the port is in hairpin mode (the plugin's ``hairpinMode``). The frames
are plain Ethernet frames of an experimental EtherType, from and to made-up MACs behind the pods'
ports, so no pod's stack answers them. Configurations without a bridge skip in one line.
"""
import pytest

from harness import Port, l2_frame
from harness.cni import expect

pytestmark = [pytest.mark.area("CNI datapath"),
              pytest.mark.promises(expect.switched, "the pods share no bridge (not the bridge plugin)")]

MAC_1, MAC_1B, MAC_2, MAC_3 = "02:00:00:c0:01:01", "02:00:00:c0:01:0b", "02:00:00:c0:02:02", "02:00:00:c0:03:03"
NOBODY = "02:00:00:c0:ff:ff"  # a MAC behind no port
POD = {name: Port(name, "eth0") for name in ("pod1", "pod2", "pod3")}


def attach_pods(cni, add_pod):
    """Three pods on the bridge; the probe, listening on their interfaces."""
    for name in POD:
        add_pod(name)
        cni.attach(name)
    cni.live.probe.listen(*POD.values())
    return cni.live.probe


def teach(probe, mac: str, pod: str, seen_by: str) -> None:
    """Let the bridge learn ``mac`` on ``pod``'s port: a frame from it, seen crossing to ``seen_by``."""
    frame = l2_frame(mac, NOBODY, f"{mac} behind {pod}")
    probe.send(POD[pod], frame)
    assert probe.expect(POD[seen_by], frame), \
        f"a frame from {pod} never crossed the bridge to {seen_by}\n" + probe.evidence(POD[seen_by], match=frame)


def test_a_frame_for_an_unknown_mac_is_flooded_to_every_other_pod(cni, add_pod):
    pods = attach_pods(cni, add_pod)
    frame = l2_frame(MAC_1, NOBODY, "pod1 to a MAC no port has")
    pods.send(POD["pod1"], frame)
    for pod in ("pod2", "pod3"):
        assert pods.expect(POD[pod], frame), \
            f"a frame for an unknown MAC was not flooded to {pod}\n" + pods.evidence(POD[pod], match=frame)


def test_a_frame_for_a_learned_mac_leaves_by_that_pods_port_only(cni, add_pod):
    pods = attach_pods(cni, add_pod)
    teach(pods, MAC_2, "pod2", seen_by="pod1")
    frame = l2_frame(MAC_1, MAC_2, "pod1 to the MAC learned on pod2's port")
    pods.send(POD["pod1"], frame)
    assert pods.expect(POD["pod2"], frame), pods.evidence(POD["pod2"], match=frame)
    strays = pods.expect_none(POD["pod3"], frame)
    assert strays == [], f"a frame for a learned MAC was flooded to pod3 (does the bridge learn?): {strays}"


def test_a_frame_for_a_mac_behind_its_own_port_comes_back_only_in_hairpin_mode(cni, add_pod):
    pods = attach_pods(cni, add_pod)
    teach(pods, MAC_1B, "pod1", seen_by="pod2")
    frame = l2_frame(MAC_1, MAC_1B, "pod1 to the MAC learned on its own port")
    pods.send(POD["pod1"], frame)
    if expect.hairpin(cni.network):
        back = pods.expect(POD["pod1"], frame)
        assert back, "hairpinMode is true, yet the frame did not come back to pod1\n" + \
            pods.evidence(POD["pod1"], match=frame)
    else:
        strays = pods.expect_none(POD["pod1"], frame)
        assert strays == [], f"hairpinMode is off, yet the bridge sent pod1's frame back to it: {strays}"
    strays = pods.expect_none(POD["pod3"], frame)
    assert strays == [], f"a frame for a MAC learned on pod1's port was flooded to pod3: {strays}"
