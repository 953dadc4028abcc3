"""The documents' own shell commands for each document lab, and the state they leave.

``harness/lab/data/shell/LAB.sh`` holds, for the lab LAB, the commands its document gives
(verbatim where it gives them, stand-ins and ``# lab:`` additions marked), then a line
``#### teardown`` and the commands that take the lab down again. Each runs with
``sh -e`` as root inside a scratch network namespace that stands in for the
document's host (the lab's ``host`` node); every other node is an ``ip netns add``.

``state(fd)`` reads what one namespace holds that a document's commands decide
(``harness.kernel.state``, IPv4: the labs keep IPv6 off), and ``state.differences``
lists where two readings disagree: tests/test_doc_shell.py holds a script's lab next
to the harness's build of the same lab with them.
"""
from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable

from harness import paths
from harness.kernel import state as kstate
from harness.kernel.constants import AF_INET

SHELL_DIR = paths.SHELL_DIR
TEARDOWN_MARK = "#### teardown"


class ScriptError(ValueError):
    """A shell file without its teardown part, or with two."""


def scripts() -> dict[str, str]:
    """{lab name: path of its shell file}, sorted by lab name."""
    if not os.path.isdir(SHELL_DIR):
        return {}
    return {name[:-3]: os.path.join(SHELL_DIR, name) for name in sorted(os.listdir(SHELL_DIR))
            if name.endswith(".sh")}


def parts(path: str) -> tuple[str, str]:
    """(build, teardown): the text before and after the ``#### teardown`` line."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    pieces = re.split(r"^" + re.escape(TEARDOWN_MARK) + r"[ \t]*\n", text, flags=re.MULTILINE)
    if len(pieces) != 2:
        raise ScriptError(f"{path}: needs exactly one line {TEARDOWN_MARK!r}, found {len(pieces) - 1}")
    return pieces[0], pieces[1]


def commands(script: str) -> int:
    """How many commands a script part runs (its lines that are neither blank nor comments)."""
    return sum(1 for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def run(script: str, what: str, errexit: bool = True) -> None:
    """Run ``script`` with ``sh -e`` in the calling thread's namespace; a failure raises, in one line.

    ``errexit=False`` runs every command whatever fails (a clean-up after a failed build)."""
    argv = ["sh", "-e", "-c", script] if errexit else ["sh", "-c", script]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)
    if errexit and done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ScriptError(f"{what} failed (exit {done.returncode}): {last}")


def state(fd: int, macs: Iterable[str] = ()) -> dict:
    """What the namespace ``fd`` holds (IPv4): links (but lo, which the builder brings up in every
    node and documents 001 and 002 leave DOWN: a stated deviation), addresses, routes (but the local
    table), rules (but the defaults), permanent neighbours, static FDB entries, iptables-save
    and nft rulesets. ``macs`` names the links whose MAC counts (those a lab fixes; others
    are random)."""
    return kstate.snapshot(fd, families=(AF_INET,), macs=macs)
