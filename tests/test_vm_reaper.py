"""Nothing outlives a SIGKILLed VM driver (issue 14, robustness): not libvirtd, not what it
daemonized (qemu; here dnsmasq, which it daemonizes the same way for the network Vagrant defines),
not the commands run in its namespace (Vagrant, ssh; here a stand-in), and so not the namespace.

No VM boots: a driver process starts harness.vm.netns's libvirtd, has it start a network (a bridge
and dnsmasq, in the namespace only) and a long command there, says their pids and is SIGKILLed. Its
negative twin is the same driver without the ties (no PID namespace, no death signals): then they
outlive it, which is what the ties are for.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from harness.kernel.deadline import Deadline

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GONE_DEADLINE = 15.0  # the kernel kills a PID namespace and runs death signals at once; this is slack
START_DEADLINE = 90.0
DRIVER = textwrap.dedent("""
    import json, os, signal, subprocess, sys
    from harness.kernel import nsutil
    from harness.vm import netns
    if sys.argv[1] == "untied":
        netns.PID_NAMESPACE, netns.DIE_WITH_DRIVER = [], []
        nsutil.die_with_parent = lambda parent: None
    ns = netns.LibvirtNamespace().start()
    subprocess.Popen(ns.command(["sleep", "3600"], cwd="/"))  # stands in for Vagrant's or ssh's command
    net = os.path.join(ns.state, "net.xml")
    with open(net, "w") as handle:
        handle.write("<network><name>dev-net</name><bridge name='dev-br0'/><ip address='192.168.121.1' "
                     "netmask='255.255.255.0'><dhcp><range start='192.168.121.2' end='192.168.121.9'/></dhcp>"
                     "</ip></network>")
    done = subprocess.run(ns.command(["virsh", "-c", "qemu:///system", "net-create", net], cwd="/"),
                          capture_output=True, text=True)
    members = {pid: open(f"/proc/{pid}/comm").read().strip() for pid in ns.members()}
    print(json.dumps({"members": members, "state": ns.state, "virsh": done.stderr.strip()}), flush=True)
    signal.pause()
""")


def start_driver(mode: str) -> tuple[subprocess.Popen, dict]:
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, mode], stdout=subprocess.PIPE, text=True, cwd=PROJECT)
    deadline = Deadline(START_DEADLINE)
    try:
        while not deadline.passed and driver.poll() is None:
            if deadline.wait([driver.stdout], at_most=0.5)[0]:
                return driver, json.loads(driver.stdout.readline())
    finally:
        if driver.poll() is None and deadline.passed:
            driver.kill()
    driver.kill()
    pytest.fail(f"the driver said nothing within {START_DEADLINE:g} s (exit {driver.poll()})")


def alive(pids) -> list[int]:
    found = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(pid)
        except OSError:
            continue
    return found


def survivors_after_sigkill(mode: str) -> tuple[dict, list[int]]:
    for tool in ("libvirtd", "virsh", "dnsmasq"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            pytest.skip(f"{tool} is not installed (make vm-packages)")
    driver, said = start_driver(mode)
    members = {int(pid): comm for pid, comm in said["members"].items()}
    try:
        assert {"libvirtd", "dnsmasq", "sleep"} <= set(members.values()), said
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        wait_gone(members, Deadline(GONE_DEADLINE))
        return members, alive(members)
    finally:
        for pid in alive(members):  # the untied twin's leftovers, or a failure's
            os.kill(pid, signal.SIGKILL)
        wait_gone(members, Deadline(GONE_DEADLINE))
        shutil.rmtree(said["state"], ignore_errors=True)


def wait_gone(pids, deadline: Deadline) -> None:
    """Until each of ``pids`` has exited, or the deadline."""
    pidfds = []
    for pid in alive(pids):
        try:
            pidfds.append(os.pidfd_open(pid))
        except ProcessLookupError:
            continue
    for fd in pidfds:  # readable once its process has exited
        deadline.wait([fd])
        os.close(fd)


def test_libvirtd_what_it_daemonized_and_commands_in_its_namespace_die_with_a_sigkilled_driver():
    members, left = survivors_after_sigkill("tied")
    assert left == [], f"outlived the driver by {GONE_DEADLINE:g} s: {[(pid, members[pid]) for pid in left]}"


def test_without_the_ties_they_outlive_a_sigkilled_driver():
    members, left = survivors_after_sigkill("untied")
    assert {"libvirtd", "dnsmasq", "sleep"} <= {members[pid] for pid in left}, members
