"""A deliberately faulty datapath for self-tests: bridges that neither learn nor
flood unknown unicast, and hosts that forget their addresses. Loaded with
``-p netconform_fault_demo``; it uses the public lab-ready hook as a user's plugin would."""
from harness import bridge


def pytest_netconform_lab_ready(lab):
    ipr = lab.ipr("host")
    masters = {msg["index"] for msg in ipr.get_links() if msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "bridge"}
    for msg in ipr.get_links():
        if msg.get_attr("IFLA_MASTER") in masters:
            bridge.set_port(lab, "host", msg.get_attr("IFLA_IFNAME"), learning=False, flood=False)
    for node in lab.nodes:
        lab.run(node, ["ip", "addr", "flush", "scope", "global"])
