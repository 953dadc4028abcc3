"""Document 004's Flannel across two hosts: two VMs, VXLAN between their real kernels.

``python -m harness vm twohost [--box RELEASE] [-- <pytest args>]``: the driver's steps
(``harness.vm.driver``) for the two machines of the Vagrantfile named in ``twohost.json``
(flannel-node1, flannel-node2), one offline box, on a private libvirt network of their own
(192.168.1.0/24, no DHCP, no forwarding) inside the driver's libvirtd namespace:

1. prepare: the box (built or reused), libvirtd in its namespace, ``vagrant box add``;
2. up: ``vagrant up`` of both machines at once (Vagrant's libvirt provider starts them in parallel);
3. arrange: node1 gets Vagrant's insecure key (public knowledge, a throwaway VM) and ``PEER_FILE``
   naming node2's management address, so its suite can drive node2 over ssh (the management
   network, never the underlay it captures on);
4. test: pytest on node1, ``--no-sandbox`` (the node's own namespace is the lab: flannel.1 on its
   real eth1), suites/test_flannel_two_hosts.py by default;
5. results back (JUnit, Allure labelled with the kernel), destroy both, stop libvirtd.

Both VMs' qemu run in the one PID namespace libvirtd's reaper holds (``harness.vm.netns``): a
SIGKILLed driver takes both with it, as it takes one.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from harness.errors import VmError
from harness.evidence.cells import label_results
from harness.vm import driver
from harness.vm.flannel_node import PEER_FILE

SPEC_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "twohost.json")
PEER_KEY = "/root/.ssh/netconform-peer"
DEFAULT_ARGS = ["suites/test_flannel_two_hosts.py", "-v", "-rs"]


def spec() -> dict:
    with open(SPEC_FILE) as handle:
        return json.load(handle)


def nodes() -> dict[str, dict]:
    return spec()["nodes"]


def ssh_hosts(config: str) -> dict[str, dict[str, str]]:
    """``vagrant ssh-config``'s output: each Host's options (HostName, User, IdentityFile...)."""
    hosts: dict[str, dict[str, str]] = {}
    current = None
    for line in config.splitlines():
        words = line.split(None, 1)
        if len(words) != 2:
            continue
        if words[0] == "Host":
            current = hosts.setdefault(words[1].strip(), {})
        elif current is not None:
            current[words[0]] = words[1].strip().strip('"')
    return hosts


class _TwoHostSession(driver._Session):
    """The driver's session for the two machines: ``name`` is Vagrant's pattern for both."""

    def __init__(self, record, box_spec, project, keep, out):
        super().__init__(record, box_spec, project, keep, out)
        self.machines = list(nodes())
        self.name = "/^flannel-node[0-9]+$/"  # Vagrant takes a /regexp/ for several machines
        self.env["NETCONFORM_TWOHOST_BOX"] = box_spec["box"]
        self.node_ssh: dict[str, list[str]] = {}

    def up(self) -> None:
        print(f"netconform: vm twohost: vagrant up {' '.join(self.machines)} ({self.spec['box']}); log: {self.log}",
              file=self.out, flush=True)
        with self.timed("vagrant up"):
            driver._vagrant_step(self.machine.up, "vagrant up", self.log, vm_name=self.name, provider="libvirt")
        text = driver._vagrant_step(self.machine.ssh_config, "vagrant ssh-config", self.log, vm_name=self.name)
        config = os.path.join(self.state, "ssh_config")
        with open(config, "w") as handle:
            handle.write(text)
        hosts = ssh_hosts(text)
        missing = [name for name in self.machines if name not in hosts]
        if missing:
            raise VmError(f"vagrant ssh-config names no {', '.join(missing)}")
        for name in self.machines:
            self.node_ssh[name] = self.wrap(["ssh", "-F", config, "-o", "LogLevel=ERROR", name, "--"])
        first, second = self.machines
        self.ssh = self.node_ssh[first]  # the suite runs on node1; the driver's test and copy back use it
        with self.timed("arrange"):
            self._arrange(hosts[first], hosts[second], nodes()[first], nodes()[second])

    def _arrange(self, here: dict, there: dict, node: dict, peer: dict) -> None:
        """node1 learns how to reach node2 (management address, user, key) and which nodes they are."""
        peer_file = {"underlay": spec()["underlay"], "node": node,
                     "peer": dict(peer, host=there["HostName"], user=there.get("User", "vagrant"), key=PEER_KEY)}
        with open(there["IdentityFile"], "rb") as handle:
            key = handle.read()
        for path, content in ((PEER_KEY, key), (PEER_FILE, json.dumps(peer_file).encode())):
            done = subprocess.run([*self.ssh, f"sudo mkdir -p {os.path.dirname(path)} && "
                                   f"sudo install -m 600 /dev/stdin {path}"], input=content, capture_output=True)
            if done.returncode != 0:
                raise VmError(f"writing {path} on node1 failed: {done.stderr.decode(errors='replace').strip()}")

    def test(self, pytest_args: list[str]) -> None:
        super().test([*pytest_args, "--no-sandbox"])


def run(project: str, box: str = "bookworm", pytest_args: list[str] | None = None, results: str | None = None,
        keep: bool = False, out=None) -> driver.VmRun:
    """Both VMs up, the suite on node1, results back, both destroyed (unless ``keep``)."""
    box_spec = driver.box_spec(box)
    if not box_spec.get("offline"):
        raise VmError(f"vm twohost: box {box!r} is not an offline box (choose one of bullseye, bookworm, trixie, forky)")
    record = driver.run_session(_TwoHostSession, "twohost", box_spec, list(pytest_args or DEFAULT_ARGS), project,
                                results or os.path.join(project, "reports", "vm", "twohost"), keep, out)
    label_results(record.results, {"kernel": record.kernel, "release": box_spec.get("release", box), "vm": "twohost"})
    return record


def command(args) -> str:
    """``python -m harness vm twohost``: one line of times, pytest's exit as the process's."""
    import signal

    from harness import paths

    def terminated(signum, frame):  # a CI timeout: both VMs are still destroyed (finally)
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, terminated)
    rest = args.pytest_args
    pytest_args = rest[rest.index("--") + 1:] if "--" in rest else None
    try:
        record = run(paths.require_checkout("vm twohost"), args.box, pytest_args, results=args.results,
                     keep=args.keep_vm)
    except VmError as exc:
        print(f"netconform: {exc}", file=sys.stderr)
        raise SystemExit(driver.EXIT_VM_FAILED) from None
    times = ", ".join(f"{what} {seconds:g} s" for what, seconds in record.times.items())
    print(f"netconform: vm twohost (kernel {record.kernel}): pytest exit {record.exit_code}; {times}; results in "
          f"{record.results}; {'VMs destroyed' if record.destroyed else 'VMs kept'}", file=sys.stderr)
    if record.exit_code:
        raise SystemExit(record.exit_code)
    return ""
