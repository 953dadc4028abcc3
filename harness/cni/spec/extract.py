"""The normative statements of the CNI spec, read from a mirror of containernetworking/cni:
SPEC.md at spec-v0.4.0, spec-v1.0.0 and spec-v1.1.0, and CONVENTIONS.md at spec-v1.1.0.

A normative statement is a sentence holding one of RFC 2119's key words, in either case (the
documents mostly write them in lowercase; 1.0.0 and 1.1.0 say they are "used as specified in
RFC 2119"). A sentence identical in several versions (whitespace aside) is one statement with
several versions; a changed one is another statement. Its level is the strongest key word it holds.

    python -m harness.cni.spec.extract MIRROR_GIT_DIR     rewrite statements.yaml from the mirror

The judgement in the file (``untestable``, ``pending``) is kept across a rewrite, by sentence;
a new sentence gets the next free id and no judgement (then tests/test_spec_statements.py fails
until it has one).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import yaml

DOCUMENTS = (  # (document, git tag, the version it is cited as), newest first: ids follow this order
    ("SPEC.md", "spec-v1.1.0", "1.1.0"),
    ("SPEC.md", "spec-v1.0.0", "1.0.0"),
    ("SPEC.md", "spec-v0.4.0", "0.4.0"),
    ("CONVENTIONS.md", "spec-v1.1.0", "1.1.0"),
)
PREFIX = {"SPEC.md": "SPEC", "CONVENTIONS.md": "CONV"}
# RFC 2119's key words, strongest first; a sentence's level is the first that matches.
LEVELS = (
    ("MUST NOT", r"\bmust not\b|\bshall not\b"),
    # "required" describing, not requiring ("a daemon required for connectivity", "not strictly required") is no key word
    ("MUST", r"\bmust\b|\bshall\b|(?<!strictly )\brequired\b(?! for\b)"),
    ("SHOULD NOT", r"\bshould not\b"),
    ("SHOULD", r"\bshould\b|\brecommended\b"),
    ("MAY", r"\bmay\b"),
)
KEY_WORDS = re.compile("|".join(pattern for _, pattern in LEVELS), re.IGNORECASE)
SENTENCE_END = re.compile(r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<=[.!?])\s+(?=[A-Z`*\"_(\[])")
ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s+")
LABEL = re.compile(r"^\*\*[^*]+\*\*$")  # a bold label alone on its line ("**Required keys:**")
STATEMENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "statements.yaml")


def level_of(sentence: str) -> str | None:
    for level, pattern in LEVELS:
        if re.search(pattern, sentence, re.IGNORECASE):
            return level
    return None


def blocks(markdown: str):
    """(section, text) of each paragraph and list item, outside code fences and tables; the
    section is the nearest heading under its ``Section N`` (or top-level) heading."""
    fenced, heading, top, lines = False, "", "", []

    def flush():
        text = " ".join(line.strip() for line in lines).strip()
        lines.clear()
        if text:
            yield (f"{top} > {heading}" if top and heading != top else heading or top), text

    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            yield from flush()
            fenced = not fenced
            continue
        if fenced:
            continue
        if line.startswith("#"):
            yield from flush()
            level, title = len(line) - len(line.lstrip("#")), line.lstrip("#").strip()
            if level <= 2:
                top = title
            heading = title
        elif not line.strip() or line.startswith("[") and "]:" in line:
            yield from flush()
        elif "|" in line:  # a table row: its last cell is the text (the error codes' descriptions)
            yield from flush()
            lines.append(line.rstrip().rstrip("|").rsplit("|", 1)[-1])
        elif LABEL.match(line.strip()):  # a label is not part of the sentence after it
            yield from flush()
        elif ITEM.match(line):
            yield from flush()
            lines.append(ITEM.sub("", line))
        else:
            lines.append(line)
    yield from flush()


def sentences(markdown: str):
    """(section, sentence) of each sentence with a key word."""
    for section, text in blocks(markdown):
        for sentence in SENTENCE_END.split(text):
            if KEY_WORDS.search(sentence):
                yield section, sentence.strip()


def read(git_dir: str, tag: str, document: str) -> str:
    return subprocess.run(["git", "-C", git_dir, "show", f"{tag}:{document}"], capture_output=True, text=True,
                          check=True).stdout


def candidates(git_dir: str) -> list[dict]:
    """Every distinct statement of the documents, in the order of DOCUMENTS, without ids or judgement."""
    found: dict[tuple, dict] = {}
    for document, tag, version in DOCUMENTS:
        for section, sentence in sentences(read(git_dir, tag, document)):
            entry = found.setdefault((document, sentence), {"document": document, "versions": [],
                                                            "section": section, "level": level_of(sentence),
                                                            "sentence": sentence})
            if version not in entry["versions"]:
                entry["versions"].append(version)
    for entry in found.values():
        entry["versions"].sort(key=lambda v: tuple(map(int, v.split("."))))
    return list(found.values())


def merge(fresh: list[dict], existing: list[dict]) -> list[dict]:
    """``fresh`` with the ids and judgement of ``existing`` (by document and sentence); new ones numbered on."""
    known = {(e["document"], e["sentence"]): e for e in existing}
    numbers = {prefix: max([int(e["id"].split("-")[1]) for e in existing if e["id"].startswith(prefix)] or [0])
               for prefix in PREFIX.values()}
    merged = []
    for entry in fresh:
        old = known.get((entry["document"], entry["sentence"]))
        if old is None:
            prefix = PREFIX[entry["document"]]
            numbers[prefix] += 1
            old = {"id": f"{prefix}-{numbers[prefix]:03d}"}
        judged = {k: old[k] for k in ("untestable", "pending") if k in old}
        merged.append({"id": old["id"], **entry, **judged})
    return merged


def render(statements: list[dict]) -> str:
    head = ("# The normative statements of the CNI spec (SPEC.md at spec-v0.4.0, -v1.0.0, -v1.1.0; CONVENTIONS.md\n"
            "# at spec-v1.1.0), generated by `python -m harness.cni.spec.extract MIRROR` (harness/cni/spec/extract.py).\n"
            "# The sentences are citations: do not edit them here. Judgement is kept across a rewrite:\n"
            "#   untestable: why no plugin binary can be held to it (runtime-side, about the spec itself, a permission)\n"
            "#   pending: the issue-13 item that will check it (a testable statement not yet checked)\n"
            "# A statement without either is covered by the tests whose spec marker names its id.\n")
    return head + yaml.safe_dump(statements, sort_keys=False, allow_unicode=True, width=1_000_000)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m harness.cni.spec.extract MIRROR_GIT_DIR", file=sys.stderr)
        return 2
    existing = []
    if os.path.exists(STATEMENTS):
        with open(STATEMENTS, encoding="utf-8") as handle:
            existing = yaml.safe_load(handle) or []
    merged = merge(candidates(argv[0]), existing)
    with open(STATEMENTS, "w", encoding="utf-8") as handle:
        handle.write(render(merged))
    print(f"{STATEMENTS}: {len(merged)} statements")
    return 0


if __name__ == "__main__":
    sys.exit(main())
