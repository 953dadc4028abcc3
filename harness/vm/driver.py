"""Run the suites in a Vagrant VM: up, sync, pytest inside, results back, destroy.

Built on python-vagrant. The machines are the Vagrantfile's, one per box of
``boxes.json``. For an offline box (bullseye, bookworm alias debian12, trixie, forky) the
driver first builds or reuses it (``box.build``), adds it to a Vagrant home under the cache directory, and runs every
``vagrant`` command inside a libvirtd of its own in a private network namespace
(``netns``), so nothing reaches the machine's network. Other boxes use the machine's
own Vagrant, provider and network (a real hypervisor).

Every failure is one line (``VmError``): no vagrant, an unknown box, a provider or box
error (the last error line of Vagrant's log, which is kept), ssh failing. The VM is
destroyed whatever happened, unless ``keep``, and libvirtd's namespace goes with it.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from harness.errors import VmError

BOXES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "boxes.json")
REMOTE_RESULTS = "/var/tmp/netconform-results"
REMOTE_PROJECT = "/netconform"
TEST_TIMEOUT = int(os.environ.get("NETCONFORM_VM_TEST_TIMEOUT", "600"))  # per test; TCG is 25-65x slower
EXIT_VM_FAILED = 3  # pytest's own codes: 1 tests failed, 2 interrupted, 4 usage, 5 nothing collected
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RUBY_FRAME = re.compile(r"^/\S+:\d+:in `[^']*': ")  # "/usr/lib/ruby/...rb:7:in `create': <the message>"
ERROR_HINTS = ("Error", "error", "failed", "Failed", "could not", "Could not", "not found", "refused", "timed out")


def boxes() -> dict[str, dict]:
    with open(BOXES_FILE) as handle:
        return json.load(handle)


def box_spec(name: str) -> dict:
    known = boxes()
    if name not in known:
        raise VmError(f"unknown VM box {name!r} (known: {', '.join(known)}; see {os.path.relpath(BOXES_FILE)})")
    return known[name]


def last_error(log: str) -> str:
    """The line of Vagrant's log that says what went wrong (the last one that looks like it)."""
    try:
        with open(log, errors="replace") as handle:
            lines = [ANSI.sub("", line).strip() for line in handle]
    except OSError:
        return f"no log at {log}"
    lines = [line for line in lines if line and not line.startswith("from /") and "Progress:" not in line]
    for line in reversed(lines):
        if any(hint in line for hint in ERROR_HINTS):
            return RUBY_FRAME.sub("", line)[:400]
    return lines[-1][:400] if lines else "no output"


@dataclass
class VmRun:
    """What a run did, for the caller's report: times in seconds, where the results are."""
    name: str
    exit_code: int | None = None
    results: str = ""
    kernel: str = ""
    destroyed: bool = False
    times: dict[str, float] = field(default_factory=dict)


class _Timer:
    def __init__(self, run: VmRun, what: str):
        self.run, self.what = run, what

    def __enter__(self):
        self.start = time.monotonic()

    def __exit__(self, *exc):
        self.run.times[self.what] = round(time.monotonic() - self.start, 1)


def _vagrant(root: str, env: dict, log: str, wrap):
    import vagrant  # python-vagrant

    class NamespacedVagrant(vagrant.Vagrant):
        """python-vagrant whose every command runs through ``wrap`` (nsenter into libvirtd's namespace)."""

        def _make_vagrant_command(self, args):
            return wrap(super()._make_vagrant_command(args))

    log_cm = vagrant.make_file_cm(log)
    return NamespacedVagrant(root=root, env=env, out_cm=log_cm, err_cm=log_cm)


def _results_command(args: list[str]) -> str:
    inner = [f"{REMOTE_PROJECT}/.venv/bin/python", "-m", "pytest", f"--timeout={TEST_TIMEOUT}", *args,
             "-p", "no:cacheprovider", f"--alluredir={REMOTE_RESULTS}/allure-results", "--clean-alluredir",
             f"--junitxml={REMOTE_RESULTS}/junit.xml"]
    return (f"sudo rm -rf {REMOTE_RESULTS} && sudo mkdir -p {REMOTE_RESULTS} && uname -r | sudo tee "
            f"{REMOTE_RESULTS}/kernel >/dev/null && cd {REMOTE_PROJECT} && sudo {shlex.join(inner)}")


def run(name: str, pytest_args: list[str], project: str, results: str | None = None, keep: bool = False,
        out=None) -> VmRun:
    """Run pytest with ``pytest_args`` in VM ``name``; results land in ``results`` (reports/vm/NAME).

    The steps, each timed into the record: prepare (the offline box and its libvirtd), up (``vagrant
    up``, which also rsyncs the checkout to /netconform), test, fetch the results, destroy. The VM is
    destroyed and libvirtd stopped whatever happened, unless ``keep``.
    """
    return run_session(_Session, name, box_spec(name), pytest_args, project, results, keep, out)


def run_session(session_class, name: str, spec: dict, pytest_args: list[str], project: str, results: str | None = None,
                keep: bool = False, out=None) -> VmRun:
    """``run``'s steps with a session of ``session_class`` (``_Session``, or the two-host lab's)."""
    out = out or sys.stdout
    if shutil.which("vagrant") is None:
        raise VmError("vagrant is not installed (apt-get install vagrant vagrant-libvirt; or see vagrantup.com)")
    try:
        import vagrant  # noqa: F401
    except ImportError:
        raise VmError("python-vagrant is not installed (pip install python-vagrant)") from None
    record = VmRun(name, results=results or os.path.join(project, "reports", "vm", name))
    shutil.rmtree(record.results, ignore_errors=True)
    os.makedirs(record.results)
    session = session_class(record, spec, project, keep, out)
    failure = None
    try:
        session.prepare()
        session.up()
        session.test(pytest_args)
        session.fetch_results()
    except VmError as exc:
        failure = exc
    finally:
        destroy_failure = session.destroy()  # always, even after a failure: nothing is left running
        failure = failure or destroy_failure
        session.release()
    if failure is not None:
        raise VmError(f"vm {name}: {failure}")
    return record


class _Session:
    """One VM run's state between its steps: the Vagrant machine, libvirtd's namespace, the ssh command."""

    def __init__(self, record: VmRun, spec: dict, project: str, keep: bool, out):
        self.record, self.spec, self.project, self.keep, self.out = record, spec, project, keep, out
        self.name = record.name
        self.log = os.path.join(record.results, "vagrant.log")
        self.state = tempfile.mkdtemp(prefix=f"netconform-vm-{self.name}-")
        self.env = dict(os.environ, VAGRANT_DOTFILE_PATH=os.path.join(self.state, "dotvagrant"),
                        VAGRANT_CHECKPOINT_DISABLE="1")
        self.wrap = list  # how a vagrant or ssh command runs: as it is, or inside libvirtd's namespace
        self.namespace = None
        self.machine = None
        self.ssh: list[str] = []

    def timed(self, what: str) -> _Timer:
        return _Timer(self.record, what)

    def prepare(self) -> None:
        """The offline box: build (or reuse) it, start libvirtd in its namespace, add the box to Vagrant."""
        if not self.spec.get("offline"):
            self.machine = _vagrant(self.project, self.env, self.log, self.wrap)
            return
        from . import box
        from .netns import LibvirtNamespace
        spec = box.release(self.spec["release"])
        with self.timed("box build"):
            box_file = box.build(self.project, spec.name, log_dir=self.record.results)
        self.env.update(VAGRANT_HOME=os.path.join(box.CACHE, "vagrant.d"), VAGRANT_DEFAULT_PROVIDER="libvirt")
        with self.timed("libvirtd start"):
            self.namespace = LibvirtNamespace().start()
        namespace = self.namespace
        self.wrap = lambda argv: namespace.command(argv, cwd=self.project)  # noqa: E731
        self.machine = _vagrant(self.project, self.env, self.log, self.wrap)
        if box.added_key(self.env["VAGRANT_HOME"], spec) != box.box_key(self.project, spec):
            with self.timed("box add"):
                _vagrant_step(self.machine.box_add, "vagrant box add", self.log, spec.box, box_file, force=True)

    def up(self) -> None:
        """``vagrant up`` (its rsync synced folder puts the checkout at /netconform), then ssh's config."""
        print(f"netconform: vm {self.name}: vagrant up ({self.spec['box']}); log: {self.log}", file=self.out,
              flush=True)
        with self.timed("vagrant up"):
            _vagrant_step(self.machine.up, "vagrant up", self.log, vm_name=self.name,
                          provider="libvirt" if self.spec.get("offline") else None)
        config = os.path.join(self.state, "ssh_config")
        with open(config, "w") as handle:
            handle.write(_vagrant_step(self.machine.ssh_config, "vagrant ssh-config", self.log, vm_name=self.name))
        self.ssh = self.wrap(["ssh", "-F", config, "-o", "LogLevel=ERROR", self.name, "--"])

    def test(self, pytest_args: list[str]) -> None:
        print(f"netconform: vm {self.name}: pytest {shlex.join(pytest_args)}", file=self.out, flush=True)
        with self.timed("test run"):
            self.record.exit_code = subprocess.run([*self.ssh, _results_command(pytest_args)], stdout=self.out,
                                                   stderr=self.out, stdin=subprocess.DEVNULL).returncode
        if self.record.exit_code == 255:
            raise VmError(f"ssh to the VM failed (exit 255; see the output above and {self.log})")

    def fetch_results(self) -> None:
        with self.timed("copy back"):
            _copy_back(self.ssh, self.record.results)
        with open(os.path.join(self.record.results, "kernel")) as handle:
            self.record.kernel = handle.read().strip()
        _add_environment(self.record, self.spec)

    def destroy(self) -> VmError | None:
        """``vagrant destroy`` unless kept; its failure is returned (the caller reports it if nothing failed first)."""
        if self.machine is None or self.keep:
            return None
        with self.timed("destroy"):
            try:
                _vagrant_step(self.machine.destroy, "vagrant destroy", self.log, vm_name=self.name)
                self.record.destroyed = True
            except VmError as exc:
                return exc
        return None

    def release(self) -> None:
        """libvirtd's namespace stops (or, kept, how to reach the VM is printed); the Vagrant state goes."""
        if self.namespace is not None:
            if self.keep:
                pid = self.namespace.process.pid
                print(f"netconform: vm {self.name} kept; reach it with: nsenter --target={pid} "
                      f"--net --mount --wd={self.project} env VAGRANT_HOME={self.env['VAGRANT_HOME']} "
                      f"VAGRANT_DOTFILE_PATH={self.env['VAGRANT_DOTFILE_PATH']} vagrant ssh {self.name} (and there "
                      f"`vagrant destroy -f {self.name}` when done, then kill {pid})", file=self.out)
            else:
                self.namespace.stop()
        if not self.keep:
            shutil.rmtree(self.state, ignore_errors=True)


def _vagrant_step(call, what: str, log: str, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except subprocess.CalledProcessError as exc:
        raise VmError(f"{what} failed (exit {exc.returncode}): {last_error(log)} (log: {log})") from None
    except (OSError, RuntimeError) as exc:
        raise VmError(f"{what} failed: {exc}") from None


def _copy_back(ssh: list[str], results: str) -> None:
    """allure-results, junit.xml and the kernel's name, as a tar stream over ssh."""
    sender = subprocess.Popen([*ssh, f"sudo tar -C {REMOTE_RESULTS} -cf - ."], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    receiver = subprocess.run(["tar", "-x", "-C", results, "--no-same-owner"], stdin=sender.stdout,
                              capture_output=True, text=True)
    sender.stdout.close()
    error = sender.stderr.read().decode(errors="replace").strip()
    if sender.wait() != 0 or receiver.returncode != 0:
        raise VmError(f"copying the results back failed: {error or receiver.stderr.strip() or 'tar failed'}")


def _add_environment(record: VmRun, spec: dict) -> None:
    """environment.properties (written in the VM: its kernel) also says which VM and box."""
    path = os.path.join(record.results, "allure-results", "environment.properties")
    if os.path.isdir(os.path.dirname(path)):
        with open(path, "a") as handle:
            handle.write(f"vm={record.name}\nvm.box={spec['box']}\nvm.kernel={record.kernel}\n")
