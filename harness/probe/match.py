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


def explain(match) -> list[str]:
    """The expected frame as lines a reader can check against what arrived: for a template,
    each layer with the fields it sets and the ones it leaves open ("don't care")."""
    if isinstance(match, (bytes, bytearray)):
        head = bytes(match[:32]).hex(" ")
        return [f"exactly these {len(match)} bytes: {head}" + (" ..." if len(match) > 32 else "")]
    if not isinstance(match, Packet):
        return [f"any frame for which {describe(match)}(packet) is true (a predicate: it names no fields)"]
    lines = []
    layer = match
    while not isinstance(layer, NoPayload):
        if isinstance(layer, Raw):  # a trailing Raw is a prefix: what follows it is open too
            return lines + [f"Raw: starts with {layer.load!r}; don't care: the rest"]
        given = ", ".join(f"{name}={_shown(layer, name, value)}" for name, value in layer.fields.items())
        open_fields = [f.name for f in layer.fields_desc if f.name not in layer.fields]
        lines.append(f"{type(layer).__name__}: {given or 'any'}"
                     + (f"; don't care: {', '.join(open_fields)}" if given and open_fields else ""))
        layer = layer.payload
    return lines + ["then anything (the template ends here)"]


def _shown(layer: Packet, name: str, value) -> str:
    try:
        return str(layer.get_field(name).i2repr(layer, value))
    except Exception:  # noqa: BLE001 - a field scapy cannot show alone
        return repr(value)


def describe(match) -> str:
    if isinstance(match, Packet):
        return match.summary()
    if isinstance(match, (bytes, bytearray)):
        return f"{len(match)}-byte frame"
    return getattr(match, "__name__", repr(match))
