"""Which test checks which statement: ``python -m harness spec coverage``.

The markers are read statically (ast) from the suites' files, not by a ``pytest --collect-only``
run: the table is the same with or without a sandbox, root, the profiles or the plugins, from a
checkout or an installed wheel, and costs no collection of 700 parametrized items. So a spec
marker's arguments must be string literals: anything else is reported in one line, as is an id
statements.yaml does not hold.
"""
from __future__ import annotations

import ast
import os
from collections import Counter

from harness import paths
from harness.cni import spec
from harness.errors import NetconformError

KINDS = ("covered", "untestable", "pending", "uncovered")


def _is_spec_marker(node) -> bool:
    func = node.func if isinstance(node, ast.Call) else None
    return (isinstance(func, ast.Attribute) and func.attr == "spec" and isinstance(func.value, ast.Attribute)
            and func.value.attr == "mark")


def markers(folder: str) -> dict[str, list[str]]:
    """statement id -> the tests whose spec marker names it (``cni/test_spec.py::test_x``)."""
    found: dict[str, list[str]] = {}
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(f for f in files if f.startswith("test_") and f.endswith(".py")):
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as handle:
                tree = ast.parse(handle.read(), path)
            for node in ast.walk(tree):
                outer = node.decorator_list if isinstance(node, ast.ClassDef) else [node.value] if isinstance(
                    node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets) else []
                if any(_is_spec_marker(n) for o in outer for n in ast.walk(o)):
                    raise NetconformError(f"{os.path.relpath(path, folder)} line {node.lineno}: a spec marker on a "
                                          "module or class is not read: put it on each test it checks")
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.name.startswith("test"):
                    continue
                for decorator in filter(_is_spec_marker, node.decorator_list):
                    test = f"{os.path.relpath(path, folder)}::{node.name}"
                    for arg in decorator.args:
                        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                            raise NetconformError(f"{test}: pytest.mark.spec takes statement ids as string "
                                                  f"literals (line {arg.lineno})")
                        found.setdefault(arg.value, []).append(test)
    return found


def rows(folder: str | None = None) -> list[tuple[spec.Statement, str, str]]:
    """(statement, kind, what) for every statement: covered and the tests, untestable and why, pending and
    the issue-13 item, or uncovered."""
    checked = markers(folder or paths.suites_folder("spec coverage"))
    known = spec.statements()
    unknown = sorted(set(checked) - set(known))
    if unknown:
        raise NetconformError(f"{checked[unknown[0]][0]}: pytest.mark.spec names {unknown[0]!r}, which "
                              "harness/cni/spec/statements.yaml does not hold")
    table = []
    for statement in known.values():
        if statement.id in checked:
            table.append((statement, "covered", ", ".join(dict.fromkeys(checked[statement.id]))))
        elif statement.untestable:
            table.append((statement, "untestable", f"not testable on a plugin binary: {statement.untestable}"))
        elif statement.pending:
            table.append((statement, "pending", f"pending: {statement.pending}"))
        else:
            table.append((statement, "uncovered", "UNCOVERED"))
    return table


def summary(table) -> str:
    """covered / untestable / pending / uncovered, in all and per level."""
    per_level: dict[str, Counter] = {level: Counter() for level in spec.LEVELS}
    for statement, kind, _ in table:
        per_level[statement.level][kind] += 1
    total = Counter(kind for _, kind, _ in table)

    def line(name, counts):
        return f"{name}: " + ", ".join(f"{counts[k]} {k}" for k in KINDS) + f" (of {sum(counts.values())})"
    return "\n".join([line("all", total)] + [line(level, per_level[level]) for level in spec.LEVELS])


def text(table) -> str:
    lines = []
    for statement, kind, what in table:
        lines.append(f"{statement.id}\t{','.join(statement.versions)}\t{statement.level}\t{what}")
        lines.append(f"\t{statement.document} {statement.section}: {statement.sentence}")
    return "\n".join(lines + ["", summary(table)]) + "\n"
