"""The CNI plugin chain as an implementation under test, and the choice of the backend that
drives a network configuration file (among the installed ones: harness.backends.registry).

The base classes (Backend, NetworkBackend, Attachment) are in harness.backends.base.
"""
from __future__ import annotations

import os

from harness.backends.base import Attachment, Backend, NetworkBackend
from harness.backends.registry import Registry, installed
from harness.errors import CapabilityMissing
from harness.kernel import sandbox
from . import expect
from .conf import NetworkConfig, parse, read
from .runtime import CniError, Runtime

__all__ = ["Attachment", "Backend", "CniBackend", "NetworkBackend", "backend_for"]

# What kube-proxy (iptables mode) makes in the nat table, and portmap's externalSetMarkChain names: the
# chain that marks a hairpinned connection, and the masquerade of what it marked. A configuration
# written for a Kubernetes node expects them (kubenet's portmap: externalSetMarkChain KUBE-MARK-MASQ).
KUBE_PROXY_NAT = {"KUBE-MARK-MASQ": [
    ["-N", "KUBE-MARK-MASQ"], ["-A", "KUBE-MARK-MASQ", "-j", "MARK", "--set-xmark", "0x4000/0x4000"],
    ["-N", "KUBE-POSTROUTING"], ["-A", "POSTROUTING", "-j", "KUBE-POSTROUTING"],
    ["-A", "KUBE-POSTROUTING", "-m", "mark", "!", "--mark", "0x4000/0x4000", "-j", "RETURN"],
    ["-A", "KUBE-POSTROUTING", "-j", "MARK", "--set-xmark", "0x4000/0x0"],
    ["-A", "KUBE-POSTROUTING", "-j", "MASQUERADE"]]}


PROVIDED_UNDER = "/run"  # the sandbox's private tmpfs: where the harness writes what another component would


def provide_file(path: str, content: str) -> str | None:
    """Write ``path`` as the component that owns it would (flanneld's subnet.env), inside the sandbox's
    private /run only; else one line naming what is missing."""
    state = sandbox.info()
    if os.path.commonpath([PROVIDED_UNDER, os.path.abspath(path)]) != PROVIDED_UNDER or state is None \
            or state.mode == "none":
        return (f"the chain reads {path}, which another component (flanneld) writes: the harness provides it "
                f"only under its sandbox's private {PROVIDED_UNDER}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(content)
    return None


class CniBackend(NetworkBackend):
    """Any chain of CNI plugin binaries, exec'd per the spec."""

    NAME = "cni"
    # SPEC.md: "The container runtime must not invoke parallel operations for the same container, but is
    # allowed to invoke parallel operations for different containers."
    CONCURRENT_DETACH = True

    def __init__(self, live, network, state_dir, path=None):
        super().__init__(live, network, state_dir, path)
        self.runtime = Runtime(live, path=list(path) if path else Runtime(live).path, state_dir=state_dir)
        self.missing = self._provide_preconditions()

    def _provide_preconditions(self) -> str | None:
        """What the configuration expects of the host that another component makes: made here as
        that component would (kube-proxy's KUBE-MARK-MASQ), before anything is measured; else one
        line naming what is missing."""
        for path, content in expect.provided_files(self.network).items():
            missing = provide_file(path, content)
            if missing:
                return f"{self.network.source}: {missing}"
        for plugin in self.network.plugins:
            chain = plugin.get("externalSetMarkChain")
            if not chain or self.live.run("host", ["iptables", "-t", "nat", "-S", chain]).returncode == 0:
                continue
            if chain not in KUBE_PROXY_NAT:
                return (f"{self.network.source}: {plugin['type']}'s externalSetMarkChain {chain!r} is not in the "
                        "host's nat table: whatever owns it must make it first (the harness makes only "
                        "kube-proxy's KUBE-MARK-MASQ)")
            for rule in KUBE_PROXY_NAT[chain]:
                self.live.run("host", ["iptables", "-t", "nat", *rule], check=True)
        return None

    @classmethod
    def claims(cls, source: str, data: dict) -> bool:
        return source.endswith((".conflist", ".conf")) or "plugins" in data or "type" in data

    @classmethod
    def network_of(cls, source: str, data) -> NetworkConfig:
        return parse(data, source)

    @property
    def label(self) -> str:
        """The implementation as a report names it: the chain of plugin types (``cni:bridge+portmap``)."""
        return f"{self.NAME}:{self.network.profile}" + (f" ({self.build})" if self.build else "")

    def contained(self) -> bool:
        """Plugins keep their files in this run's /var/lib/cni (Runtime.plugin_state) and under the
        sandbox's /run; what they make in the kernel is in the lab's namespaces."""
        return sandbox.private_files()

    def close(self, lab_goes: bool = False) -> None:
        super().close(lab_goes)
        self.runtime.close()

    def container_id(self, pod: str) -> str:
        return f"netconform-{pod}"

    def attach(self, pod, ifname="eth0", **runtime_args):
        key, container_id, netns = (pod, ifname), self.container_id(pod), self.netns_path(pod)
        try:
            result = self.runtime.add(self.network, container_id, netns, ifname, runtime_args or None)
        except CniError as exc:
            if exc.del_failure is not None:  # the DEL after the failed ADD failed too: it is still owed (SPEC-082)
                self.attached[key] = Attachment(pod, ifname, container_id, netns, {}, runtime_args)
            raise
        attachment = Attachment(pod, ifname, container_id, netns, result, runtime_args)
        self.attached[key] = attachment
        return attachment

    def detach(self, pod, ifname="eth0"):
        """The pod's DEL, with the cached ADD result as prevResult. The attachment is forgotten only once a DEL
        succeeded (SPEC-090: the runtime "must store the result ... as it is required for _check_ and _delete_";
        SPEC-150: it deletes it "on a successful DEL"), so a DEL that failed is retried with it."""
        attachment = self.attached.get((pod, ifname))
        self.runtime.delete(self.network, self.container_id(pod), self.netns_path(pod),
                            attachment.result or None if attachment else None, ifname,
                            attachment.runtime_args if attachment else None)
        self.attached.pop((pod, ifname), None)

    def unavailable(self):
        if self.missing:
            return self.missing
        try:
            self.runtime.binaries(self.network)
        except CapabilityMissing as exc:
            return str(exc)
        return None

    def check(self, pod, ifname="eth0"):
        attachment = self.attached[(pod, ifname)]
        self.runtime.check(self.network, self.container_id(pod), self.netns_path(pod), attachment.result, ifname,
                           attachment.runtime_args)


def backend_for(source: str, registry: Registry | None = None) -> tuple[type[NetworkBackend], NetworkConfig]:
    """The installed backend that drives the configuration file ``source``, and its network: the one
    the file names (``"netconformBackend": NAME``), or else the only one that claims it."""
    data = read(source)
    found = (registry or installed()).network_backends()
    named = data.get("netconformBackend") if isinstance(data, dict) else None
    names = ", ".join(sorted(found)) or "none"
    if named is not None:
        if named not in found:
            raise CniError(f"{source}: netconformBackend: {named!r} is not an installed backend "
                           f"(installed: {names})")
        chosen = found[named]
    else:
        claimers = [name for name, backend in sorted(found.items())
                    if backend.claims(source, data if isinstance(data, dict) else {})]
        if not claimers:
            raise CniError(f"{source}: no backend drives this configuration "
                           f"(installed: {names})")
        if len(claimers) > 1:
            raise CniError(f"{source}: backends {', '.join(claimers)} all claim this configuration: "
                           'name one with "netconformBackend"')
        chosen = found[claimers[0]]
    return chosen, chosen.network_of(source, data)
