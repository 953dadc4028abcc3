"""The flat module names of netconform 0.1's first layout, kept importable for user plugins.

harness/ was 33 flat modules; it is now rooms (harness.kernel, harness.lab, ...). A user's
plugin written against the old names (``from harness.livelab import set_link``) keeps working,
with a DeprecationWarning naming the new place. The table is the whole mechanism: an old name
is the very module object of its new name, not a copy.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "nsutil": "kernel.nsutil", "sandbox": "kernel.sandbox", "rtnl": "kernel.rtnl", "netops": "kernel.netops",
    "capabilities": "kernel.capabilities", "firewall": "kernel.firewall", "netnsgc": "kernel.netnsgc",
    "tuntap": "kernel.tuntap", "fdwait": "kernel.fdwait",
    "model": "lab.model", "labschema": "lab.schema", "labfile": "lab.file", "builder": "lab.build",
    "livelab": "lab.live", "render": "lab.script", "docshell": "lab.docshell",
    "exchange": "probe.exchange", "match": "probe.match", "pcapng": "probe.pcapng", "steps": "probe.steps",
    "tunnel": "emulate.tunnel", "evidence": "evidence.dump", "reportmatrix": "evidence.matrix",
    "margins": "evidence.margins", "benchreport": "bench.report", "benchscale": "bench.scale",
    "suitetimes": "bench.suitetimes", "soak": "bench.soak",
}


class _Loader(importlib.abc.Loader):
    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        return importlib.import_module(self.new)

    def exec_module(self, module):
        pass  # the new module is already executed


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        old = fullname.removeprefix("harness.")
        if fullname == old or old not in MOVED:
            return None
        new = f"harness.{MOVED[old]}"
        warnings.warn(f"{fullname} is now {new}", DeprecationWarning, stacklevel=2)
        return importlib.util.spec_from_loader(fullname, _Loader(new))


def install() -> None:
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.append(_Finder())
