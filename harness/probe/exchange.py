"""Exchanges through a node's own kernel stack: ICMP echo, UDP and TCP.

Unlike frames sent with the probe's packet sockets, these go through the node's
routing, neighbour resolution, netfilter and conntrack, as a container's traffic
does; each side says what it saw.
"""
from __future__ import annotations

import errno
import os
import socket
import struct
import time
from dataclasses import dataclass

from harness.kernel import fdwait
from harness.evidence import margins
from harness.probe.steps import reported

DEADLINE = 1.0  # seconds a positive check waits at most; it returns on the first match
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


@dataclass
class PingResult:
    ok: bool
    rtt: float | None = None
    reply_from: str | None = None
    ttl: int | None = None
    error: str | None = None

    def __bool__(self) -> bool:
        return self.ok


@dataclass
class Exchange:
    """A UDP or TCP exchange between two nodes, as both ends saw it."""
    ok: bool
    server_saw: tuple[str, int] | None = None  # the client's address as the server saw it
    client_saw: tuple[str, int] | None = None  # the server's address as the client saw it
    reply: bytes | None = None
    error: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


class StackExchanges:
    """ping/udp/tcp for the probe (it provides ``live`` and ``drain``)."""

    def init_stack(self) -> None:
        self._icmp: dict[str, socket.socket] = {}
        self._icmp_id = os.getpid() & 0xFFFF
        self._icmp_seq = 0

    def close_stack_sockets(self) -> None:
        for sock in self._icmp.values():
            sock.close()
        self._icmp.clear()

    # -- through the kernel's stack -------------------------------------------------
    def _icmp_socket(self, node: str) -> socket.socket:
        if node not in self._icmp:
            with self.live.entered(node):
                sock = socket.socket(socket.AF_INET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.IPPROTO_ICMP)
            sock.setblocking(False)
            self._icmp[node] = sock
        return self._icmp[node]

    @reported(lambda node, dst, *a, **k: f"ping {dst} from {node}")
    def ping(self, node: str, dst: str, timeout: float = DEADLINE, ttl: int | None = None) -> PingResult:
        """One ICMP echo from ``node`` to ``dst`` through the node's own routing."""
        sock = self._icmp_socket(node)
        self.drain()  # like send(): expectations after a ping see only what followed it
        while True:  # stale replies of earlier pings
            try:
                sock.recv(65535)
            except BlockingIOError:
                break
        self._icmp_seq = (self._icmp_seq + 1) & 0xFFFF
        ident, seq = self._icmp_id, self._icmp_seq
        payload = b"netconform" + struct.pack("!d", time.time())
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl or 64)
        start = time.perf_counter()
        try:
            sock.sendto(packet, (dst, 0))
        except OSError as exc:
            return PingResult(False, error=exc.strerror or os.strerror(exc.errno or errno.EIO))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return PingResult(False, error=f"no reply from {dst} within {timeout:g} s")
            ready, _, _ = fdwait.select([sock], [], [], left)
            if not ready:
                continue
            try:
                data, (source, _) = sock.recvfrom(65535)
            except BlockingIOError:
                continue
            except OSError as exc:
                return PingResult(False, error=exc.strerror)
            ihl = (data[0] & 0x0F) * 4
            kind, code = data[ihl], data[ihl + 1]
            if kind == 0 and data[ihl + 4:ihl + 8] == struct.pack("!HH", ident, seq):
                margins.note("ping", time.perf_counter() - start, timeout)
                return PingResult(True, rtt=time.perf_counter() - start, reply_from=source, ttl=data[8])
            if kind in (3, 11):  # unreachable / time exceeded, quoting our echo
                inner = data[ihl + 8:]
                inner_ihl = (inner[0] & 0x0F) * 4 if inner else 0
                if inner[inner_ihl + 4:inner_ihl + 8] == struct.pack("!HH", ident, seq):
                    what = {3: "destination unreachable", 11: "time exceeded"}[kind]
                    return PingResult(False, reply_from=source, error=f"ICMP {what} (code {code}) from {source}")

    def _socket_pair(self, server: str, client: str, kind: int) -> tuple[socket.socket, socket.socket]:
        """A server socket in ``server``'s namespace and a client one in ``client``'s (after a drain)."""
        self.drain()
        with self.live.entered(server):
            srv = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)
        with self.live.entered(client):
            cli = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)
        return srv, cli

    @reported(lambda client, server, dst, port, *a, **k: f"UDP {client} -> {dst}:{port} (server in {server})")
    def udp(self, client: str, server: str, dst: str, port: int, listen: str = "0.0.0.0",
            payload: bytes = b"netconform", timeout: float = DEADLINE, listen_port: int | None = None) -> Exchange:
        """Client node sends a datagram to dst:port; the server node echoes it back."""
        begun = time.monotonic()
        srv, cli = self._socket_pair(server, client, socket.SOCK_DGRAM)
        try:
            srv.bind((listen, listen_port or port))
            # Answer from the address the datagram was sent to, as a DNS server does: a
            # multi-homed server otherwise answers from its primary address, which a NAT's
            # conntrack entry (expecting the original destination) would not reverse.
            srv.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            cli.sendto(payload, (dst, port))
            ready, _, _ = fdwait.select([srv], [], [], timeout)
            if not ready:
                return Exchange(False, error=f"the server in {server} got nothing within {timeout:g} s")
            data, ancillary, _, peer = srv.recvmsg(65535, socket.CMSG_SPACE(12))
            arrived_at = [d[8:12] for level, kind, d in ancillary if level == socket.IPPROTO_IP and kind == IP_PKTINFO]
            control = [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("!I", 0) + arrived_at[0] + b"\0" * 4)] \
                if arrived_at else []
            try:
                srv.sendmsg([data], control, 0, peer)
            except OSError as exc:  # e.g. the server has no route back to what it saw
                return Exchange(False, server_saw=peer, error=f"the server could not answer: {exc.strerror}")
            ready, _, _ = fdwait.select([cli], [], [], timeout)
            if not ready:
                return Exchange(False, server_saw=peer, error="no reply reached the client")
            reply, source = cli.recvfrom(65535)
            margins.note("udp", time.monotonic() - begun, 2 * timeout)  # two waits: there and back
            return Exchange(True, server_saw=peer, client_saw=source, reply=reply)
        except OSError as exc:
            return Exchange(False, error=exc.strerror)
        finally:
            srv.close()
            cli.close()

    @reported(lambda client, server, dst, port, *a, **k: f"TCP {client} -> {dst}:{port} (server in {server})")
    def tcp(self, client: str, server: str, dst: str, port: int, listen: str = "0.0.0.0",
            payload: bytes = b"netconform", timeout: float = DEADLINE, listen_port: int | None = None) -> Exchange:
        """Client node connects to dst:port; a listener in the server node accepts and echoes.

        ``listen_port`` is the port the server listens on when it differs from the one the
        client dials (a port mapping: 18862 -> 80). A refused connection returns at once.
        """
        srv, cli = self._socket_pair(server, client, socket.SOCK_STREAM)
        conn = None
        try:
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind((listen, listen_port or port))
            srv.listen(1)
            cli.setblocking(False)
            code = cli.connect_ex((dst, port))
            if code not in (0, errno.EINPROGRESS):
                return Exchange(False, error=os.strerror(code))
            deadline = time.monotonic() + timeout
            while True:  # until the listener gets the connection, the client its refusal, or the deadline
                left = max(0.0, deadline - time.monotonic())
                accepting, settled, _ = fdwait.select([srv], [cli], [], left)
                if accepting:
                    break
                code = cli.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    return Exchange(False, error=f"nothing reached the listener in {server}; "
                                                 f"the client got: {os.strerror(code)}")
                if settled:  # connected, but not (yet) seen by our listener: something else answered
                    if fdwait.select([srv], [], [], max(0.0, deadline - time.monotonic()))[0]:
                        break
                    return Exchange(False, error=f"the client reached something other than the listener "
                                                 f"in {server}")
                if time.monotonic() >= deadline:
                    return Exchange(False, error=f"no connection reached the listener in {server} "
                                                 f"within {timeout:g} s")
            margins.note("tcp connect", time.monotonic() - deadline + timeout, timeout)
            conn, peer = srv.accept()
            _, writable, _ = fdwait.select([], [cli], [], timeout)
            code = cli.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if not writable or code:
                return Exchange(False, server_saw=peer, error=os.strerror(code) if code else "connect timed out")
            cli.setblocking(True)
            cli.settimeout(timeout)
            conn.settimeout(timeout)
            cli.sendall(payload)
            conn.sendall(conn.recv(65535))
            reply = cli.recv(65535)
            return Exchange(True, server_saw=peer, client_saw=cli.getpeername(), reply=reply)
        except OSError as exc:
            return Exchange(False, error=exc.strerror or str(exc))
        finally:
            for s in (conn, cli, srv):
                if s is not None:
                    s.close()
