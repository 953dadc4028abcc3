"""The CNI spec's normative statements as data (statements.yaml, generated from the documents
by harness/cni/spec/extract.py): each with an id, the spec versions it appears in, its section,
its RFC 2119 level and its sentence, and the judgement on it (untestable, and why; or pending,
and the issue-13 item that will check it).

A test names the statements it checks by id (the suites' ``spec`` marker); level and sentence are
stated once, here.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass

from harness import paths, yamlfile
from harness.errors import NetconformError

LEVELS = ("MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "MAY")
FAILING = frozenset({"MUST", "MUST NOT"})  # a failed check of these fails; of the others, it is a deviation
ID = re.compile(r"\b(?:SPEC|CONV)-\d{3}\b")


@dataclass(frozen=True)
class Statement:
    id: str
    document: str
    versions: tuple[str, ...]
    section: str
    level: str
    sentence: str
    untestable: str | None = None
    pending: str | None = None

    @property
    def fails(self) -> bool:
        """A failed check of this statement fails its test (MUST, MUST NOT); else it is a deviation."""
        return self.level in FAILING

    def cite(self) -> str:
        """One line: id, level, where, and the sentence."""
        return f"{self.id} {self.level} ({self.document} {', '.join(self.versions)}, {self.section}): {self.sentence}"


class UnknownStatement(NetconformError):
    """A spec id that statements.yaml does not hold."""


@functools.cache
def statements() -> dict[str, Statement]:
    """Every statement, by id, in the file's order."""
    with open(os.path.join(paths.PACKAGE, "cni", "spec", "statements.yaml"), encoding="utf-8") as handle:
        entries = yamlfile.load(handle) or []
    return {e["id"]: Statement(e["id"], e["document"], tuple(e["versions"]), e["section"], e["level"], e["sentence"],
                               e.get("untestable"), e.get("pending")) for e in entries}


def lookup(ids) -> list[Statement]:
    """The statements named by ``ids``; an unknown id raises UnknownStatement naming it."""
    known = statements()
    missing = [i for i in ids if i not in known]
    if missing:
        raise UnknownStatement(f"unknown CNI spec statement {', '.join(map(repr, missing))} "
                               f"(harness/cni/spec/statements.yaml holds {next(iter(known))}..{list(known)[-1]})")
    return [known[i] for i in ids]


def governing(found: list[Statement]) -> Statement | None:
    """The statement whose level a failure is held to: the strongest (a MUST before a SHOULD before a MAY)."""
    order = {level: rank for rank, level in enumerate(LEVELS)}
    return min(found, key=lambda s: (not s.fails, order[s.level]), default=None)


def applicable(found: list[Statement], version: str | None) -> list[Statement]:
    """Those of ``found`` that appear in spec ``version`` (all of them when the version is not known,
    or when none does: then the test claims them all)."""
    if version is None:
        return found
    return [s for s in found if version in s.versions] or found
