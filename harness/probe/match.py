"""What an expected frame is: a value, as in PTF.

``expect(port, template)`` accepts:
- a scapy packet: a *template*, layer by layer; only the fields the template sets
  explicitly must match (``Ether(src=A)/ARP(op=2, psrc=IP)``), a trailing ``Raw``
  must be a prefix of the received payload;
- ``bytes``: the exact frame;
- a callable taking the received scapy packet and returning a bool.
"""
from __future__ import annotations

from scapy.packet import NoPayload, Packet, Padding, Raw


def _field_bytes(packet: Packet, name: str, value) -> bytes:
    field = packet.get_field(name)
    return field.addfield(packet, b"", field.any2i(packet, value))


def template_matches(template: Packet, received: Packet) -> bool:
    t, r = template, received
    while not isinstance(t, NoPayload):
        if isinstance(t, Raw):
            rest = bytes(r) if not isinstance(r, NoPayload) else b""
            return rest.startswith(t.load)
        if isinstance(r, NoPayload) or type(r) is not type(t):
            return False
        for name, value in t.fields.items():
            try:
                if _field_bytes(t, name, value) != _field_bytes(r, name, r.getfieldval(name)):
                    return False
            except Exception:  # noqa: BLE001 - fields scapy cannot serialise alone
                if r.getfieldval(name) != value:
                    return False
        t, r = t.payload, r.payload
        if isinstance(r, Padding):
            r = NoPayload()
    return True


def compile_match(match):
    """A predicate over (raw bytes, lazily parsed packet) for any accepted ``match``."""
    if isinstance(match, (bytes, bytearray)):
        wanted = bytes(match)
        return lambda raw, parse: raw == wanted
    if isinstance(match, Packet):
        return lambda raw, parse: template_matches(match, parse())
    if callable(match):
        return lambda raw, parse: bool(match(parse()))
    raise TypeError(f"cannot match frames against {type(match).__name__}")


def describe(match) -> str:
    if isinstance(match, Packet):
        return match.summary()
    if isinstance(match, (bytes, bytearray)):
        return f"{len(match)}-byte frame"
    return getattr(match, "__name__", repr(match))
