"""Exchanges through a node's own kernel stack: ICMP echo, UDP and TCP.

Unlike frames sent with the probe's packet sockets, these go through the node's
routing, neighbour resolution, netfilter and conntrack, as a container's traffic
does; each side says what it saw.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.kernel.deadline import DEADLINE, Deadline
from harness.probe import icmp

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_RECVPKTINFO, IPV6_PKTINFO = 49, 50  # linux/in6.h (RFC 3542)
ANY = {4: "0.0.0.0", 6: "::"}


def family_of(address: str) -> int:
    """4 or 6: the IP version of ``address``, which chooses the exchange's sockets."""
    return ipaddress.ip_address(address.split("%")[0]).version


def _listen_address(listen: str, version: int) -> str:
    return ANY[6] if version == 6 and listen == ANY[4] else listen


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


@dataclass
class Transfer:
    """A bounded TCP transfer: ``size`` bytes from client to server, timed by the server from the accepted
    connection to the last byte (what a rate measurement needs: a fixed number of bytes, no fixed time)."""
    ok: bool
    size: int
    received: int = 0
    seconds: float | None = None
    error: str | None = None

    def __bool__(self) -> bool:
        return self.ok

    def rate(self, discount: int = 0) -> float:
        """The bits per second the transfer took, after ``discount`` bytes (a token bucket's burst, which
        passes at once)."""
        return 8 * max(0, self.received - discount) / self.seconds


class StackExchanges:
    """ping, UDP and TCP through the nodes' own stacks: a component of the probe.

    ``drain`` is called before each exchange, so that the probe's expectations after one
    see only what followed it.
    """

    def __init__(self, live, drain: Callable[[], None]):
        self.live = live
        self.drain = drain
        self._icmp: dict[tuple[str, int], tuple[socket.socket, int]] = {}  # (node, 4|6) -> raw socket, PMTU default
        self._icmp_id = os.getpid() & 0xFFFF
        self._icmp_seq = 0

    def close(self) -> None:
        for sock, _ in self._icmp.values():
            sock.close()
        self._icmp.clear()

    def _icmp_socket(self, node: str, version: int) -> tuple[socket.socket, int]:
        if (node, version) not in self._icmp:
            family, proto = (socket.AF_INET6, socket.IPPROTO_ICMPV6) if version == 6 else \
                (socket.AF_INET, socket.IPPROTO_ICMP)
            with self.live.entered(node):
                sock = socket.socket(family, socket.SOCK_RAW | socket.SOCK_CLOEXEC, proto)
            sock.setblocking(False)
            if version == 6:
                sock.setsockopt(socket.IPPROTO_IPV6, icmp.IPV6_RECVHOPLIMIT, 1)
                default = sock.getsockopt(socket.IPPROTO_IPV6, icmp.IPV6_MTU_DISCOVER)
            else:
                default = sock.getsockopt(socket.IPPROTO_IP, icmp.IP_MTU_DISCOVER)
            self._icmp[(node, version)] = sock, default
        return self._icmp[(node, version)]

    def ping(self, node: str, dst: str, timeout: float = DEADLINE, ttl: int | None = None,
             size: int | None = None, df: bool | None = None) -> PingResult:
        """One ICMP echo from ``node`` to ``dst`` through the node's own routing: ICMPv6 when
        ``dst`` is an IPv6 address (its ``ttl`` is the hop limit).

        ``size`` is the IP packet's (``ping -s SIZE-28``, IPv6 ``SIZE-48``); ``df`` sets or
        clears Don't Fragment (``ping -M do|dont``; None: the socket's default, path MTU
        discovery; IPv6 routers never fragment, ``df`` then says whether the sender may).
        With DF the kernel refuses a packet larger than the route's MTU ("Message too
        long"); an ICMP error quoting the echo (frag-needed, with the MTU) ends the wait.
        """
        version = family_of(dst)
        sock, pmtu_default = self._icmp_socket(node, version)
        self.drain()
        while True:  # stale replies of earlier pings
            try:
                sock.recv(65535)
            except BlockingIOError:
                break
        self._icmp_seq = (self._icmp_seq + 1) & 0xFFFF
        ident, seq = self._icmp_id, self._icmp_seq
        payload = b"netconform" + struct.pack("!d", time.time())
        if size is not None:
            payload = icmp.padded(payload, size, version)
        if version == 6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl or 64)
            sock.setsockopt(socket.IPPROTO_IPV6, icmp.IPV6_MTU_DISCOVER, pmtu_default if df is None
                            else icmp.IPV6_PMTUDISC_DO if df else icmp.IPV6_PMTUDISC_DONT)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl or 64)
            sock.setsockopt(socket.IPPROTO_IP, icmp.IP_MTU_DISCOVER,
                            pmtu_default if df is None else icmp.IP_PMTUDISC_DO if df else icmp.IP_PMTUDISC_DONT)
        wait = Deadline(timeout, "ping")
        try:
            sock.sendto(icmp.echo_request(ident, seq, payload, version), (dst, 0))
        except OSError as exc:
            return PingResult(False, error=exc.strerror or os.strerror(exc.errno or errno.EIO))
        while wait.wait([sock])[0]:
            try:
                data, ancillary, _, peer = sock.recvmsg(65535, socket.CMSG_SPACE(4))
            except BlockingIOError:
                continue
            except OSError as exc:
                return PingResult(False, error=exc.strerror)
            source = peer[0]
            if version == 6:
                hops = [struct.unpack("=i", d[:4])[0] for level, kind, d in ancillary
                        if level == socket.IPPROTO_IPV6 and kind == icmp.IPV6_HOPLIMIT]
                answer = icmp.answer_to6(data, ident, seq, source, hops[0] if hops else None)
            else:
                answer = icmp.answer_to(data, ident, seq, source)
            if answer is not None and answer.reply:
                return PingResult(True, rtt=wait.met(), reply_from=source, ttl=answer.ttl)
            if answer is not None:
                return PingResult(False, reply_from=source, error=answer.error)
        return PingResult(False, error=f"no reply from {dst} within {timeout:g} s")

    def _socket_pair(self, server: str, client: str, kind: int, version: int) -> tuple[socket.socket, socket.socket]:
        """A server socket in ``server``'s namespace and a client one in ``client``'s (after a drain)."""
        family = socket.AF_INET6 if version == 6 else socket.AF_INET
        self.drain()
        with self.live.entered(server):
            srv = socket.socket(family, kind | socket.SOCK_CLOEXEC)
        with self.live.entered(client):
            cli = socket.socket(family, kind | socket.SOCK_CLOEXEC)
        return srv, cli

    def udp(self, client: str, server: str, dst: str, port: int, listen: str = "0.0.0.0",
            payload: bytes = b"netconform", timeout: float = DEADLINE, listen_port: int | None = None) -> Exchange:
        """Client node sends a datagram to dst:port; the server node echoes it back (over IPv6
        when ``dst`` is an IPv6 address; the default ``listen`` is then ``::``)."""
        version = family_of(dst)
        listen = _listen_address(listen, version)
        wait = Deadline(2 * timeout, "udp")  # two waits of ``timeout`` each: there and back
        srv, cli = self._socket_pair(server, client, socket.SOCK_DGRAM, version)
        try:
            srv.bind((listen, listen_port or port))
            # Answer from the address the datagram was sent to, as a DNS server does: a
            # multi-homed server otherwise answers from its primary address, which a NAT's
            # conntrack entry (expecting the original destination) would not reverse.
            level, option, recv_option, size = (socket.IPPROTO_IPV6, IPV6_PKTINFO, IPV6_RECVPKTINFO, 20) \
                if version == 6 else (socket.IPPROTO_IP, IP_PKTINFO, IP_PKTINFO, 12)
            srv.setsockopt(level, recv_option, 1)
            cli.sendto(payload, (dst, port))
            if not wait.wait([srv], at_most=timeout)[0]:
                return Exchange(False, error=f"the server in {server} got nothing within {timeout:g} s")
            data, ancillary, _, peer = srv.recvmsg(65535, socket.CMSG_SPACE(size))
            arrived_at = [d for lvl, kind, d in ancillary if lvl == level and kind == option]
            control = []
            if arrived_at and version == 6:  # in6_pktinfo: the address, then the interface (0: any)
                control = [(level, option, arrived_at[0][:16] + b"\0" * 4)]
            elif arrived_at:  # in_pktinfo: interface, local address (the source to use), destination
                control = [(level, option, struct.pack("!I", 0) + arrived_at[0][8:12] + b"\0" * 4)]
            try:
                srv.sendmsg([data], control, 0, peer)
            except OSError as exc:  # e.g. the server has no route back to what it saw
                return Exchange(False, server_saw=peer[:2], error=f"the server could not answer: {exc.strerror}")
            if not wait.wait([cli], at_most=timeout)[0]:
                return Exchange(False, server_saw=peer[:2], error="no reply reached the client")
            reply, source = cli.recvfrom(65535)
            wait.met()
            return Exchange(True, server_saw=peer[:2], client_saw=source[:2], reply=reply)
        except OSError as exc:
            return Exchange(False, error=exc.strerror)
        finally:
            srv.close()
            cli.close()

    def tcp(self, client: str, server: str, dst: str, port: int, listen: str = "0.0.0.0",
            payload: bytes = b"netconform", timeout: float = DEADLINE, listen_port: int | None = None) -> Exchange:
        """Client node connects to dst:port; a listener in the server node accepts and echoes.

        ``listen_port`` is the port the server listens on when it differs from the one the
        client dials (a port mapping: 18862 -> 80). A refused connection returns at once.
        Over IPv6 when ``dst`` is an IPv6 address (the default ``listen`` is then ``::``).
        """
        version = family_of(dst)
        listen = _listen_address(listen, version)
        srv, cli = self._socket_pair(server, client, socket.SOCK_STREAM, version)
        conn = None
        try:
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind((listen, listen_port or port))
            srv.listen(1)
            cli.setblocking(False)
            code = cli.connect_ex((dst, port))
            if code not in (0, errno.EINPROGRESS):
                return Exchange(False, error=os.strerror(code))
            wait = Deadline(timeout, "tcp connect")
            while True:  # until the listener gets the connection, the client its refusal, or the deadline
                accepting, settled = wait.wait([srv], [cli])
                if accepting:
                    break
                code = cli.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    return Exchange(False, error=f"nothing reached the listener in {server}; "
                                                 f"the client got: {os.strerror(code)}")
                if settled:  # connected, but not (yet) seen by our listener: something else answered
                    if wait.wait([srv])[0]:
                        break
                    return Exchange(False, error=f"the client reached something other than the listener "
                                                 f"in {server}")
                if wait.passed:
                    return Exchange(False, error=f"no connection reached the listener in {server} "
                                                 f"within {timeout:g} s")
            wait.met()
            conn, peer = srv.accept()
            peer = peer[:2]
            _, writable = Deadline(timeout).wait([], [cli])
            code = cli.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if not writable or code:
                return Exchange(False, server_saw=peer, error=os.strerror(code) if code else "connect timed out")
            cli.setblocking(True)
            cli.settimeout(timeout)
            conn.settimeout(timeout)
            cli.sendall(payload)
            conn.sendall(conn.recv(65535))
            reply = cli.recv(65535)
            return Exchange(True, server_saw=peer, client_saw=cli.getpeername()[:2], reply=reply)
        except OSError as exc:
            return Exchange(False, error=exc.strerror or str(exc))
        finally:
            for s in (conn, cli, srv):
                if s is not None:
                    s.close()

    def transfer(self, client: str, server: str, dst: str, port: int, size: int, timeout: float = DEADLINE,
                 window: int | None = None) -> Transfer:
        """``size`` bytes over one TCP connection from ``client`` to ``dst:port`` (a listener in ``server``),
        as fast as both stacks go; the server times it, from the accepted connection to the last byte.
        ``window``: the client's send buffer, which bounds the bytes in flight (below a shaper's queue, no
        drop, so no retransmission timeout weighs on a rate measured through it)."""
        version = family_of(dst)
        srv, cli = self._socket_pair(server, client, socket.SOCK_STREAM, version)
        conn, received, chunk = None, 0, b"\0" * 65536
        try:
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind((ANY[version], port))
            srv.listen(1)
            if window:
                cli.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, window)
            cli.settimeout(timeout)
            cli.connect((dst, port))
            wait = Deadline(timeout, "tcp transfer")
            if not wait.wait([srv])[0]:
                return Transfer(False, size, error=f"no connection reached the listener in {server}")
            conn, _ = srv.accept()
            started = time.monotonic()
            conn.setblocking(False)
            cli.setblocking(False)
            sent = 0
            while received < size:
                readable, writable = wait.wait([conn], [cli] if sent < size else [])
                if wait.passed:
                    return Transfer(False, size, received, error=f"{received} of {size} bytes within {timeout:g} s")
                if writable:
                    sent += cli.send(chunk[:size - sent])
                if readable:
                    data = conn.recv(1 << 20)
                    if not data:
                        return Transfer(False, size, received, error="the connection closed early")
                    received += len(data)
            return Transfer(True, size, received, seconds=time.monotonic() - started)
        except OSError as exc:
            return Transfer(False, size, received, error=exc.strerror or str(exc))
        finally:
            for s in (conn, cli, srv):
                if s is not None:
                    s.close()
