"""The user-program side of TUN/TAP devices, and Flannel's UDP encapsulator.

The builder makes tun/tap devices persistent (``ip tuntap add``) and leaves them
without a program, so they have no carrier. ``open_tuntap`` attaches to one as a
VPN program or flanneld does (open ``/dev/net/tun``, ``TUNSETIFF`` with the device's
name): from then on the fd reads what the kernel sends out of the device - whole
Ethernet frames on a TAP, bare IP packets on a TUN (IFF_NO_PI: no packet-information
header) - and what is written to it enters the kernel as if received on the device.

``UdpTunnel`` is flanneld's UDP backend (document 004, "Flannel: UDP"): it reads IP
packets from each node's flannel0, finds the destination node from the subnet leases
and sends each packet, bare, as a UDP datagram to that node's public IP, port 8285;
what a node receives on 8285 is written into its flannel0.

Nothing here sleeps: reads wait with ``select`` up to a deadline, and the
encapsulator's thread wakes on an eventfd when it is closed.
"""
from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable

from pyroute2.netlink.exceptions import NetlinkError

from harness.errors import LabError
from harness.kernel import fdwait
from harness.kernel.deadline import DEADLINE, QUIET_WINDOW, Deadline
from harness.kernel.netops import safe_close_fd, settle_links
from harness.kernel.tuntap import IFF_NO_PI, IFF_TAP, IFF_TUN, TUNSETIFF

FLANNEL_UDP_PORT = 8285  # flanneld's UDP backend
VXLAN_OVERHEAD = 50  # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14: FLANNEL_MTU=1450 on a 1500 underlay
UDP_OVERHEAD = 28  # outer IPv4 20 + UDP 8: FLANNEL_MTU=1472 for the UDP backend
STOP_TIMEOUT = 5.0  # seconds close() waits for the encapsulator's thread (it wakes at once)


def _attach(live, node: str, name: str, kind: str) -> int:
    """Open /dev/net/tun in ``node`` and attach to the existing device ``name``; a non-blocking fd."""
    if kind not in ("tun", "tap"):
        raise ValueError(f"kind is 'tun' or 'tap', not {kind!r}")
    flags = (IFF_TUN if kind == "tun" else IFF_TAP) | IFF_NO_PI
    with live.entered(node):  # the fd looks the device up in the namespace it was opened in
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), flags))
        except OSError:
            os.close(fd)
            raise
    # Attaching turns the carrier on; linkwatch must act (qdisc activation, operstate, a bridge port
    # leaving "disabled") before the device passes packets: now, or waited for on older kernels.
    settling = settle_links(live.fd(node), live.rtnl(node), DEADLINE)
    if settling:
        safe_close_fd(fd)
        raise LabError(f"lab {live.name}: {node}: {', '.join(settling.values())} attached but not running "
                       f"after {DEADLINE:g} s")
    return fd


def open_tuntap(live, node: str, name: str, kind: str) -> int:
    """Attach to the persistent tun/tap ``name`` in ``node`` as its user program; the fd.

    The fd is non-blocking and belongs to the lab: it is closed at teardown (it holds
    the namespace), so the caller must not close it.
    """
    fd = _attach(live, node, name, kind)
    live.on_teardown(lambda: safe_close_fd(fd))
    return fd


def read_packet(fd: int, timeout: float = DEADLINE, match: Callable[[bytes], bool] | None = None) -> bytes | None:
    """The first packet (or frame) read from ``fd`` within ``timeout`` that ``match`` accepts, else None."""
    for _ in Deadline(timeout).rounds([fd]):
        for data in _pending(fd):
            if match is None or match(data):
                return data
    return None


def read_window(fd: int, window: float = QUIET_WINDOW) -> list[bytes]:
    """Everything read from ``fd`` during the quiet window (a negative check wants [])."""
    seen: list[bytes] = []
    for _ in Deadline(window).rounds([fd]):
        seen += _pending(fd)
    return seen


def drain(fd: int) -> list[bytes]:
    """Read and return what is pending now, without waiting."""
    return _pending(fd)


def _pending(fd: int) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(os.read(fd, 65535))
        except BlockingIOError:
            return out


def _route_the_network(live, node: str, device: str) -> None:
    """flanneld's UDP backend adds the flannel network's route on its TUN itself (backend/udp, configureIface:
    "explicitly add a route since there might be a route for a subnet already installed by Docker and then it
    won't get auto added"), tolerating EEXIST: 6.x kernels made it as the address's connected route, 5.10 had
    not, for a TUN that was up without a carrier when its address came."""
    ipr, index = live.ipr(node), live.ifindex(node, device)
    for message in ipr.get_addr(index=index, family=socket.AF_INET):
        network = ipaddress.ip_interface(f"{message.get_attr('IFA_ADDRESS')}/{message['prefixlen']}").network
        try:
            ipr.route("add", dst=str(network), oif=index, scope=0)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise


class UdpTunnel:
    """Flanneld's UDP backend for the nodes of a live lab, in a background thread.

    ``leases`` maps each node's subnet to the node and its public IP, as flanneld's
    subnet leases in etcd do (``/coreos.com/network/subnets/10.244.1.0-24`` ->
    ``{"PublicIP": "172.16.0.1"}``)::

        UdpTunnel(live, {"10.244.1.0/24": ("node1", "172.16.0.1"),
                         "10.244.2.0/24": ("node2", "172.16.0.2")})

    On each node it holds the TUN ``device`` and a UDP socket bound to the public IP
    and ``port``. A packet read from a node's TUN goes, unchanged, as the payload of
    one datagram to the node whose subnet holds its destination; a datagram received
    is written into the receiving node's TUN. ``close()`` (registered for teardown)
    stops the thread at once and closes every fd and socket.
    """

    def __init__(self, live, leases: dict[str, tuple[str, str]], device: str = "flannel0",
                 port: int = FLANNEL_UDP_PORT):
        self.leases = [(ipaddress.ip_network(subnet), node, public) for subnet, (node, public) in leases.items()]
        self.port = port
        self.counts = {"encapsulated": 0, "decapsulated": 0, "dropped": 0}
        self.error: BaseException | None = None
        self._tun: dict[int, str] = {}  # fd -> node
        self._udp: dict[socket.socket, int] = {}  # socket -> the TUN fd of its node
        self._out: dict[str, socket.socket] = {}  # node -> its socket
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._closed = False
        live.on_teardown(self.close)
        try:
            for _, node, public in self.leases:
                fd = _attach(live, node, device, "tun")
                self._tun[fd] = node
                _route_the_network(live, node, device)
                with live.entered(node):
                    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._out[node] = sock
                self._udp[sock] = fd
                sock.bind((public, port))
                sock.setblocking(False)
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(target=self._run, name="flanneld-udp", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return hasattr(self, "_thread") and self._thread.is_alive()

    def _node_for(self, packet: bytes):
        if len(packet) < 20 or packet[0] >> 4 != 4:
            return None
        dst = ipaddress.IPv4Address(packet[16:20])
        return next(((node, public) for net, node, public in self.leases if dst in net), None)

    def _run(self) -> None:
        watched = [self._wake, *self._tun, *self._udp]
        try:
            while True:
                ready, _, _ = fdwait.select(watched, [], [])
                if self._wake in ready:
                    return
                for item in ready:
                    if isinstance(item, socket.socket):
                        self._decapsulate(item)
                    else:
                        self._encapsulate(item)
        except BaseException as exc:  # noqa: BLE001 - kept for the caller to see
            self.error = exc

    def _encapsulate(self, fd: int) -> None:
        me = self._tun[fd]
        for packet in _pending(fd):
            target = self._node_for(packet)
            if target is None or target[0] == me:
                self.counts["dropped"] += 1
                continue
            try:
                self._out[me].sendto(packet, (target[1], self.port))
                self.counts["encapsulated"] += 1
            except OSError:
                self.counts["dropped"] += 1

    def _decapsulate(self, sock: socket.socket) -> None:
        while True:
            try:
                packet = sock.recv(65535)
            except BlockingIOError:
                return
            try:
                os.write(self._udp[sock], packet)
                self.counts["decapsulated"] += 1
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.EIO, errno.EAGAIN):
                    raise
                self.counts["dropped"] += 1

    def close(self) -> None:
        """Stop the thread (it wakes at once) and close every TUN fd and socket; idempotent."""
        if self._closed:
            return
        self._closed = True
        os.eventfd_write(self._wake, 1)
        if hasattr(self, "_thread"):
            self._thread.join(STOP_TIMEOUT)
        for sock in self._udp:
            sock.close()
        for fd in self._tun:
            safe_close_fd(fd)
        self._udp.clear()
        self._tun.clear()
        self._out.clear()
        safe_close_fd(self._wake)
