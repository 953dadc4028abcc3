"""The suites in a VM (issue: VMs and a kernel matrix): one real VM job, and its one-line errors.

``test_the_vm_job_runs_the_kernel_gated_suites_and_leaves_the_machine_as_it_was`` is the
CI's VM job: build (or reuse) the offline box, ``vagrant up`` under qemu (TCG) with
libvirtd in a network namespace of its own, run the smoke subset in the VM, bring the
results back, destroy. The smoke subset holds tests this machine's kernel skips (802.1Q
VLAN on bridge ports and beside a macvlan, ipvlan, Calico's IP-in-IP): they must have run and
passed there. It fails, never
skips, when the VM cannot start, with the driver's one line. ``make check`` runs the
``vm`` tests on their own, after the others, so qemu's CPU load does not share the two
cores with timing-sensitive tests.
"""
import io
import os
import platform
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from pytest_netconform.vm import vm_arguments
from harness.kernel import sandbox
from harness.errors import VmError
from harness.evidence.matrix import matrix
from harness.vm.driver import last_error

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MATRIX_RESULTS = os.path.join(PROJECT, "reports", "vm-check")
# The CI's kernels besides this machine's: bookworm's 6.1 and forky's 7.2, each with its release's builds.
CI_KERNELS = {"bookworm": "6.1.", "forky": "7.2."}
# The kernel-gated suites, and the CNI datapath suite for the release's own ipvlan plugin build (ipvlan
# too is what this machine's kernel lacks): about 70 s of tests a cell under TCG.
SMOKE = ["suites/test_vlan.py", "suites/test_ipvlan.py", "suites/test_calico_ipip.py", "suites/cni/test_datapath.py",
         "suites/cni/test_datapath_del.py", "-k", "not test_datapath or ipvlan-l2", "-v", "-rs"]
# module -> tests that must pass in the VM (802.1Q, ipvlan, ipip: what this machine's kernel lacks)
KERNEL_GATED = {"suites.test_vlan": 5, "suites.test_ipvlan": 12, "suites.test_calico_ipip": 4}
CNI_GATED = "suites.cni.test_datapath"  # ipvlan-l2's: none may fail; those the config promises nothing for skip
VM_JOB_TIMEOUT = 15 * 60  # the budget the CI gives one VM cell, box build included


def harness_cli(*args, env=None, preexec_fn=None, timeout=120):
    """Run the CLI; past ``timeout`` it gets SIGTERM, so it still destroys its VM, and the test fails."""
    process = subprocess.Popen([sys.executable, "-m", "harness", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=PROJECT, stdin=subprocess.DEVNULL, env=env,
                               preexec_fn=preexec_fn)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()
        stdout, stderr = process.communicate(timeout=120)
        pytest.fail(f"python -m harness {' '.join(args)} took more than {timeout} s\n{stdout[-3000:]}{stderr[-2000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def vm_processes() -> list[str]:
    """qemu, libvirtd and dnsmasq processes anywhere on the machine (a destroyed VM leaves none; a
    zombie has exited and left its namespaces, only its parent has yet to reap it)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                head, tail = handle.read().rsplit(")", 1)  # "PID (COMM) STATE ..."
        except (OSError, ValueError):
            continue
        comm, state = head.split("(", 1)[1], tail.split()[0]
        if comm.startswith(("qemu-system", "libvirtd", "dnsmasq")) and state != "Z":
            found.append(f"{pid} {comm}")
    return found


def junit_outcomes(path: str) -> dict[str, str]:
    outcomes = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        status = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = status
    return outcomes


# -- the VM job --------------------------------------------------------------------------

@pytest.mark.vm
@pytest.mark.timeout(len(CI_KERNELS) * VM_JOB_TIMEOUT + 60)
def test_the_vm_job_runs_the_kernel_gated_suites_in_each_kernel_and_leaves_the_machine_as_it_was():
    from test_isolation import differences, snapshot  # the byte-for-byte root namespace comparison
    state = sandbox.info()
    assert os.geteuid() == 0 and state is not None and state.mode == "root", (
        "the VM job needs real root (debootstrap, libvirtd in a namespace of its own): run make check as root")
    env = dict(os.environ)
    env.pop(sandbox.OUTER_ENV, None)
    before = snapshot()
    done = harness_cli("matrix", "--boxes", *CI_KERNELS, "--results", MATRIX_RESULTS, "--", *SMOKE, env=env,
                       preexec_fn=sandbox.outside_preexec(), timeout=len(CI_KERNELS) * VM_JOB_TIMEOUT)
    after = snapshot()
    print(done.stdout[-6000:], done.stderr[-2000:], sep="\n")
    assert done.returncode == 0, f"the VM job failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
    assert after == before, differences(before, after)
    assert vm_processes() == [], "a VM (or libvirtd, or its dnsmasq) outlived the job"

    kernels = set()
    for box, version in CI_KERNELS.items():
        results = os.path.join(MATRIX_RESULTS, box)
        with open(os.path.join(results, "kernel")) as handle:  # uname -r, run in the VM
            kernel = handle.read().strip()
        assert kernel.startswith(version) and kernel != platform.release(), f"{box} ran kernel {kernel!r}"
        kernels.add(kernel)
        outcomes = junit_outcomes(os.path.join(results, "junit.xml"))
        for module, count in KERNEL_GATED.items():
            ran = {name: status for name, status in outcomes.items() if name.startswith(module + "::")}
            assert len(ran) == count and set(ran.values()) == {"passed"}, f"{module} in {box} ({kernel}): {ran}"
        cni = {name: status for name, status in outcomes.items() if name.startswith(CNI_GATED + "::")}
        assert cni and set(cni.values()) <= {"passed", "skipped"} and "passed" in cni.values(), (
            f"ipvlan-l2 with {box}'s plugins in {kernel}: {cni}")
        with open(os.path.join(results, "allure-results", "environment.properties")) as handle:
            environment = handle.read()
        assert f"kernel={kernel}" in environment and f"vm={box}" in environment, environment
        assert f"{box} (kernel {kernel}): pytest exit 0" in done.stdout
    # The merged view: every result labelled with the kernel it ran in, one row per kernel and area.
    table = matrix(os.path.join(MATRIX_RESULTS, "allure-results"), "kernel")
    assert set(table) == kernels and all(row["passed"] > sum(KERNEL_GATED.values()) for row in table.values()), table


# -- one line for each failure -------------------------------------------------------------

def test_an_unknown_vm_box_is_one_line_naming_it():
    done = harness_cli("vm", "run", "no-such-box", "--", "suites/test_vlan.py")
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "'no-such-box'" in done.stderr
    assert "debian12" in done.stderr  # and says which boxes there are
    via_pytest = subprocess.run([sys.executable, "-m", "pytest", "suites/test_vlan.py", "--vm", "no-such-box"],
                                capture_output=True, text=True, cwd=PROJECT, timeout=120)
    lines = [line for line in (via_pytest.stdout + via_pytest.stderr).splitlines() if line.strip()]
    assert via_pytest.returncode == 3 and len(lines) == 1 and "'no-such-box'" in lines[0], lines


def test_no_vagrant_is_one_line_saying_what_to_install():
    env = dict(os.environ, PATH="/nonexistent")
    done = harness_cli("vm", "run", "debian12", "--", "suites/test_vlan.py", env=env)
    assert done.returncode == 3 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "vagrant is not installed" in done.stderr and "apt-get install vagrant" in done.stderr


def test_the_runs_own_options_may_follow_the_box_name():
    # Before or after NAME, --keep-vm and --results are the run's; after "--" everything is pytest's.
    env = dict(os.environ, PATH="/nonexistent")  # stops right after parsing, with the missing vagrant
    for args in (["--keep-vm", "debian12"], ["debian12", "--keep-vm", "--results", "/tmp/x"]):
        done = harness_cli("vm", "run", *args, "--", "suites/", "-k", "vlan", env=env)
        assert done.returncode == 3 and "vagrant is not installed" in done.stderr, done.stderr
    wrong = harness_cli("vm", "run", "debian12", "--no-such-option", "--", "suites/", env=env)
    assert wrong.returncode == 2 and "--no-such-option" in wrong.stderr


def test_vagrants_error_line_is_found_in_its_log(tmp_path):
    log = tmp_path / "vagrant.log"
    log.write_text("Bringing machine 'debian12' up with 'libvirt' provider...\n\x1b[0m==> debian12: Creating...\n"
                   "Error while connecting to Libvirt: Error making a connection to libvirt URI qemu:///system\n"
                   "\tfrom /usr/share/rubygems-integration/all/gems/vagrant-2.3.4/lib/vagrant/x.rb:1\n")
    assert last_error(str(log)).startswith("Error while connecting to Libvirt")
    log.write_text("/usr/lib/ruby/vendor_ruby/fog/libvirt/requests/compute/vm_action.rb:7:in `create': Call to "
                   "virDomainCreateWithFlags failed: cannot set up guest memory (Libvirt::Error)\n")
    assert last_error(str(log)).startswith("Call to virDomainCreateWithFlags failed: cannot set up guest memory")
    assert last_error(str(tmp_path / "missing.log")).startswith("no log at")


def test_the_vm_gets_the_sessions_arguments_without_this_machines_paths():
    args = ["suites/", "-k", "vlan", "--vm", "debian12", "--keep-vm", "--alluredir", "reports/a", "--clean-alluredir",
            "--junitxml=reports/j.xml", "--basetemp", "/tmp/x", "-n", "2"]
    assert vm_arguments(args) == ["suites/", "-k", "vlan", "-n", "2"]


@pytest.mark.vm
@pytest.mark.timeout(VM_JOB_TIMEOUT + 60)
def test_a_vm_that_cannot_start_fails_with_one_line_and_leaves_nothing_behind(tmp_path):
    # More memory than any machine has: the provider refuses at start; the run must say so in one
    # line, destroy what Vagrant made and stop libvirtd (the box is the one the VM job built).
    env = dict(os.environ, NETCONFORM_VM_MEMORY=str(64 * 2**20))  # MiB: 64 TiB
    env.pop(sandbox.OUTER_ENV, None)
    done = harness_cli("vm", "run", "debian12", "--results", str(tmp_path / "results"), "--",
                       "suites/test_vlan.py", env=env, preexec_fn=sandbox.outside_preexec(), timeout=VM_JOB_TIMEOUT)
    lines = [line for line in done.stderr.splitlines() if line.startswith("netconform:")]
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(lines) == 1 and "vagrant up failed" in lines[0] and "vagrant.log" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert vm_processes() == [], "the VM (or libvirtd, or its dnsmasq) outlived the failed start"


# -- the driver's steps, with a stand-in for Vagrant and ssh (no VM) -------------------------

class FakeMachine:
    """python-vagrant's Vagrant as the driver calls it; ``fails`` names the step that fails (exit 1)."""

    def __init__(self, calls, fails=()):
        self.calls, self.fails = calls, fails

    def _step(self, what, result=None):
        self.calls.append(what)
        if what in self.fails:
            raise subprocess.CalledProcessError(1, ["vagrant", what])
        return result

    def up(self, vm_name, provider):
        return self._step("up")

    def ssh_config(self, vm_name):
        return self._step("ssh_config", f"Host {vm_name}\n")

    def destroy(self, vm_name):
        return self._step("destroy")


@pytest.fixture
def fake_vagrant(tmp_path, monkeypatch):
    """The driver with Vagrant, ssh and the copy back stood in for: returns (calls, set the failing steps)."""
    from harness.vm import driver
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "vagrant").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "vagrant").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(driver, "box_spec", lambda name: {"box": "fake/box"})  # not offline: no box, no libvirtd
    calls, fails = [], set()
    monkeypatch.setattr(driver, "_vagrant", lambda root, env, log, wrap: FakeMachine(calls, fails))

    def ssh_pytest(argv, **kwargs):
        calls.append("pytest")
        return subprocess.CompletedProcess(argv, 255 if "pytest" in fails else 1)

    def copy_back(ssh, results):
        calls.append("copy back")
        with open(os.path.join(results, "kernel"), "w") as handle:
            handle.write("6.1.0-fake\n")

    monkeypatch.setattr(driver.subprocess, "run", ssh_pytest)
    monkeypatch.setattr(driver, "_copy_back", copy_back)
    return calls, fails


def run_fake(tmp_path, keep=False):
    from harness.vm import driver
    return driver.run("fake", ["suites/test_vlan.py"], str(tmp_path), results=str(tmp_path / "results"), keep=keep,
                      out=io.StringIO())


def test_the_driver_runs_its_steps_in_order_and_times_each(fake_vagrant, tmp_path):
    calls, _ = fake_vagrant
    record = run_fake(tmp_path)
    assert calls == ["up", "ssh_config", "pytest", "copy back", "destroy"]
    assert list(record.times) == ["vagrant up", "test run", "copy back", "destroy"]
    assert (record.exit_code, record.kernel, record.destroyed) == (1, "6.1.0-fake", True)


@pytest.mark.parametrize("failing,message", [
    pytest.param("up", "vm fake: vagrant up failed (exit 1): ", id="vagrant-up"),
    pytest.param("pytest", "vm fake: ssh to the VM failed (exit 255; ", id="ssh-to-run-pytest"),
])
def test_a_failed_step_is_one_line_and_the_vm_is_still_destroyed(fake_vagrant, tmp_path, failing, message):
    calls, fails = fake_vagrant
    fails.update({failing, "destroy"})  # destroy fails too: the first failure is the one reported
    with pytest.raises(VmError) as raised:
        run_fake(tmp_path)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value), raised.value
    assert calls[-1] == "destroy" and "copy back" not in calls


def test_a_kept_vm_is_not_destroyed(fake_vagrant, tmp_path):
    calls, _ = fake_vagrant
    record = run_fake(tmp_path, keep=True)
    assert "destroy" not in calls and not record.destroyed and "destroy" not in record.times
