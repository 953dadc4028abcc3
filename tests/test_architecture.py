"""harness/ is rooms whose imports run one way (README, "Architecture"): a lab spec becomes a built
lab (lab -> kernel), is probed (probe -> kernel), and leaves evidence. This test reads every
module's imports (ast, nothing is imported) and holds the rooms to it; it also keeps pytest out of
the library."""
from __future__ import annotations

import ast
import os

import pytest

HARNESS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "harness")
FOUNDATION = {"harness.errors", "harness.paths", "harness.evidence", "harness.evidence.margins"}
# room -> the rooms (or modules) it may import besides itself and the foundation
MAY_IMPORT = {
    "kernel": set(),
    "impl": set(),
    "lab": {"kernel"},
    "probe": {"kernel"},
    "emulate": {"kernel"},
    "evidence": {"kernel", "lab"},
    "cni": {"kernel", "lab", "backends"},  # its backends subclass harness.backends.base
    "vm": {"kernel", "impl", "evidence"},  # impl: a box installs its release's builds from the archive fetch.py
    # reads; evidence: a matrix cell's results are labelled as the merge of CI cells labels them
    "backends": {"kernel", "lab", "probe"},  # never cni: the CNI backends come in as entry points
    "bench": {"kernel", "lab", "probe", "evidence", "cni", "backends", "emulate", "impl"},  # impl: times each build
}


def modules():
    for folder, _, files in os.walk(HARNESS):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, os.path.dirname(HARNESS))[:-3].replace(os.sep, ".")
                yield dotted.removesuffix(".__init__"), path


def imports_of(dotted: str, path: str) -> set[str]:
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = dotted if path.endswith("__init__.py") else dotted.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found |= {f"{base}.{alias.name}" for alias in node.names} | {base}
    return found


def room_of(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in MAY_IMPORT) else None


@pytest.mark.parametrize("dotted,path", list(modules()), ids=[d for d, _ in modules()])
def test_imports_run_one_way(dotted, path):
    room = room_of(dotted)
    found = imports_of(dotted, path)
    assert not {name for name in found if name == "pytest" or name.startswith(("pytest.", "_pytest"))}, (
        f"{dotted} imports pytest: harness/ is a library that knows nothing of pytest")
    if room is None:
        return  # the top: __init__ (the public API), cli, errors, paths, _moved
    allowed = MAY_IMPORT[room] | {room}
    wrong = sorted(name for name in found if name.startswith("harness.") and name not in FOUNDATION
                   and not any(name.startswith(f"harness.{ok}.") or name == f"harness.{ok}" for ok in allowed)
                   and name.split(".")[1] in MAY_IMPORT)
    assert not wrong, f"{dotted} (room {room}) imports {wrong}; {room} may import only {sorted(allowed)}"


def test_the_negative_twin_a_wrong_way_import_is_seen(tmp_path):
    """The check can fail: a kernel module importing the lab room is reported."""
    module = tmp_path / "bad.py"
    module.write_text("from harness.lab.build import build\nfrom . import firewall\n")
    found = imports_of("harness.kernel.bad", str(module))
    assert "harness.lab.build" in found and "harness.kernel.firewall" in found
