"""The kernel room: namespaces and the sandbox, rtnetlink (our fast client and pyroute2), netlink
watching, the kernel's constants, bridges and tun/tap, the firewall tools, capability checks,
namespace garbage collection, and one snapshot-and-diff of a namespace's state.

It imports nothing of netconform but ``harness.errors`` and ``harness.evidence.margins``
(where a wait records how close it came to its deadline)."""
