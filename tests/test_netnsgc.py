"""cleanup_barrier: once it returns True, every network namespace released before the call
is destroyed -- seen from outside through a veth whose far end lived in it (destroying a
namespace deletes its veths, and with them their peers here)."""
import os
import socket

import pytest

from harness.kernel import nsutil
from harness.kernel.netnsgc import cleanup_barrier
from harness.kernel.rtnl import Rtnl


def doomed_namespace_with_a_peer_here(name: str) -> None:
    """A namespace holding one end of veth ``name``/``name``-far and a netlink socket
    (which keeps it alive until an RCU grace period after its close); both released."""
    fd = nsutil.create_netns()
    with nsutil.entered(fd):
        held = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    rtnl = Rtnl()
    try:
        rtnl.add_veth(name, f"{name}-far", peer_netns_fd=fd)
    finally:
        rtnl.close()
        held.close()
        os.close(fd)


@pytest.mark.parametrize("round_", range(10))
def test_a_namespace_released_before_the_barrier_is_gone_after_it(round_):
    names = [f"gc{round_}-{i}" for i in range(3)]
    for name in names:
        doomed_namespace_with_a_peer_here(name)
    assert cleanup_barrier(), "the canaries' DELNSID never came"
    rtnl = Rtnl()
    try:
        left = [name for _, name, _ in rtnl.links() if name in names]
    finally:
        rtnl.close()
    assert not left, f"veths whose far namespace was released before the barrier are still here: {left}"


def test_the_twin_a_namespace_still_held_survives_the_barrier():
    fd = nsutil.create_netns()
    rtnl = Rtnl()
    try:
        rtnl.add_veth("gc-held", "gc-held-far", peer_netns_fd=fd)
        assert cleanup_barrier()
        assert "gc-held" in [name for _, name, _ in rtnl.links()]
    finally:
        rtnl.close()
        os.close(fd)
