"""Implementations under test behind one small interface (as testinfra's backends,
with molecule's lifecycle), discovered through the ``netconform.backends``
entry-point group so a third party can add one without touching the harness.

A backend attaches pods (namespaces of a live lab, made by the harness) to the
network it was given and detaches them; what it did is reported as a CNI result,
which the datapath suite reads to know what to expect on the wire.
"""
from __future__ import annotations

import abc
import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import ClassVar

from harness.errors import CapabilityMissing, NetconformError
from .conf import NetworkConfig, load
from .runtime import CniError, Runtime

GROUP = "netconform.backends"


@dataclass
class Attachment:
    """A pod attached to the network: the CNI result says what the implementation built."""
    pod: str
    ifname: str
    container_id: str
    netns: str
    result: dict
    runtime_args: dict = field(default_factory=dict)

    def addresses(self) -> list[str]:
        return [ip["address"] for ip in self.result.get("ips", [])]

    def gateway(self) -> str | None:
        return next((ip["gateway"] for ip in self.result.get("ips", []) if ip.get("gateway")), None)


class Backend(abc.ABC):
    """An implementation under test. Lifecycle: attach* -> (probe) -> detach* -> close."""

    NAME: ClassVar[str]
    CONCURRENT_DETACH: ClassVar[bool] = False  # may pods be detached in parallel?

    def __init__(self, live, network: NetworkConfig, state_dir: str, path: list[str] | None = None):
        self.live = live
        self.network = network
        self.state_dir = state_dir
        self.path = path
        self.attached: dict[tuple[str, str], Attachment] = {}

    @classmethod
    def claims(cls, source: str, data: dict) -> bool:
        """Whether this backend drives the configuration in ``source``."""
        return False

    @property
    def label(self) -> str:
        """The implementation as a report names it (``cni:bridge+portmap``)."""
        return f"{self.NAME}:{self.network.profile}"

    def netns_path(self, pod: str) -> str:
        return os.path.join("/run/netns", pod)

    @abc.abstractmethod
    def attach(self, pod: str, ifname: str = "eth0", **runtime_args) -> Attachment:
        """Attach ``pod`` to the network; raise CniError (or a subclass of NetconformError) on failure."""

    @abc.abstractmethod
    def detach(self, pod: str, ifname: str = "eth0") -> None:
        """Detach ``pod``; detaching what is not attached must succeed."""

    def check(self, pod: str, ifname: str = "eth0") -> None:
        raise NotImplementedError(f"{self.NAME} has no CHECK")

    def unavailable(self) -> str | None:
        """Why this implementation cannot run here (a skip reason), or None."""
        return None

    def close(self) -> None:
        """Detach whatever is still attached (best effort: the lab goes anyway); at once for
        different pods when the implementation allows it (CONCURRENT_DETACH)."""
        def detach(key):
            with contextlib.suppress(NetconformError):
                self.detach(*key)
        keys = list(self.attached)
        if self.CONCURRENT_DETACH and len(keys) > 1:
            with ThreadPoolExecutor(len(keys)) as pool:
                list(pool.map(detach, keys))
        else:
            for key in keys:
                detach(key)


class CniBackend(Backend):
    """Any chain of CNI plugin binaries, exec'd per the spec."""

    NAME = "cni"
    # SPEC.md: "The container runtime must not invoke parallel operations for the same container, but is
    # allowed to invoke parallel operations for different containers."
    CONCURRENT_DETACH = True

    def __init__(self, live, network, state_dir, path=None):
        super().__init__(live, network, state_dir, path)
        self.runtime = Runtime(live, path=list(path) if path else Runtime(live).path, state_dir=state_dir)

    @classmethod
    def claims(cls, source: str, data: dict) -> bool:
        return source.endswith((".conflist", ".conf")) or "plugins" in data or "type" in data

    def container_id(self, pod: str) -> str:
        return f"netconform-{pod}"

    def attach(self, pod, ifname="eth0", **runtime_args):
        result = self.runtime.add(self.network, self.container_id(pod), self.netns_path(pod), ifname,
                                  runtime_args or None)
        attachment = Attachment(pod, ifname, self.container_id(pod), self.netns_path(pod), result, runtime_args)
        self.attached[(pod, ifname)] = attachment
        return attachment

    def detach(self, pod, ifname="eth0"):
        attachment = self.attached.pop((pod, ifname), None)
        self.runtime.delete(self.network, self.container_id(pod), self.netns_path(pod),
                            attachment.result if attachment else None, ifname,
                            attachment.runtime_args if attachment else None)

    def unavailable(self):
        try:
            self.runtime.binaries(self.network)
        except CapabilityMissing as exc:
            return str(exc)
        return None

    def check(self, pod, ifname="eth0"):
        attachment = self.attached[(pod, ifname)]
        self.runtime.check(self.network, self.container_id(pod), self.netns_path(pod), attachment.result, ifname,
                           attachment.runtime_args)


def backends() -> dict[str, type[Backend]]:
    """Every installed backend by name: ours and third parties' (entry points)."""
    found = {}
    for entry in entry_points(group=GROUP):
        found[entry.name] = entry.load()
    found.setdefault("cni", CniBackend)
    return found


def backend_for(source: str) -> tuple[type[Backend], NetworkConfig]:
    """The backend that drives the configuration file ``source``, and its network."""
    import json
    with open(source, encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as exc:
            raise CniError(f"{source}: line {exc.lineno}, column {exc.colno}: broken JSON: {exc.msg}") from None
    named = data.get("netconformBackend") if isinstance(data, dict) else None
    for name, backend in backends().items():
        if name == named or (named is None and backend.claims(source, data if isinstance(data, dict) else {})):
            return backend, (backend.network_of(source, data) if hasattr(backend, "network_of") else load(source))
    raise CniError(f"{source}: no backend drives this configuration (installed: {', '.join(backends())})")
