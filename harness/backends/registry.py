"""The installed backends: the ``netconform.backends`` entry-point group, each checked.

As molecule loads its drivers (``src/molecule/api.py``): every entry point is loaded and
checked with ``issubclass``; one that fails to import, raises while loading, is not a
:class:`~harness.backends.base.Backend`, is abstract, or names itself differently from its
entry point is left out with one line saying why (logged, and kept in ``problems`` for the
pytest header). A broken third-party backend never stops a run.

In pyproject.toml::

    [project.entry-points."netconform.backends"]
    cni = "harness.cni.backend:CniBackend"
    mine = "my_package.backend:MyBackend"
"""
from __future__ import annotations

import functools
import inspect
import logging
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Iterable

from .base import Backend, NetworkBackend

GROUP = "netconform.backends"
LOG = logging.getLogger("netconform.backends")


@dataclass
class Registry:
    backends: dict[str, type[Backend]] = field(default_factory=dict)  # entry-point name -> class
    problems: list[str] = field(default_factory=list)  # one line per backend left out

    def network_backends(self) -> dict[str, type[NetworkBackend]]:
        """The backends that attach pods to a network configuration (the CNI suites' kind)."""
        return {name: cls for name, cls in self.backends.items() if issubclass(cls, NetworkBackend)}

    def names(self) -> str:
        return ", ".join(sorted(self.backends)) or "none"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _why_not(entry: EntryPoint, loaded) -> str | None:
    """Why the object an entry point names is not a usable backend, or None."""
    if not (isinstance(loaded, type) and issubclass(loaded, Backend)):
        return "not a subclass of harness.backends.Backend"
    if inspect.isabstract(loaded):
        return f"{loaded.__name__} is abstract (no {', '.join(sorted(loaded.__abstractmethods__))})"
    name = getattr(loaded, "NAME", None)
    if name != entry.name:
        return f"{loaded.__name__}.NAME is {name!r}, not the entry point's name {entry.name!r}"
    return None


def _admit(registry: Registry, entry: EntryPoint) -> str | None:
    """Load ``entry`` into ``registry``; or why not, in one line."""
    if entry.name in registry.backends:
        return f"left out: {entry.name!r} is already {registry.backends[entry.name].__module__}"
    try:
        loaded = entry.load()
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a third party's bug must not stop the run
        return f"cannot be loaded: {_first_line(exc)}"
    problem = _why_not(entry, loaded)
    if problem is None:
        registry.backends[entry.name] = loaded
    return problem


def load(entries: Iterable[EntryPoint] | None = None) -> Registry:
    """Every backend of ``entries`` (default: the installed ``netconform.backends`` entry points)."""
    registry = Registry()
    for entry in entry_points(group=GROUP) if entries is None else entries:
        problem = _admit(registry, entry)
        if problem is not None:
            registry.problems.append(f"backend {entry.name} ({entry.value}): {problem}")
            LOG.warning("netconform: %s", registry.problems[-1])
    return registry


@functools.cache
def installed() -> Registry:
    """The installed backends, loaded once per process."""
    return load()
