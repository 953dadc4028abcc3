"""The documents' claims, the labs and the tests that check them: ``python -m harness lab claims``.

A claim is a suite's ``pytest.mark.document(ID, CLAIM)`` marker: on a test, or on one of its
``pytest.param`` cases. The markers are read statically (ast) from the suites' files, as ``spec
coverage`` reads its own, not by a ``pytest --collect-only`` run: collecting needs the sandbox (a user
namespace), scapy, the CNI profiles and builds (measured: 1,440 items in 5.4 s wall, 2.0 s CPU), and would
still not see the labs a test builds through ``request.getfixturevalue`` or ``build_for(request, NAME)``.
Read from the source, the table is the same anywhere, in ~0.1 s of CPU.

A test's labs are what its source names: a parameter that is a ``lab_fixture("NAME")`` of its module
(or a fixture of its module that takes one), and a string in its decorators or body (or in a
module-level constant it names) that is such a fixture's name or a lab's name (``000-lpm``). A
``pytest.param`` case with a claim of its own claims with its own values' labs, else with the test's.

The documents are the five seed documents (``DOCUMENTS``); their text is read, where it is, from
``$NETCONFORM_DOCUMENTS``, else ``../shared/seeds`` beside the checkout (``NNN_*.txt``). Text of a
claim between 「 and 」 is the document's own words, and must be found in it (``misquoted``).
"""
from __future__ import annotations

import ast
import glob
import os
import re
from dataclasses import dataclass

from harness import paths
from harness.errors import NetconformError
from harness.lab.file import bundled_labs

DOCUMENTS = {  # id -> title (/work/shared/LABS.md)
    "000": "veth, bridges and routing",
    "001": "building a container network with veth and bridge",
    "002": "veth pair in container networks",
    "003": "CNI: starting from veth-pair",
    "004": "bridging, veth, NAT, TUN/TAP, Flannel, MACVLAN, IPVLAN",
}
LAB_NAME = re.compile(r"^\d{3}-[a-z0-9][a-z0-9-]*$")  # a document's lab, named as harness/lab/data names them
QUOTE = re.compile(r"「(.+?)」")


@dataclass(frozen=True)
class Claim:
    document: str
    claim: str
    labs: tuple[str, ...]
    test: str  # file::test, or file::test[case id]
    line: int  # the marker's line


def _is_marker(node, name: str) -> bool:
    func = node.func if isinstance(node, ast.Call) else None
    return (isinstance(func, ast.Attribute) and func.attr == name and isinstance(func.value, ast.Attribute)
            and func.value.attr == "mark")


def _strings(node) -> list[str]:
    """The string constants in ``node``, and the leading text of each f-string (``docker_``)."""
    found = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            found.append(sub.value)
        elif isinstance(sub, ast.JoinedStr) and sub.values and isinstance(sub.values[0], ast.Constant):
            found.append(f"{sub.values[0].value}*")
    return found


class _Module:
    """One suite file: its lab fixtures, its own fixtures and constants, and how a node names labs."""

    def __init__(self, tree: ast.Module):
        self.lab_fixtures: dict[str, str] = {}  # variable -> lab
        self.constants: dict[str, ast.AST] = {}
        self.functions: dict[str, ast.FunctionDef] = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                value, name = node.value, node.targets[0].id
                if (isinstance(value, ast.Call) and getattr(value.func, "id", "") == "lab_fixture"
                        and value.args and isinstance(value.args[0], ast.Constant)):
                    self.lab_fixtures[name] = value.args[0].value
                else:
                    self.constants[name] = value
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions[node.name] = node

    def labs_named(self, node, seen: frozenset = frozenset()) -> list[str]:
        """The labs ``node`` names: lab fixtures among its parameters (a function's), lab names and lab
        fixtures' names among its strings, and so in the module's constants and fixtures it uses."""
        found: list[str] = []
        names = [a.arg for a in node.args.args] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else []
        names += [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]
        for text in _strings(node) + names:
            if text.endswith("*"):
                found += [lab for var, lab in self.lab_fixtures.items() if var.startswith(text[:-1])]
            elif text in self.lab_fixtures:
                found.append(self.lab_fixtures[text])
            elif LAB_NAME.match(text):
                found.append(text)
            elif text not in seen and text in self.constants:
                found += self.labs_named(self.constants[text], seen | {text})
            elif text not in seen and text in self.functions and not text.startswith("test"):
                found += self.labs_named(self.functions[text], seen | {text})
        return list(dict.fromkeys(found))


def _case_id(param: ast.Call) -> str:
    for keyword in param.keywords:
        if keyword.arg == "id" and isinstance(keyword.value, ast.Constant):
            return f"[{keyword.value.value}]"
    return "[" + "-".join(str(a.value) for a in param.args if isinstance(a, ast.Constant)) + "]"


def _marker_claim(call: ast.Call, where: str) -> tuple[str, str]:
    if len(call.args) != 2 or not all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in call.args):
        raise NetconformError(f"{where} line {call.lineno}: pytest.mark.document takes two string literals, "
                              "the document's id and the claim")
    return call.args[0].value, call.args[1].value


def claims_in(path: str, name: str) -> list[Claim]:
    """The claims of one suite file (``name`` is how the table names it)."""
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    if ".document(" not in source:  # most of suites/cni: nothing to read
        return []
    tree = ast.parse(source, path)
    module = _Module(tree)
    found = []
    for node in ast.walk(tree):
        outer = node.decorator_list if isinstance(node, ast.ClassDef) else [node.value] if isinstance(
            node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets) else []
        if any(_is_marker(n, "document") for o in outer for n in ast.walk(o)):
            raise NetconformError(f"{name} line {node.lineno}: a document marker on a module or class is not "
                                  "read: put it on each test it checks")
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.name.startswith("test"):
            continue
        test, labs = f"{name}::{node.name}", tuple(module.labs_named(node))
        for decorator in node.decorator_list:
            if _is_marker(decorator, "document"):
                found.append(Claim(*_marker_claim(decorator, test), labs, test, decorator.lineno))
                continue
            for param in ast.walk(decorator):  # pytest.param(..., marks=pytest.mark.document(...))
                if not (isinstance(param, ast.Call) and getattr(param.func, "attr", "") == "param"):
                    continue
                own = tuple(module.labs_named(ast.Tuple(elts=param.args, ctx=ast.Load()))) or labs
                for mark in (k.value for k in param.keywords if k.arg == "marks"):
                    for call in (n for n in ast.walk(mark) if _is_marker(n, "document")):
                        found.append(Claim(*_marker_claim(call, test), own, test + _case_id(param), call.lineno))
    return found


def claims(folder: str | None = None) -> list[Claim]:
    """Every claim of the suites in ``folder`` (default: the suites), by document, claim and test."""
    folder = folder or paths.suites_folder("lab claims")
    found = []
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(f for f in files if f.startswith("test_") and f.endswith(".py")):
            path = os.path.join(root, name)
            found += claims_in(path, os.path.relpath(path, folder))
    return sorted(found, key=lambda c: (c.document, c.test, c.line))


def unknown(found: list[Claim]) -> list[str]:
    """A line for each claim naming a document that is not one of the five, or a lab harness/lab/data lacks."""
    labs, problems = set(bundled_labs()), []
    for c in found:
        if c.document not in DOCUMENTS:
            problems.append(f"{c.test} line {c.line}: document {c.document!r} is not one of {', '.join(DOCUMENTS)}")
        problems += [f"{c.test} line {c.line}: lab {lab!r} is not in harness/lab/data" for lab in c.labs
                     if lab not in labs]
    return problems


def documents_folder() -> str:
    """Where the seed documents are: $NETCONFORM_DOCUMENTS, else ../shared/seeds beside the checkout (or
    beside the working directory, for an installed copy)."""
    if os.environ.get("NETCONFORM_DOCUMENTS"):
        return os.environ["NETCONFORM_DOCUMENTS"]
    return os.path.normpath(os.path.join(paths.checkout() or os.getcwd(), "..", "shared", "seeds"))


def normalised(text: str) -> str:
    """Text as a reader sees it: markdown's emphasis (``**``, ``==``, backquotes) gone, whitespace one space."""
    return " ".join(re.sub(r"\*\*|==|`", "", text).split())


def document_texts(folder: str | None = None) -> dict[str, str]:
    """id -> the normalised text of each document found in ``folder`` (``NNN_*.txt``)."""
    texts = {}
    for path in sorted(glob.glob(os.path.join(folder or documents_folder(), "[0-9][0-9][0-9]_*.txt"))):
        with open(path, encoding="utf-8") as handle:
            texts[os.path.basename(path)[:3]] = normalised(handle.read())
    return texts


def misquoted(found: list[Claim], texts: dict[str, str]) -> list[str]:
    """A line for each 「quote」 of a claim that its document (in ``texts``) does not contain."""
    return [f"{c.test} line {c.line}: document {c.document} does not say 「{quote}」"
            for c in found if c.document in texts for quote in QUOTE.findall(c.claim)
            if normalised(quote) not in texts[c.document]]


def table(found: list[Claim]) -> list[tuple[str, str, str, list[str]]]:
    """(document, claim, labs, tests): one row per claim and its labs."""
    rows: dict[tuple[str, str, str], list[str]] = {}
    for c in found:
        rows.setdefault((c.document, " ".join(c.claim.split()), ", ".join(c.labs) or "-"), []).append(c.test)
    return [(d, claim, labs, tests) for (d, claim, labs), tests in rows.items()]


def text(found: list[Claim]) -> str:
    """The table as tab-separated lines (document, claim, labs, tests), then a line per document."""
    problems = unknown(found)
    if problems:
        raise NetconformError(f"{problems[0]} ({len(problems)} such)")
    rows = table(found)
    lines = [f"{d}\t{claim}\t{labs}\t{', '.join(tests)}" for d, claim, labs, tests in rows]
    lines.append("")
    for document, title in DOCUMENTS.items():
        mine = [c for c in found if c.document == document]
        labs = sorted({lab for c in mine for lab in c.labs})
        lines.append(f"document {document} ({title}): {sum(r[0] == document for r in rows)} claims, "
                     f"{len({c.test for c in mine})} tests, labs {', '.join(labs) or '-'}")
    return "\n".join(lines) + "\n"
