"""ICMP echo, built and read once for every probe: the request as ``ping -s SIZE -M do|dont``
sends it, and what a raw ICMP socket reads back (an echo reply, or an error quoting our echo);
ICMPv6 echo likewise (RFC 4443), as ``ping -6`` sends it."""
from __future__ import annotations

import struct
from typing import NamedTuple

ECHO_REPLY, DEST_UNREACHABLE, ECHO_REQUEST, TIME_EXCEEDED = 0, 3, 8, 11
FRAG_NEEDED = 4  # destination unreachable, code 4: fragmentation needed and DF set (RFC 1191: the next-hop MTU)
IP_MTU_DISCOVER, IP_PMTUDISC_DONT, IP_PMTUDISC_DO = 10, 0, 2
HEADERS = 28  # IPv4 20 + ICMP 8: what ``size`` (the IP packet) adds to the echo's payload
# ICMPv6 (RFC 4443 section 2.1): errors below 128, echo request 128 and reply 129
DEST_UNREACHABLE6, PACKET_TOO_BIG6, TIME_EXCEEDED6, ECHO_REQUEST6, ECHO_REPLY6 = 1, 2, 3, 128, 129
IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DONT, IPV6_PMTUDISC_DO = 23, 0, 2  # linux/in6.h
IPV6_RECVHOPLIMIT, IPV6_HOPLIMIT = 51, 52
HEADERS6 = 48  # IPv6 40 + ICMPv6 8
_ECHO = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes, version: int = 4) -> bytes:
    """An ICMP echo request, or with ``version`` 6 an ICMPv6 one (the IP header is the kernel's;
    so is an ICMPv6 checksum, which covers the IPv6 pseudo-header: RFC 3542 section 3.1)."""
    if version == 6:
        return _ECHO.pack(ECHO_REQUEST6, 0, 0, ident, seq) + payload
    return _ECHO.pack(ECHO_REQUEST, 0, checksum(_ECHO.pack(ECHO_REQUEST, 0, 0, ident, seq) + payload),
                      ident, seq) + payload


def padded(payload: bytes, size: int, version: int = 4) -> bytes:
    """``payload`` cut or padded with dots so that the echo's IP packet is ``size`` bytes."""
    headers = HEADERS6 if version == 6 else HEADERS
    if size < headers:
        raise ValueError(f"an ICMP echo's IPv{version} packet is at least {headers} bytes, not {size}")
    return payload[:size - headers].ljust(size - headers, b".")


class Answer(NamedTuple):
    """What came back for our echo: a reply (with its TTL) or an ICMP error, in words."""
    reply: bool
    ttl: int | None = None
    error: str | None = None


def answer_to(packet: bytes, ident: int, seq: int, source: str) -> Answer | None:
    """What an IPv4 packet from ``source``, read from a raw ICMP socket, says about our echo
    (``ident``, ``seq``); None when it is about something else."""
    ihl = (packet[0] & 0x0F) * 4
    kind, code = packet[ihl], packet[ihl + 1]
    ours = struct.pack("!HH", ident, seq)
    if kind == ECHO_REPLY and packet[ihl + 4:ihl + 8] == ours:
        return Answer(True, ttl=packet[8])
    if kind in (DEST_UNREACHABLE, TIME_EXCEEDED):  # they quote the IP header and 8 bytes of our echo
        inner = packet[ihl + 8:]
        inner_ihl = (inner[0] & 0x0F) * 4 if inner else 0
        if inner and inner[inner_ihl + 4:inner_ihl + 8] == ours:
            mtu = struct.unpack("!H", packet[ihl + 6:ihl + 8])[0]
            return Answer(False, error=f"ICMP type {kind} code {code} from {source}"
                                       + (f", mtu {mtu}" if kind == DEST_UNREACHABLE and code == FRAG_NEEDED else ""))
    return None


def answer_to6(message: bytes, ident: int, seq: int, source: str, hop_limit: int | None) -> Answer | None:
    """What an ICMPv6 message from ``source`` (a raw ICMPv6 socket reads no IPv6 header; the hop
    limit comes as ancillary data) says about our echo; None when it is about something else
    (neighbour discovery, MLD, another echo)."""
    if len(message) < 8:
        return None
    kind, code = message[0], message[1]
    ours = struct.pack("!HH", ident, seq)
    if kind == ECHO_REPLY6 and message[4:8] == ours:
        return Answer(True, ttl=hop_limit)
    if kind in (DEST_UNREACHABLE6, PACKET_TOO_BIG6, TIME_EXCEEDED6):  # they quote our packet: IPv6 40 + echo
        inner = message[8:]
        if len(inner) >= 48 and inner[6] == 58 and inner[40] == ECHO_REQUEST6 and inner[44:48] == ours:
            mtu = struct.unpack("!I", message[4:8])[0]
            return Answer(False, error=f"ICMPv6 type {kind} code {code} from {source}"
                                       + (f", mtu {mtu}" if kind == PACKET_TOO_BIG6 else ""))
    return None
