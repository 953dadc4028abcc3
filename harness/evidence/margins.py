"""How close the positive waits came to their deadlines.

Every wait that succeeded (a frame matched, an ARP or ICMP reply came, a connection
was made, links settled, a CNI plugin answered) notes how long it took against how
long it was allowed. The worst ratio per kind is the run's timing margin: a soak
under load reports it, so "no retries needed" comes with how far from needing one.
Process-wide and cheap (a comparison per wait); nothing is written unless asked.
"""
from __future__ import annotations

import contextlib
import json
import os

ENV = "NETCONFORM_MARGINS"  # a directory: a pytest process told this writes its worst margins there
_where = ""  # what is running: the test's node id while the pytest plugin runs one (see running)
_worst: dict[str, dict] = {}


@contextlib.contextmanager
def running(where: str):
    """Waits noted inside this block are attributed to ``where`` (a test's node id)."""
    global _where
    before, _where = _where, where
    try:
        yield
    finally:
        _where = before


def note(kind: str, used: float, allowed: float) -> None:
    """A wait of kind ``kind`` succeeded after ``used`` of its ``allowed`` seconds."""
    if allowed <= 0:
        return
    current = _worst.get(kind)
    if current is None or used / allowed > _share(current):
        _worst[kind] = {"used": used, "allowed": allowed, "where": _where}


def worst() -> dict[str, dict]:
    return {kind: dict(entry) for kind, entry in _worst.items()}


def reset() -> None:
    _worst.clear()


def dump(directory: str, name: str) -> str:
    """Write this process's worst margins to ``directory/name.json``; the path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{name}.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(worst(), handle, indent=1)
    return path


def _share(entry: dict) -> float:
    return entry["used"] / entry["allowed"]


def worst_of(tables) -> dict[str, dict]:
    """Per kind, the entry that used the most of its deadline, over several {kind: entry} tables."""
    merged: dict[str, dict] = {}
    for table in tables:
        for kind, entry in table.items():
            if kind not in merged or _share(entry) > _share(merged[kind]):
                merged[kind] = entry
    return merged


def merge(paths) -> dict[str, dict]:
    """The worst of several dumps, per kind."""
    def read(path):
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    return worst_of(read(path) for path in paths)
