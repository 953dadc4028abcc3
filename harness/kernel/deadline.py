"""One way to wait for an event: a deadline, waits on file descriptors until it passes, and the
timing margin of a wait that succeeded.

A positive wait returns on the first match and notes how much of its deadline it used
(``harness.evidence.margins``); a negative check ("nothing arrives") listens for one short,
named window and reads to its end::

    wait = Deadline(timeout, "expect")
    for _ in wait.rounds([sock]):  # a first round at once, one per wake-up, the last after the deadline
        if found():
            wait.met()  # the margin: how much of the deadline the wait used
            return ...
    return None  # the deadline passed

The cost is one object and two clock reads per wait: an ARP round trip stays well under 1 ms.
"""
from __future__ import annotations

import time

from harness.evidence import margins
from harness.kernel import fdwait

DEADLINE = 1.0  # seconds a positive check waits at most; it returns on the first match
QUIET_WINDOW = 0.04  # the one short window a negative check listens for ("nothing arrives"); the bench bar is 50 ms


class Deadline:
    """``seconds`` from now. ``kind`` names the wait in the timing margins (None: not noted)."""

    __slots__ = ("kind", "allowed", "start", "at")

    def __init__(self, seconds: float, kind: str | None = None):
        self.kind = kind
        self.allowed = seconds
        self.start = time.monotonic()
        self.at = self.start + seconds

    def left(self) -> float:
        """Seconds until the deadline (0 once it passed)."""
        return max(0.0, self.at - time.monotonic())

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def wait(self, readers=(), writers=(), at_most: float | None = None) -> tuple[list, list]:
        """Wait until one of ``readers`` is readable or ``writers`` writable, or the deadline
        passes (or ``at_most`` seconds, if sooner); the ready ones. Once the deadline has
        passed: nothing, at once (so a loop over it ends however busy the descriptors are)."""
        left = self.at - time.monotonic()
        if left <= 0:
            return [], []
        ready, writable, _ = fdwait.select(readers, writers, [], left if at_most is None else min(left, at_most))
        return ready, writable

    def rounds(self, readers):
        """Iterate: a first round at once, then one each time a reader is readable, and a
        last one after the deadline passed; then stop."""
        while True:
            yield
            left = self.at - time.monotonic()
            if left <= 0:
                return
            fdwait.select(readers, [], [], left)

    def met(self) -> float:
        """The wait succeeded: note its margin (if it has a kind); the seconds it took."""
        used = time.monotonic() - self.start
        if self.kind is not None:
            margins.note(self.kind, used, self.allowed)
        return used
