"""The reference labs as an implementation under test.

The document suites check datapaths the seed documents describe; the labs the harness
builds from the lab files (harness/lab/data) are the reference implementation of those
datapaths. As a backend they are small: a built lab is the whole implementation (nothing
attaches to it), its test id names the lab (``lab://001-vbridge``) and reports label every
one of them "reference labs", so a report compares them with the CNI backends.
"""
from __future__ import annotations

from typing import ClassVar

from .base import Backend


class ReferenceBackend(Backend):
    """A lab built by the harness (a LiveLab); ``close`` tears it down."""

    NAME: ClassVar[str] = "lab"
    LABEL: ClassVar[str] = "reference labs"

    def __init__(self, live):
        self.live = live

    @property
    def subject(self) -> str:
        return self.live.name

    @property
    def label(self) -> str:
        return self.LABEL

    def close(self) -> None:
        self.live.teardown()
