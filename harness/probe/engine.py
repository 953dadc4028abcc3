"""The probe engine: frames and packets on the wire of a lab, PTF style.

Packet sockets are opened inside the node's namespace and cached per (node,
interface); MACs come from netlink, layer 2 is built explicitly, and scapy's
process-wide caches (``conf.ifaces``, ``conf.route``) are never used. Before each
send every open socket is drained, so an expectation only sees what followed.
Every frame read or sent is written to the test's pcapng capture.
"""
from __future__ import annotations

import errno
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from harness.errors import ProbeError
from harness.kernel.deadline import DEADLINE, QUIET_WINDOW, Deadline
from harness.probe.exchange import Exchange, PingResult, StackExchanges, Transfer  # noqa: F401 (part of the probe API)
from harness.probe.match import compile_match, describe
from harness.probe.pcapng import PcapngWriter
from harness.probe.steps import reported
from harness.probe.verdict import Arrival, Delivery, Strays

ETH_P_ALL = 0x0003
ETH_P_ARP = 0x0806
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_IGNORE_OUTGOING = 23
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40
AUXDATA = struct.Struct("IIIHHHH")  # struct tpacket_auxdata
AUX_SPACE = socket.CMSG_SPACE(AUXDATA.size)


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


class _PortSocket:
    def __init__(self, probe: "Probe", port: Port):
        self.port = port
        # Protocol 0 at creation, ETH_P_ALL at bind: a packet socket made with a protocol hooks
        # every interface of the namespace at once, and bind must unhook it again, one RCU grace
        # period (~5 ms) per socket; made without one, it sees nothing until bound to its port.
        with probe.live.entered(port.node):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        try:
            self.sock.bind((port.ifname, ETH_P_ALL))
        except OSError as exc:
            self.sock.close()
            raise ProbeError(f"cannot listen on {port}: {exc.strerror}") from None
        self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        self.sock.setblocking(False)
        self.history: list[Seen] = []
        self.since = 0  # history before this index belongs to earlier probes
        self.ipv4: str | None = None  # the port's first IPv4 address, looked up once (see arp)

    @property
    def mac(self) -> bytes:
        """The interface's current MAC, from the socket itself (no netlink round trip)."""
        return self.sock.getsockname()[4]


def _with_vlan_tag(raw: bytes, ancillary) -> bytes:
    """The frame as it was on the wire: the kernel takes an 802.1Q tag out of a frame it
    receives (and keeps one a VLAN device adds beside the frame) and tells a packet socket
    only in PACKET_AUXDATA; put it back after the MACs, as libpcap does."""
    for level, kind, data in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= AUXDATA.size:
            status, _, _, _, _, tci, tpid = AUXDATA.unpack_from(data)
            if status & TP_STATUS_VLAN_VALID:
                tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                return raw[:12] + struct.pack("!HH", tpid, tci) + raw[12:]
    return raw


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


class Probe:
    """Send and expect frames in one lab; ping, ARP and UDP/TCP exchanges.

    ``capture`` is a pcapng path for everything the probe sent or saw; ``stage``, if
    given, a callable(title) -> context manager each action runs in (report steps).
    """

    def __init__(self, live, capture: str | None = None, stage=None):
        self.live = live
        self._sockets: dict[Port, _PortSocket] = {}
        self.stack = StackExchanges(live, self.drain)
        self.pcap = PcapngWriter(capture) if capture else None
        self.stage = stage
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
                raw, ancillary, _, address = entry.sock.recvmsg(65535, AUX_SPACE)
            except BlockingIOError:
                return
            except OSError as exc:
                # The interface went down (or away) since the socket was bound: the kernel
                # reports it once; the socket sees frames again when the link comes back.
                if exc.errno in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV):
                    continue
                raise
            yield self._record(entry, _with_vlan_tag(raw, ancillary), address[2] == PACKET_OUTGOING)

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
    @reported(lambda port, frame: f"send on {port}: {describe(frame)}")
    def send(self, port: Port, frame: Packet | bytes) -> None:
        """Transmit a complete Ethernet frame out of ``port``."""
        if not self._sockets:
            self.listen_all()
        entry = self._sockets.get(port) or self._open(port)
        self._transmit(entry, bytes(frame))

    def _open(self, port: Port) -> _PortSocket:
        self.listen(port)
        return self._sockets[port]

    @reported(lambda port, match, *a, **k: f"expect on {port}: {describe(match)}")
    def expect(self, port: Port, match, timeout: float = DEADLINE, inbound: bool = True) -> Arrival:
        """The first frame on ``port`` matching ``match`` within ``timeout``: an Arrival,
        truthy (and that frame) when it came, falsy (with what the port saw) when not."""
        return self._expect(self._socket(port), match, timeout, inbound)

    def _expect(self, entry: _PortSocket, match, timeout: float, inbound: bool) -> Arrival:
        predicate = compile_match(match)
        wait = Deadline(timeout, "expect")
        first = scanned = entry.since
        for _ in wait.rounds([entry.sock]):
            list(self._read(entry))
            for at in range(scanned, len(entry.history)):
                seen = entry.history[at]
                if seen.outbound != inbound and predicate(seen.raw, lambda s=seen: s.packet):
                    entry.since = at + 1  # a later expectation starts after this frame
                    return Arrival(entry.port, match, timeout, inbound, seen, entry.history[first:at + 1],
                                   wait.met())
            scanned = len(entry.history)
        return Arrival(entry.port, match, timeout, inbound, None, entry.history[first:], wait.elapsed())

    @reported(lambda port, match, window=QUIET_WINDOW, **k: f"expect nothing on {port} for {window * 1000:g} ms: "
              f"{describe(match)}")
    def expect_none(self, port: Port, match, window: float = QUIET_WINDOW, inbound: bool = True) -> Strays:
        """The frames matching ``match`` that ``port`` saw within the quiet window: Strays,
        a list that is ``== []`` when nothing matching came."""
        entry = self._socket(port)
        self._listen_window([entry], window)
        return self._strays(entry, match, window, inbound)

    @reported(lambda ports, match, window=QUIET_WINDOW, **k: f"expect nothing on {', '.join(map(str, ports))} "
              f"for {window * 1000:g} ms: {describe(match)}")
    def expect_none_on(self, ports, match, window: float = QUIET_WINDOW, inbound: bool = True) -> dict:
        """``expect_none`` on several ports in ONE window (the ports listen side by side, not one
        window after another): {port: Strays}, each ``== []`` when nothing matching came there."""
        entries = [self._socket(port) for port in ports]
        self._listen_window(entries, window)
        return {entry.port: self._strays(entry, match, window, inbound) for entry in entries}

    def _listen_window(self, entries: list[_PortSocket], window: float) -> None:
        """Read what ``entries`` see until the window closes."""
        for _ in Deadline(window).rounds([entry.sock for entry in entries]):
            for entry in entries:
                list(self._read(entry))

    def _strays(self, entry: _PortSocket, match, window: float, inbound: bool) -> Strays:
        predicate = compile_match(match)
        saw = entry.history[entry.since:]
        return Strays(entry.port, match, window, inbound,
                      [s for s in saw if s.outbound != inbound and predicate(s.raw, lambda s=s: s.packet)], saw)

    @reported(lambda ports, match, *a, **k: f"expect only on {', '.join(map(str, ports))}: {describe(match)}")
    def expect_only(self, ports, match, timeout: float = DEADLINE, window: float = QUIET_WINDOW,
                    inbound: bool = True) -> Delivery:
        """The frame comes on each of ``ports`` (within ``timeout``) and on no other port the
        probe listens on (within the quiet window after), as PTF's verify_packets: a Delivery,
        truthy when so, showing where the frame did and did not come."""
        wanted = [self._socket(port) for port in ports]
        others = [entry for port, entry in self._sockets.items() if port not in ports]
        arrivals = {entry.port: self._expect(entry, match, timeout, inbound) for entry in wanted}
        self._listen_window(others, window)
        strays = {entry.port: self._strays(entry, match, window, inbound) for entry in others}
        return Delivery(match, timeout, window, inbound, arrivals, strays)

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
    @reported(lambda port, target, *a, **k: f"ARP who-has {target} from {port}")
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
        wait = Deadline(timeout, "arp")
        self._transmit(entry, frame)
        for _ in wait.rounds([entry.sock]):
            for seen in self._read(entry):
                raw = seen.raw
                if (not seen.outbound and raw[12:14] == b"\x08\x06" and raw[20:22] == b"\x00\x02"
                        and raw[28:32] == target_raw):
                    return ArpReply(_mac_text(raw[22:28]), target, wait.met(), raw)
        return None

    # -- through the nodes' own stacks (harness.probe.exchange) ---------------------------
    @reported(lambda node, dst, *a, **k: f"ping {dst} from {node}")
    def ping(self, node: str, dst: str, timeout: float = DEADLINE, ttl: int | None = None,
             size: int | None = None, df: bool | None = None) -> PingResult:
        """One ICMP echo from ``node`` to ``dst`` through the node's own routing; ``size`` (the
        IP packet's) and ``df`` as ``ping -s SIZE-28 -M do|dont`` (see StackExchanges.ping)."""
        return self.stack.ping(node, dst, timeout=timeout, ttl=ttl, size=size, df=df)

    @reported(lambda client, server, dst, port, *a, **k: f"UDP {client} -> {dst}:{port} (server in {server})")
    def udp(self, client: str, server: str, dst: str, port: int, listen: str = "0.0.0.0",
            payload: bytes = b"netconform", timeout: float = DEADLINE, listen_port: int | None = None) -> Exchange:
        """Client node sends a datagram to dst:port; the server node echoes it back."""
        return self.stack.udp(client, server, dst, port, listen=listen, payload=payload, timeout=timeout,
                              listen_port=listen_port)

    @reported(lambda client, server, dst, port, *a, **k: f"TCP {client} -> {dst}:{port} (server in {server})")
    def tcp(self, client: str, server: str, dst: str, port: int, listen: str = "0.0.0.0",
            payload: bytes = b"netconform", timeout: float = DEADLINE, listen_port: int | None = None) -> Exchange:
        """Client node connects to dst:port; a listener in the server node accepts and echoes
        (``listen_port``: the server's port when a mapping changes it)."""
        return self.stack.tcp(client, server, dst, port, listen=listen, payload=payload, timeout=timeout,
                              listen_port=listen_port)

    @reported(lambda client, server, dst, port, size, *a, **k: f"TCP {size} bytes {client} -> {dst}:{port}")
    def transfer(self, client: str, server: str, dst: str, port: int, size: int, timeout: float = DEADLINE,
                 window: int | None = None):
        """``size`` bytes over TCP from ``client`` to a listener in ``server``, timed (a Transfer; ``window``:
        the client's send buffer, see StackExchanges.transfer)."""
        return self.stack.transfer(client, server, dst, port, size, timeout=timeout, window=window)

    def close(self) -> None:
        # Closing a packet socket waits for an RCU grace period (packet_release: synchronize_net,
        # ~5 ms); closed side by side, a lab's thirty sockets share their grace periods.
        sockets = [entry.sock for entry in self._sockets.values()]
        self._sockets.clear()
        if sockets:
            with ThreadPoolExecutor(max_workers=min(16, len(sockets))) as pool:
                list(pool.map(socket.socket.close, sockets))
        self.stack.close()
        if self.pcap is not None:
            self.pcap.close()


ETH_P_LOCAL_EXPERIMENTAL = 0x88B5  # IEEE 802 "local experimental" EtherType: no stack consumes it


def l2_frame(src: str, dst: str, note: str) -> Packet:
    """A plain Ethernet frame no protocol stack reacts to, labelled with ``note``."""
    return Ether(src=src, dst=dst, type=ETH_P_LOCAL_EXPERIMENTAL) / Raw(note.encode())
