"""netconform's library: labs as data, built in the kernel, probed on the wire, with the evidence.

It knows nothing of pytest (``fixtures/``, installed as ``pytest_netconform``, is the thin pytest
glue over it). The rooms, in the order data flows through them (README, "Architecture"):

    harness.lab       a lab file -> model -> build -> LiveLab (and its script and topology)
    harness.kernel    what the builder and the probes stand on: namespaces, rtnetlink, firewall
    harness.probe     frames and packets on a live lab's wire
    harness.evidence  what a run leaves for a reader: state dumps, the matrix, timing margins
    harness.backends  the implementations under test (reference labs, CNI, netavark, third parties)
    harness.cni, harness.vm, harness.emulate, harness.bench

Suites and user plugins import from here; what is not in ``__all__`` may change.
"""
__version__ = "0.1.0"

from harness import _moved
from harness.errors import (
    BuildError,
    CapabilityMissing,
    LabError,
    NetconformError,
    ProbeError,
    SandboxError,
    VmError,
)
from harness.emulate import tunnel
from harness.kernel import bridge
from harness.kernel.netops import RTMGRP_IPV4_ROUTE, RTMGRP_LINK, NetlinkWatch
from harness.kernel.nsutil import write_sysctl
from harness.lab.build import build
from harness.lab.file import bundled_labs, lab_from_dict, load_lab, load_lab_file
from harness.lab.live import LiveLab, address, delete_link, set_link
from harness.lab.model import HOST, Lab, Route
from harness.probe import DEADLINE, QUIET_WINDOW, Arrival, Delivery, Port, Probe, Seen, Strays, l2_frame

_moved.install()

__all__ = [
    # labs: load, build, hold
    "load_lab", "load_lab_file", "lab_from_dict", "bundled_labs", "build", "Lab", "Route", "LiveLab", "HOST",
    "set_link", "address", "delete_link", "bridge",
    # the kernel, as a test acts on a lab: a sysctl in the namespace entered (LiveLab.entered),
    # rtnetlink notifications to wait on with a deadline
    "write_sysctl", "NetlinkWatch", "RTMGRP_LINK", "RTMGRP_IPV4_ROUTE",
    # user-space stand-ins for daemons: TUN/TAP file descriptors, Flannel's UDP encapsulator
    "tunnel",
    # probes
    "Probe", "Port", "Seen", "l2_frame", "DEADLINE", "QUIET_WINDOW", "Arrival", "Strays", "Delivery",
    # errors
    "NetconformError", "LabError", "BuildError", "CapabilityMissing", "ProbeError", "SandboxError", "VmError",
]
