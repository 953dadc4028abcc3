"""What an expectation found, as a value that shows its evidence (PTF's ``PollFailure.format``).

- ``Arrival`` (``probe.expect``): truthy when a matching frame came; it is that frame
  (``.frame``, the Seen, and its ``.packet``, ``.raw``, ``.summary()``...).
- ``Strays`` (``probe.expect_none``): the matching frames that came in the quiet window, a
  list: ``== []`` when nothing came.
- ``Delivery`` (``probe.expect_only``): truthy when the frame came on every port it should
  and on no other port the probe listens on.

Each is numbered (``expect#12``) and its ``repr`` is one line naming the number; ``format()``
is the whole verdict: the expected frame with the fields its template leaves open, the port,
the deadline or window, and the last frames that port saw. The pytest glue prints it for a
failing ``assert`` (``verdicts_named_in`` finds the verdicts an assertion message names).
"""
from __future__ import annotations

import itertools
import re
from collections import deque

from harness.errors import ProbeError
from harness.probe.match import describe, explain

RECENT = 5  # frames of a port's traffic a verdict shows (the last ones)
_numbers = itertools.count(1)
_kept: deque = deque(maxlen=64)  # the latest verdicts, for verdicts_named_in
_NAMED = re.compile(r"\bexpect(?:_none|_only)?#(\d+)\b")


def _seconds(value: float) -> str:
    return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.3g} s"


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def frame_line(seen) -> str:
    """A frame in one line: its direction and summary, and the start of a payload scapy does
    not decode (frames that differ only there would otherwise read the same)."""
    layer = seen.packet.lastlayer()
    load = getattr(layer, "load", None) if type(layer).__name__ == "Raw" else None
    return seen.summary() + (f" {load[:24]!r}" + ("..." if len(load) > 24 else "") if load else "")


class Verdict:
    """The common part: a number, the port, the expected frame and the frames seen."""

    kind = "expect"

    def _register(self, port, match, seconds: float, inbound: bool, saw: list) -> None:
        self.number = next(_numbers)
        self.port = port
        self.match = match
        self.seconds = seconds
        self.inbound = inbound
        self.saw = saw  # everything the port saw while the expectation looked (both directions)
        _kept.append(self)

    @property
    def name(self) -> str:
        return f"{self.kind}#{self.number}"

    @property
    def direction(self) -> str:
        return "inbound" if self.inbound else "outbound"

    def _expected_lines(self, title: str) -> list[str]:
        return [f"  {title} (only the fields shown must match):", *(f"    {line}" for line in explain(self.match))]

    def _saw_lines(self) -> list[str]:
        if not self.saw:
            return [f"  {self.port} saw no frame at all"]
        lines = [f"  {self.port} saw {len(self.saw)} frame(s)"
                 + (f", the last {RECENT}:" if len(self.saw) > RECENT else ":")]
        return lines + [f"    {frame_line(seen)}" for seen in self.saw[-RECENT:]]

    def format(self) -> str:
        raise NotImplementedError


class Arrival(Verdict):
    """``probe.expect``: truthy when a frame matching the template came on the port in time."""

    kind = "expect"

    def __init__(self, port, match, timeout: float, inbound: bool, seen, saw: list, waited: float):
        self._register(port, match, timeout, inbound, saw)
        self.frame = seen  # the matching Seen (what expect found), or None
        self.waited = waited

    def __bool__(self) -> bool:
        return self.frame is not None

    def _frame(self):
        if self.frame is None:
            raise ProbeError(f"{self.name}: no frame matching {describe(self.match)} came on {self.port} "
                             f"within {_seconds(self.seconds)}, so there is no frame to read")
        return self.frame

    # What matched, as the Seen it is.
    @property
    def packet(self):
        return self._frame().packet

    @property
    def raw(self) -> bytes:
        return self._frame().raw

    @property
    def outbound(self) -> bool:
        return self._frame().outbound

    @property
    def timestamp_ns(self) -> int:
        return self._frame().timestamp_ns

    def summary(self) -> str:
        return self._frame().summary()

    def format(self) -> str:
        if self.frame is not None:
            head = (f"{self.name}: a matching frame came on {self.port} ({self.direction}) after "
                    f"{_seconds(self.waited)} (deadline {_seconds(self.seconds)})")
            return "\n".join([head, f"  matched: {frame_line(self.frame)}", *self._expected_lines("expected")])
        head = (f"{self.name}: no matching frame came on {self.port} ({self.direction}) "
                f"within the deadline of {_seconds(self.seconds)}")
        return "\n".join([head, *self._expected_lines("expected"), *self._saw_lines()])

    def __repr__(self) -> str:
        if self.frame is not None:
            return f"<{self.name} on {self.port}: came after {_seconds(self.waited)}: {_short(self.frame.summary())}>"
        return (f"<{self.name} on {self.port}: nothing matching within {_seconds(self.seconds)} "
                f"({len(self.saw)} other frame(s) seen)>")


class Strays(list, Verdict):
    """``probe.expect_none``: the frames matching the template that came in the quiet window
    (a list of Seen; ``== []`` when nothing came)."""

    kind = "expect_none"

    def __init__(self, port, match, window: float, inbound: bool, matching: list, saw: list):
        list.__init__(self, matching)
        self._register(port, match, window, inbound, saw)

    def format(self) -> str:
        if not self:
            return (f"{self.name}: nothing matching came on {self.port} ({self.direction}) "
                    f"in the {_seconds(self.seconds)} window")
        head = (f"{self.name}: {len(self)} matching frame(s) came on {self.port} ({self.direction}) "
                f"in the {_seconds(self.seconds)} window, where none should")
        return "\n".join([head, *self._expected_lines("not expected"), "  the matching frame(s):",
                          *(f"    {frame_line(seen)}" for seen in self[:RECENT]), *self._saw_lines()])

    def __repr__(self) -> str:
        if not self:
            return f"<{self.name} on {self.port}: nothing matching in {_seconds(self.seconds)}>"
        return (f"<{self.name} on {self.port}: {len(self)} matching frame(s) in {_seconds(self.seconds)}: "
                f"{_short(self[0].summary())}>")


class Delivery(Verdict):
    """``probe.expect_only``: truthy when the frame came on every port in ``arrivals`` and on no
    port in ``strays`` (the others the probe listens on)."""

    kind = "expect_only"

    def __init__(self, match, timeout: float, window: float, inbound: bool, arrivals: dict, strays: dict):
        self._register(tuple(arrivals), match, timeout, inbound, [])
        self.window = window
        self.arrivals = arrivals  # Port -> Arrival
        self.strays = strays  # Port -> Strays

    @property
    def missing(self) -> list:
        """The ports it should have reached and did not."""
        return [port for port, arrival in self.arrivals.items() if not arrival]

    @property
    def extra(self) -> list:
        """The other ports it reached."""
        return [port for port, strays in self.strays.items() if strays]

    def __bool__(self) -> bool:
        return not self.missing and not self.extra

    def format(self) -> str:
        wanted = ", ".join(map(str, self.arrivals))
        head = (f"{self.name}: {'as expected' if self else 'NOT as expected'}: the frame ({self.direction}) "
                f"must come on {wanted} (deadline {_seconds(self.seconds)}) and on no other port the probe "
                f"listens on (window {_seconds(self.window)})")
        lines = [head, *self._expected_lines("expected")]
        for port, arrival in self.arrivals.items():
            if arrival:
                lines.append(f"  {port}: came, as it should: {frame_line(arrival.frame)}")
            else:
                lines.append(f"  {port}: did NOT come; " + "; ".join(line.strip() for line in arrival._saw_lines()))
        for port, strays in self.strays.items():
            if strays:
                lines.append(f"  {port}: came too, where it should not: {frame_line(strays[0])}"
                             + (f" (and {len(strays) - 1} more)" if len(strays) > 1 else ""))
            else:
                lines.append(f"  {port}: nothing, as it should")
        return "\n".join(lines)

    def __repr__(self) -> str:
        parts = [f"missing on {', '.join(map(str, self.missing))}" if self.missing else "",
                 f"also on {', '.join(map(str, self.extra))}" if self.extra else ""]
        said = "; ".join(p for p in parts if p) or f"only on {', '.join(map(str, self.arrivals))}"
        return f"<{self.name}: {said}>"


def verdicts_named_in(text: str) -> list[Verdict]:
    """The recent verdicts whose names (``expect#12``) appear in ``text`` (an assertion's message)."""
    wanted = {int(number) for number in _NAMED.findall(text)}
    return [verdict for verdict in _kept if verdict.number in wanted]
