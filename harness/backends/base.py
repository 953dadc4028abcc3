"""The implementation under test, one idea everywhere (testinfra's ``testinfra/backend/base.py``:
one abstract base with a ``NAME``; the test id names the backend, ``NAME://what``).

Two kinds, one base:

- :class:`Backend`: what every implementation under test has: a NAME, the thing of it that
  runs (``subject``: a lab, a network configuration), the test id ``NAME://subject``
  (``lab://001-vbridge``, ``cni://bridge-portmap``), the label a report gives it, why it
  cannot run here, and ``close``. The reference labs (harness.backends.reference) are this
  and nothing more: their datapath is built once, from the lab file.
- :class:`NetworkBackend`: an implementation that attaches pods (namespaces of a live lab,
  made by the harness) to a network it was given, and detaches them; what it did is a CNI
  result, which the datapath suite reads to know what to expect on the wire. The lifecycle
  (molecule's create -> converge -> verify -> destroy): attach* -> (probe) -> detach* -> close.
  The CNI plugin chain and netavark (harness.cni) are this; third parties add theirs through
  the ``netconform.backends`` entry-point group (harness.backends.registry).

Every method a backend has is declared here, abstract or with a documented default.
"""
from __future__ import annotations

import abc
import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ClassVar

from harness.errors import NetconformError
from harness.kernel import sandbox


def subject_of_file(path: str) -> str:
    """A configuration file as a test id names it: its base name without the extension."""
    return os.path.basename(path).rsplit(".", 1)[0]


class Backend(abc.ABC):
    """An implementation under test."""

    NAME: ClassVar[str]  # the scheme of its test ids: "cni" in cni://bridge-portmap

    @property
    @abc.abstractmethod
    def subject(self) -> str:
        """What of the implementation runs: a lab's name, a configuration's (``bridge-portmap``)."""

    @classmethod
    def id_for(cls, subject: str) -> str:
        """The test id of ``subject`` under this backend, before any instance exists (collection)."""
        return f"{cls.NAME}://{subject}"

    @property
    def test_id(self) -> str:
        """``NAME://subject``: a test's id, and the report's ``backend`` label."""
        return self.id_for(self.subject)

    @property
    def label(self) -> str:
        """The implementation as a report's ``implementation`` label names it; default: the test id."""
        return self.test_id

    def unavailable(self) -> str | None:
        """Why this implementation cannot run here (a skip reason), or None (the default)."""
        return None

    def close(self) -> None:
        """Undo what the backend made; the default has nothing to undo."""


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


class NetworkBackend(Backend):
    """An implementation that attaches pods to a network. Lifecycle: attach* -> (probe) -> detach* -> close."""

    CONCURRENT_DETACH: ClassVar[bool] = False  # may pods be detached in parallel?

    build: str | None = None  # the catalogue build under test (harness.impl: cni-plugins@1.9.1); None: the installed one

    def __init__(self, live, network, state_dir: str, path: list[str] | None = None):
        self.live = live
        self.network = network  # a harness.cni.conf.NetworkConfig, from network_of
        self.state_dir = state_dir
        self.path = path
        self.attached: dict[tuple[str, str], Attachment] = {}
        self.run_files = sandbox.RunFiles() if self.contained() else None  # what /run held before it

    # -- the configuration it drives (read before any lab exists) ----------------------
    @classmethod
    def claims(cls, source: str, data: dict) -> bool:
        """Whether this backend drives the configuration in ``source`` (parsed: ``data``) when the
        file names no backend (``netconformBackend``). Default: it claims nothing."""
        return False

    @classmethod
    @abc.abstractmethod
    def network_of(cls, source: str, data):
        """The configuration as a NetworkConfig; a bad one raises a NetconformError of one line
        naming ``source`` and the field."""

    @property
    def subject(self) -> str:
        return subject_of_file(self.network.source)

    def netns_path(self, pod: str) -> str:
        """Where a pod's namespace is named (CNI_NETNS); default: /run/netns/POD."""
        return os.path.join("/run/netns", pod)

    # -- the operations -------------------------------------------------------------------
    @abc.abstractmethod
    def attach(self, pod: str, ifname: str = "eth0", **runtime_args) -> Attachment:
        """Attach ``pod`` to the network; raise a NetconformError (CniError) on failure."""

    @abc.abstractmethod
    def detach(self, pod: str, ifname: str = "eth0") -> None:
        """Detach ``pod``; detaching what is not attached must succeed."""

    def check(self, pod: str, ifname: str = "eth0") -> None:
        """Ask the implementation whether ``pod`` is still as attached (CNI CHECK). Default: it has no
        such operation, and says so."""
        raise NotImplementedError(f"{self.NAME} has no CHECK")

    def contained(self) -> bool:
        """Whether everything the implementation makes lives in the lab's namespaces and in files the
        run owns (its state directory, its own /var/lib/cni, the sandbox's private /run), so that the
        lab's teardown and :meth:`close` undo all of it. Default: not known, so no."""
        return False

    def close(self, lab_goes: bool = False) -> None:
        """Detach whatever is still attached (best effort: its errors are no verdict); at once for
        different pods when the implementation allows it (CONCURRENT_DETACH).

        When the lab goes right after (``lab_goes``) and the implementation is :meth:`contained`,
        nothing is detached: a DEL there would only spend time (a third of the CNI suites') undoing
        what the teardown removes anyway, and what DEL does is checked by the tests that call it.
        The files it left in the sandbox's /run since it was made are removed, so that the next
        test finds none (a host-local dataDir there would hold this test's addresses)."""
        if lab_goes and self.contained():
            self.attached.clear()
            self.run_files.remove_new()
            return

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
