"""The probe room: frames and packets on a lab's wire, PTF style. The engine (send, expect,
expect_none, expect_only, ARP), the stack exchanges (ping, UDP, TCP through real sockets), frame
matching, pcapng captures and report steps. It works on a LiveLab; imports run towards
harness.lab and harness.kernel."""
from harness.probe.engine import (  # noqa: F401 (the probe API)
    DEADLINE,
    QUIET_WINDOW,
    ArpReply,
    PingResult,
    Port,
    Probe,
    Seen,
    l2_frame,
)
