"""The probe engine: frames and packets on the wire of a lab, PTF style.

Packet sockets are opened inside the node's namespace and cached per (node,
interface); MACs come from netlink, layer 2 is built explicitly, and scapy's
process-wide caches (``conf.ifaces``, ``conf.route``) are never used. Before each
send every open socket is drained, so an expectation only sees what followed.
Every frame read or sent is written to the test's pcapng capture.
"""
from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time
from dataclasses import dataclass

from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from .errors import ProbeError
from .match import compile_match, describe
from .pcapng import PcapngWriter

DEADLINE = 1.0  # seconds a positive check waits at most; it returns on the first match
QUIET_WINDOW = 0.04  # the one short window a negative check listens for ("nothing arrives"); the bench bar is 50 ms
ETH_P_ALL = 0x0003
ETH_P_ARP = 0x0806
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


@dataclass(frozen=True)
class Port:
    """An interface of a node: where a probe sends or listens."""
    node: str
    ifname: str

    def __str__(self) -> str:
        return f"{self.node}/{self.ifname}"


@dataclass
class Seen:
    port: Port
    raw: bytes
    outbound: bool
    timestamp_ns: int
    _packet: Packet | None = None

    @property
    def packet(self) -> Packet:
        if self._packet is None:
            self._packet = Ether(self.raw)
        return self._packet

    def summary(self) -> str:
        return ("out " if self.outbound else "in  ") + self.packet.summary()


@dataclass
class ArpReply:
    mac: str
    ip: str
    rtt: float  # seconds
    frame: bytes


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


class _PortSocket:
    def __init__(self, probe: "Probe", port: Port):
        self.port = port
        with probe.live.entered(port.node):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                      socket.htons(ETH_P_ALL))
        try:
            self.sock.bind((port.ifname, ETH_P_ALL))
        except OSError as exc:
            self.sock.close()
            raise ProbeError(f"cannot listen on {port}: {exc.strerror}") from None
        self.sock.setblocking(False)
        self.history: list[Seen] = []
        self.since = 0  # history before this index belongs to earlier probes
        self.ipv4: str | None = None  # the port's first IPv4 address, looked up once (see arp)

    @property
    def mac(self) -> bytes:
        """The interface's current MAC, from the socket itself (no netlink round trip)."""
        return self.sock.getsockname()[4]


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


class Probe:
    """Send and expect frames in one lab; ping, ARP and UDP/TCP exchanges.

    ``capture`` is a pcapng path for everything the probe sent or saw.
    """

    def __init__(self, live, capture: str | None = None):
        self.live = live
        self._sockets: dict[Port, _PortSocket] = {}
        self._icmp: dict[str, socket.socket] = {}
        self._icmp_id = os.getpid() & 0xFFFF
        self._icmp_seq = 0
        self.pcap = PcapngWriter(capture) if capture else None
        self.capture_path = capture
        live.on_teardown(self.close)

    # -- sockets ----------------------------------------------------------------
    def listen(self, *ports: Port) -> None:
        """Start listening on ports now (send() drains what came before)."""
        for port in ports:
            if port not in self._sockets:
                self._sockets[port] = _PortSocket(self, port)

    def listen_all(self) -> None:
        """Listen on every interface the lab made."""
        self.listen(*(Port(node, name) for node, name in self.live.lab.interfaces()))

    def _socket(self, port: Port) -> _PortSocket:
        try:
            return self._sockets[port]
        except KeyError:
            raise ProbeError(f"not listening on {port}: call probe.listen({port!r}) before sending") from None

    def _record(self, entry: _PortSocket, raw: bytes, outbound: bool) -> Seen:
        seen = Seen(entry.port, raw, outbound, time.time_ns())
        entry.history.append(seen)
        if self.pcap is not None:
            self.pcap.write(str(entry.port), raw, seen.timestamp_ns, outbound)
        return seen

    def _read(self, entry: _PortSocket):
        while True:
            try:
                raw, address = entry.sock.recvfrom(65535)
            except BlockingIOError:
                return
            except OSError as exc:
                # The interface went down (or away) since the socket was bound: the kernel
                # reports it once; the socket sees frames again when the link comes back.
                if exc.errno in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV):
                    continue
                raise
            yield self._record(entry, raw, address[2] == PACKET_OUTGOING)

    def drain(self) -> None:
        """Read (and record) everything pending; later expectations ignore it."""
        for entry in self._sockets.values():
            for _ in self._read(entry):
                pass
            entry.since = len(entry.history)

    def _transmit(self, entry: _PortSocket, raw: bytes) -> None:
        self.drain()
        entry.sock.send(raw)
        self._record(entry, raw, True)
        entry.since = len(entry.history)

    # -- frames -------------------------------------------------------------------
    def send(self, port: Port, frame: Packet | bytes) -> None:
        """Transmit a complete Ethernet frame out of ``port``."""
        if not self._sockets:
            self.listen_all()
        entry = self._sockets.get(port) or self._open(port)
        self._transmit(entry, bytes(frame))

    def _open(self, port: Port) -> _PortSocket:
        self.listen(port)
        return self._sockets[port]

    def expect(self, port: Port, match, timeout: float = DEADLINE, inbound: bool = True) -> Seen | None:
        """The first frame on ``port`` matching ``match`` within ``timeout``, else None."""
        entry = self._socket(port)
        predicate = compile_match(match)
        deadline = time.monotonic() + timeout
        scanned = entry.since
        while True:
            list(self._read(entry))
            for at in range(scanned, len(entry.history)):
                seen = entry.history[at]
                if seen.outbound != inbound and predicate(seen.raw, lambda s=seen: s.packet):
                    entry.since = at + 1  # a later expectation starts after this frame
                    return seen
            scanned = len(entry.history)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            select.select([entry.sock], [], [], left)

    def expect_none(self, port: Port, match, window: float = QUIET_WINDOW, inbound: bool = True) -> list[Seen]:
        """Every frame matching ``match`` that ``port`` saw within the quiet window (should be [])."""
        entry = self._socket(port)
        predicate = compile_match(match)
        deadline = time.monotonic() + window
        while True:
            list(self._read(entry))
            left = deadline - time.monotonic()
            if left <= 0:
                break
            select.select([entry.sock], [], [], left)
        return [s for s in entry.history[entry.since:]
                if s.outbound != inbound and predicate(s.raw, lambda s=s: s.packet)]

    def seen(self, port: Port) -> list[Seen]:
        """Everything ``port`` has seen so far (for evidence in assertion messages)."""
        entry = self._socket(port)
        list(self._read(entry))
        return list(entry.history)

    def evidence(self, *ports: Port, match=None) -> str:
        """A few lines saying what each port saw, for an assertion message."""
        lines = []
        for port in ports:
            frames = self.seen(port)
            lines.append(f"{port} saw {len(frames)} frame(s)" + (f" (expected {describe(match)})" if match else ""))
            lines += [f"  {s.summary()}" for s in frames[-5:]]
        return "\n".join(lines)

    # -- ARP --------------------------------------------------------------------
    def arp(self, port: Port, target: str, sender: str | None = None, timeout: float = DEADLINE) -> ArpReply | None:
        """Send an ARP who-has for ``target`` from ``port``; the is-at reply, or None.

        The sender address defaults to the port's first IPv4 address as it was when the
        probe first sent ARP from that port (0.0.0.0, an RFC 5227 probe, if it had none).
        """
        if not self._sockets:
            self.listen_all()
        entry = self._sockets.get(port) or self._open(port)
        mac = entry.mac
        if sender is None:
            if entry.ipv4 is None:
                own = [a for a in self.live.addresses(port.node, port.ifname) if ":" not in a]
                entry.ipv4 = own[0].split("/")[0] if own else "0.0.0.0"
            sender = entry.ipv4
        target_raw = socket.inet_aton(target)
        frame = (b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
                 + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + socket.inet_aton(sender)
                 + b"\0" * 6 + target_raw).ljust(60, b"\0")
        start = time.perf_counter()
        self._transmit(entry, frame)
        deadline = time.monotonic() + timeout
        while True:
            for seen in self._read(entry):
                raw = seen.raw
                if (not seen.outbound and raw[12:14] == b"\x08\x06" and raw[20:22] == b"\x00\x02"
                        and raw[28:32] == target_raw):
                    return ArpReply(_mac_text(raw[22:28]), target, time.perf_counter() - start, raw)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            select.select([entry.sock], [], [], left)

    # -- through the kernel's stack -------------------------------------------------
    def _icmp_socket(self, node: str) -> socket.socket:
        if node not in self._icmp:
            with self.live.entered(node):
                sock = socket.socket(socket.AF_INET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.IPPROTO_ICMP)
            sock.setblocking(False)
            self._icmp[node] = sock
        return self._icmp[node]

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
            ready, _, _ = select.select([sock], [], [], left)
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
                return PingResult(True, rtt=time.perf_counter() - start, reply_from=source, ttl=data[8])
            if kind in (3, 11):  # unreachable / time exceeded, quoting our echo
                inner = data[ihl + 8:]
                inner_ihl = (inner[0] & 0x0F) * 4 if inner else 0
                if inner[inner_ihl + 4:inner_ihl + 8] == struct.pack("!HH", ident, seq):
                    what = {3: "destination unreachable", 11: "time exceeded"}[kind]
                    return PingResult(False, reply_from=source, error=f"ICMP {what} (code {code}) from {source}")

    def udp(self, client: str, server: str, dst: str, port: int, listen: str = "0.0.0.0",
            payload: bytes = b"netconform", timeout: float = DEADLINE) -> Exchange:
        """Client node sends a datagram to dst:port; the server node echoes it back."""
        self.drain()
        with self.live.entered(server):
            srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        with self.live.entered(client):
            cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            srv.bind((listen, port))
            # Answer from the address the datagram was sent to, as a DNS server does: a
            # multi-homed server otherwise answers from its primary address, which a NAT's
            # conntrack entry (expecting the original destination) would not reverse.
            srv.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            cli.sendto(payload, (dst, port))
            ready, _, _ = select.select([srv], [], [], timeout)
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
            ready, _, _ = select.select([cli], [], [], timeout)
            if not ready:
                return Exchange(False, server_saw=peer, error="no reply reached the client")
            reply, source = cli.recvfrom(65535)
            return Exchange(True, server_saw=peer, client_saw=source, reply=reply)
        except OSError as exc:
            return Exchange(False, error=exc.strerror)
        finally:
            srv.close()
            cli.close()

    def tcp(self, client: str, server: str, dst: str, port: int, listen: str = "0.0.0.0",
            payload: bytes = b"netconform", timeout: float = DEADLINE) -> Exchange:
        """Client node connects to dst:port; a listener in the server node accepts and echoes."""
        self.drain()
        with self.live.entered(server):
            srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        with self.live.entered(client):
            cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        conn = None
        try:
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind((listen, port))
            srv.listen(1)
            cli.setblocking(False)
            code = cli.connect_ex((dst, port))
            if code not in (0, errno.EINPROGRESS):
                return Exchange(False, error=os.strerror(code))
            ready, _, _ = select.select([srv], [], [], timeout)
            if not ready:
                return Exchange(False, error=f"no connection reached the listener in {server} within {timeout:g} s")
            conn, peer = srv.accept()
            _, writable, _ = select.select([], [cli], [], timeout)
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

    def close(self) -> None:
        for entry in self._sockets.values():
            entry.sock.close()
        self._sockets.clear()
        for sock in self._icmp.values():
            sock.close()
        self._icmp.clear()
        if self.pcap is not None:
            self.pcap.close()


ETH_P_LOCAL_EXPERIMENTAL = 0x88B5  # IEEE 802 "local experimental" EtherType: no stack consumes it


def l2_frame(src: str, dst: str, note: str) -> Packet:
    """A plain Ethernet frame no protocol stack reacts to, labelled with ``note``."""
    return Ether(src=src, dst=dst, type=ETH_P_LOCAL_EXPERIMENTAL) / Raw(note.encode())
