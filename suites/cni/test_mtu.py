"""The MTU a CNI configuration sets, checked on the wire between two pods.

A configuration that names an MTU (bridge, ptp, macvlan, ipvlan, vlan: ``mtu``, "explicitly set
MTU to the specified value" in each plugin's README; or the tuning plugin's ``mtu``) promises that a
packet of that size leaves the pod whole and crosses to another pod of the network, and that one byte
more does not leave unfragmented: the packets carry Don't Fragment, so nothing on the way may split
them. Configurations that set no MTU, or keep pods apart, skip in one line.
"""
import pytest

from harness.cni import expect
from harness.probe import QUIET_WINDOW

pytestmark = [pytest.mark.area("CNI datapath"),
              pytest.mark.promises(lambda network: expect.mtu(network) is not None, "the configuration sets no MTU"),
              pytest.mark.promises(expect.pods_reach_each_other, "the configuration keeps pods apart")]


def two_pods(cni, add_pod) -> str:
    """pod1 and pod2 on the network; pod2's address."""
    for name in ("pod1", "pod2"):
        add_pod(name)
    cni.attach("pod1")
    return cni.attach("pod2").addresses()[0].split("/")[0]


def test_a_df_packet_of_the_configured_mtu_crosses_from_pod_to_pod(cni, add_pod):
    mtu, pod2 = expect.mtu(cni.network), two_pods(cni, add_pod)
    ping = cni.live.probe.ping("pod1", pod2, size=mtu, df=True)
    assert ping, f"a {mtu}-byte packet with DF (the configured mtu) from pod1 to pod2 ({pod2}): {ping.error}"


def test_a_df_packet_one_byte_over_the_configured_mtu_does_not_leave_whole(cni, add_pod):
    mtu, pod2 = expect.mtu(cni.network), two_pods(cni, add_pod)
    ping = cni.live.probe.ping("pod1", pod2, size=mtu + 1, df=True, timeout=QUIET_WINDOW)
    assert not ping, f"a {mtu + 1}-byte packet with DF crossed from pod1 to pod2 though the configured mtu is {mtu}"
