"""A minimal pcapng writer: one interface block per (node, interface), direction flags.

pcapng rather than pcap because one capture spans many interfaces in many
namespaces; Wireshark shows each frame's interface as ``node/ifname``.
"""
from __future__ import annotations

import struct

LINKTYPE_ETHERNET = 1
_INBOUND, _OUTBOUND = 1, 2


def _options(options: list[tuple[int, bytes]]) -> bytes:
    out = b""
    for code, value in options:
        out += struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)
    return out + struct.pack("<HH", 0, 0) if options else b""


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


class PcapngWriter:
    def __init__(self, path: str):
        self.path = path
        self._file = open(path, "wb")
        self._interfaces: dict[str, int] = {}
        self.count = 0
        shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _options([(4, b"netconform")])
        self._file.write(_block(0x0A0D0D0A, shb))

    def interface(self, name: str) -> int:
        if name not in self._interfaces:
            body = struct.pack("<HHI", LINKTYPE_ETHERNET, 0, 0) + _options([(2, name.encode())])
            self._file.write(_block(0x00000001, body))
            self._interfaces[name] = len(self._interfaces)
        return self._interfaces[name]

    def write(self, name: str, frame: bytes, timestamp_ns: int, outbound: bool) -> None:
        interface = self.interface(name)
        micros = timestamp_ns // 1000
        body = struct.pack("<IIIII", interface, micros >> 32, micros & 0xFFFFFFFF, len(frame), len(frame))
        body += frame + b"\0" * (-len(frame) % 4)
        body += _options([(2, struct.pack("<I", _OUTBOUND if outbound else _INBOUND))])
        self._file.write(_block(0x00000006, body))
        self.count += 1

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
