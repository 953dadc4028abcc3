"""The probe room: frames and packets on a lab's wire, PTF style. The engine (send, expect,
expect_none, expect_only, ARP), the verdicts they return (which show their evidence), the stack
exchanges (ping, UDP, TCP through real sockets), ICMP, frame matching, pcapng captures and report
steps. It works on a LiveLab; imports run towards harness.kernel."""
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
from harness.probe.verdict import Arrival, Delivery, Strays  # noqa: F401 (the probe API)
