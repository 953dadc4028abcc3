"""Flannel across two hosts: document 004, "Flannel" / "VXLAN", between two real kernels.

Runs on node1 of the two-host lab (``python -m harness vm twohost``: two VMs, their eth1 on one
private network, 192.168.1.10 and 192.168.1.11); elsewhere it skips. Each node is programmed as
flanneld programs it (harness.vm.flannel_node): flannel.1 VNI 1 on UDP 8472, nolearning, MTU
1450, and for the other node the onlink route to its /24 via its VTEP address, the permanent
neighbour and the FDB entry, with the VtepMAC the other kernel chose at this run. Node2 is driven
over ssh on the management network, so the underlay carries only the lab's traffic.
"""
import json
import os
import socket
import subprocess

import pytest

from harness.kernel import nsutil
from harness.vm import flannel_node
from pytest_netconform.twohost import two_host_cluster, two_hosts  # noqa: F401 (the fixtures)

pytestmark = pytest.mark.area("VXLAN")

POD1A, POD2A = "10.244.1.2", "10.244.2.2"
EXCHANGE_PORT = 5000
# The one window of the negative check: node2 listens this long from the moment it says ready. Two
# TCG VMs are 25-65x slower than this machine; a frame that crosses takes milliseconds even there.
CROSS_HOST_WINDOW = 3.0
PING_DEADLINE = 10  # seconds ping waits for the reply (a positive check: it returns at the reply)


def ping(pod: str, address: str, wait: float) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net={nsutil.NETNS_RUN_DIR}/{pod}", "ping", "-c", "1", "-W", f"{wait:g}",
                           address], capture_output=True, text=True, timeout=wait + 30)


def socket_in(pod: str, kind: int) -> socket.socket:
    fd = os.open(os.path.join(nsutil.NETNS_RUN_DIR, pod), os.O_RDONLY)
    try:
        with nsutil.entered(fd):
            sock = socket.socket(socket.AF_INET, kind)
    finally:
        os.close(fd)
    sock.settimeout(PING_DEADLINE)
    return sock


def vxlan_frames(frames, src, dst):
    return [f for f in frames if "vxlan" in f and (f["src"], f["dst"]) == (src, dst)]


@pytest.mark.document("004", "VXLAN: 「3. **数据封装**：Flannel 使用 `VXLAN` 协议将原始数据包封装在 UDP 报文中，"
                      "并通过底层网络发送到目标节点」 (between two hosts' kernels)")
def test_a_pod_on_node1_pings_a_pod_on_node2_in_vxlan_vni_1_on_udp_8472(two_hosts):
    node1, node2 = two_hosts.leases["node1"], two_hosts.leases["node2"]
    underlay = flannel_node.packet_socket(two_hosts.node1.underlay)
    done = ping("pod1a", POD2A, PING_DEADLINE)
    frames = flannel_node.queued(underlay)
    assert done.returncode == 0, f"pod2a did not answer pod1a: {done.stdout}{done.stderr}"
    out = vxlan_frames(frames, node1["public_ip"], node2["public_ip"])
    echo = [f for f in out if (f["vxlan"].get("inner_src"), f["vxlan"].get("inner_dst")) == (POD1A, POD2A)]
    assert echo, f"no VXLAN from node1 to node2 carrying pod1a's echo on eth1: {frames}"
    vxlan = echo[0]["vxlan"]
    assert vxlan["vni"] == 1 and vxlan["flags"] & 0x08 and vxlan["inner_proto"] == 1, vxlan  # I flag: VNI valid
    # flannel.1 to flannel.1: the inner frame is addressed to the VtepMAC node2's kernel published.
    assert (vxlan["inner_src_mac"], vxlan["inner_dst_mac"]) == (node1["vtep_mac"], node2["vtep_mac"]), vxlan
    back = [f["vxlan"] for f in vxlan_frames(frames, node2["public_ip"], node1["public_ip"])]
    assert any((v["vni"], v.get("inner_src"), v.get("inner_dst")) == (1, POD2A, POD1A) for v in back), frames


@pytest.mark.document("004", "VXLAN: 「5. **目标 Pod 接收数据**：解封装后的数据包通过目标节点的 `cni0` 网桥，最终传递给目标 Pod」")
def test_a_tcp_and_a_udp_exchange_cross_from_a_pod_on_node1_to_a_pod_on_node2(two_hosts):
    server = two_hosts.remote.start("serve", "--port", str(EXCHANGE_PORT), "--window", "120")
    underlay = flannel_node.packet_socket(two_hosts.node1.underlay)
    with socket_in("pod1a", socket.SOCK_STREAM) as tcp:
        tcp.connect((POD2A, EXCHANGE_PORT))
        tcp.sendall(b"netconform tcp")
        tcp_answer = tcp.recv(4096)
    with socket_in("pod1a", socket.SOCK_DGRAM) as udp:
        udp.sendto(b"netconform udp", (POD2A, EXCHANGE_PORT))
        udp_answer = udp.recv(4096)
    two_hosts.remote.finish(server)
    frames = flannel_node.queued(underlay)
    # pod2a's server says whom it heard: pod1a's own address, not a node's (no NAT on the way).
    assert tcp_answer == f"netconform tcp from {POD1A}".encode(), tcp_answer
    assert udp_answer == f"netconform udp from {POD1A}".encode(), udp_answer
    carried = {(f["vxlan"]["vni"], f["vxlan"].get("inner_proto"), f["vxlan"].get("inner_dport"))
               for f in vxlan_frames(frames, two_hosts.node1.address, two_hosts.node2.address)
               if f["vxlan"].get("inner_dst") == POD2A}
    assert {(1, 6, EXCHANGE_PORT), (1, 17, EXCHANGE_PORT)} <= carried, f"VXLAN node1 -> node2 carried {carried}"


@pytest.mark.document("004", "Flannel VXLAN: VNI (a different VNI on one host, between two hosts' kernels)")
@pytest.mark.parametrize("two_hosts", [pytest.param(2, id="node1-on-vni-2")], indirect=True)
def test_with_vni_2_on_node1_its_frames_reach_node2_and_no_pod(two_hosts):
    capture = two_hosts.remote.start("capture", "--window", f"{CROSS_HOST_WINDOW:g}")
    done = ping("pod1a", POD2A, CROSS_HOST_WINDOW)
    seen = json.loads(two_hosts.remote.finish(capture))
    assert done.returncode != 0, f"pod2a answered across a VNI mismatch: {done.stdout}"
    # The frames do reach node2's eth1, from node1, in VNI 2, carrying pod1a's echo to pod2a ...
    arrived = [f["vxlan"] for f in vxlan_frames(seen["underlay"], two_hosts.node1.address, two_hosts.node2.address)]
    assert any((v["vni"], v.get("inner_src"), v.get("inner_dst")) == (2, POD1A, POD2A) for v in arrived), seen
    assert all(v["vni"] == 2 for v in arrived), arrived
    # ... and node2, whose flannel.1 has VNI 1, hands them to nobody: not flannel.1, not pod2a.
    for where in ("vtep", "pod"):
        strays = [f for f in seen[where] if f["src"] == POD1A]
        assert strays == [], f"node2's {where} saw pod1a's traffic: {strays}"
