"""libvirtd in a network and mount namespace of its own, so nothing it makes reaches the machine.

libvirt's management network for Vagrant is a bridge with dnsmasq and iptables rules,
and each VM adds a tap device: all of it lands in the namespace libvirtd runs in. This
module starts libvirtd (no virtlogd: qemu's console goes to a file) in a fresh network
and mount namespace, with private tmpfs over /run, /var/lib/libvirt, /var/log/libvirt
and /var/cache/libvirt, its own configuration over /etc/libvirt, and a fresh /sys (so
it sees its own interfaces only). Vagrant is then run in the same namespaces with
``nsenter``. ``stop()`` kills every process left in the namespace (qemu outlives
libvirtd), and with the last of them the namespace, its bridge and its rules are gone.

Nothing outlives the driver, even SIGKILLed (when no ``finally`` runs): libvirtd runs under a
reaper, PID 1 of a PID namespace of its own (``unshare --pid --fork --kill-child``), so qemu and
dnsmasq, which it daemonizes, are in it too and the kernel kills them all when libvirtd dies; and ``unshare``, like
every ``nsenter`` this module hands out (Vagrant, ssh), dies with the driver (PR_SET_PDEATHSIG,
``setpriv --pdeathsig``). With the last of them the network namespace goes.

Debian's libvirt is built to run qemu as ``libvirt-qemu`` and refuses to start when that
user does not exist; ``libvirt-daemon-system`` would add it to the machine. Here the
namespace gets copies of /etc/passwd and /etc/group that name it, and qemu runs as root.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

from harness.kernel import nsutil
from harness.kernel.deadline import Deadline
from harness.errors import VmError

MS_NOSUID, MS_NODEV = 2, 4
PRIVATE_TMPFS = ("/run", "/var/lib/libvirt", "/var/log/libvirt", "/var/cache/libvirt")
START_DEADLINE = 60.0
STOP_DEADLINE = 30.0
# PID 1 of libvirtd's PID namespace: it runs libvirtd, reaps every process the namespace orphans and
# exits with libvirtd. libvirtd daemonizes qemu (a double fork), so qemu's parent becomes PID 1; were
# libvirtd PID 1, nobody would reap qemu, and libvirtd, which waits until a VM's pid is gone, would
# wait out its timeout at each destroy (measured: vagrant destroy 82 s instead of a few).
REAPER = """
import os, signal, sys
child = os.fork()
if child == 0:
    os.execv(sys.argv[1], sys.argv[1:])
for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(number, lambda number, frame: os.kill(child, number))
while True:
    pid, status = os.wait()
    if pid == child:
        sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""
# The reaper (and so libvirtd) as PID 1 of a PID namespace (its /proc mounted there): what libvirtd
# starts dies with it, and it dies with unshare, which dies with the driver.
PID_NAMESPACE = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL", sys.executable, "-c", REAPER]
# Every command run in the namespace dies with the driver (its pdeathsig survives nsenter's exec).
DIE_WITH_DRIVER = ["setpriv", "--pdeathsig", "KILL"]
LIBVIRTD_CONF = """\
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:{state}/libvirtd.log"
"""
QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
namespaces = []
cgroup_controllers = []
"""
QEMU_ACCOUNTS = {"passwd": "libvirt-qemu:x:64055:64055:libvirt qemu (netconform namespace):/nonexistent:"
                           "/usr/sbin/nologin\n",
                 "group": "libvirt-qemu:x:64055:\n"}


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _accounts(state: str) -> dict[str, str]:
    """Copies of /etc/passwd and /etc/group naming libvirt-qemu, for the namespace only."""
    copies = {}
    for name, line in QEMU_ACCOUNTS.items():
        with open(f"/etc/{name}") as handle:
            text = handle.read()
        if any(entry.startswith("libvirt-qemu:") for entry in text.splitlines()):
            continue
        copies[name] = os.path.join(state, name)
        _write(copies[name], text + ("" if text.endswith("\n") else "\n") + line)
    return copies


def _enter_private_namespaces(state: str, accounts: dict[str, str]):
    """The libvirtd child's preexec: its own netns and mount namespace, private dirs, then exec."""
    driver = os.getpid()

    def preexec():
        nsutil.die_with_parent(driver)
        os.setsid()
        nsutil.unshare(nsutil.CLONE_NEWNET | nsutil.CLONE_NEWNS)
        nsutil.mount("none", "/", None, nsutil.MS_REC | nsutil.MS_PRIVATE)  # nothing leaks back
        for target in PRIVATE_TMPFS:
            os.makedirs(target, exist_ok=True)
            nsutil.mount("netconform-libvirt", target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        nsutil.mount("sysfs", "/sys", "sysfs", 0)
        nsutil.mount(os.path.join(state, "etc"), "/etc/libvirt", None, nsutil.MS_BIND)
        for name, copy in accounts.items():
            nsutil.mount(copy, f"/etc/{name}", None, nsutil.MS_BIND)
    return preexec


class LibvirtNamespace:
    """A running libvirtd in namespaces of its own; ``command(argv)`` runs argv there. ``process`` is
    ``unshare``, in the network and mount namespaces libvirtd's own PID namespace hangs under."""

    def __init__(self, state: str | None = None):
        self.state = state or tempfile.mkdtemp(prefix="netconform-libvirt-")
        self.process: subprocess.Popen | None = None
        self.netns_inode: int | None = None

    @property
    def log(self) -> str:
        return os.path.join(self.state, "libvirtd.log")

    def start(self, deadline: float = START_DEADLINE) -> "LibvirtNamespace":
        libvirtd = shutil.which("libvirtd") or "/usr/sbin/libvirtd"
        if not os.path.exists(libvirtd):
            raise VmError("libvirtd is not installed (apt-get install libvirt-daemon libvirt-daemon-driver-qemu)")
        for tool in ("unshare", "setpriv", "nsenter"):
            if shutil.which(tool) is None:
                raise VmError(f"{tool} is not installed (util-linux)")
        os.makedirs(os.path.join(self.state, "etc"), exist_ok=True)
        _write(os.path.join(self.state, "etc", "libvirtd.conf"), LIBVIRTD_CONF.format(state=self.state))
        _write(os.path.join(self.state, "etc", "qemu.conf"), QEMU_CONF)
        notify_path = os.path.join(self.state, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        notify.bind(notify_path)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "NOTIFY_SOCKET": notify_path}
        try:
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen([*PID_NAMESPACE, libvirtd], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                env=env, cwd="/",
                                                preexec_fn=_enter_private_namespaces(self.state,
                                                                                     _accounts(self.state)))
            self.netns_inode = os.stat(f"/proc/{self.process.pid}/ns/net").st_ino
            self._wait_ready(notify, Deadline(deadline))
            # qemu and ssh port forwards bind 127.0.0.1: the namespace's own loopback.
            subprocess.run(self.command(["ip", "link", "set", "dev", "lo", "up"], cwd="/"), check=True,
                           capture_output=True)
        except BaseException:
            self.stop()
            raise
        finally:
            notify.close()
        return self

    def _wait_ready(self, notify: socket.socket, deadline: Deadline) -> None:
        """libvirtd says READY=1 on $NOTIFY_SOCKET (the systemd protocol) once it serves."""
        while True:
            if self.process.poll() is not None:
                raise VmError(f"libvirtd exited with {self.process.returncode} at start: {self.last_error()}")
            if deadline.passed:
                raise VmError(f"libvirtd did not say it was ready within {deadline.allowed:g} s (log: {self.log})")
            # At most half a second at a time: libvirtd exiting says nothing on the socket.
            if deadline.wait([notify], at_most=0.5)[0] and b"READY=1" in notify.recv(4096):
                return

    def last_error(self) -> str:
        try:
            with open(self.log, errors="replace") as handle:
                errors = [line.strip() for line in handle if " error : " in line]
        except OSError:
            return f"no log at {self.log}"
        return errors[-1].split(" error : ", 1)[1] if errors else f"see {self.log}"

    def command(self, argv: list[str], cwd: str | None = None) -> list[str]:
        """``argv`` as it runs inside libvirtd's network and mount namespaces (entering a
        mount namespace moves to its root: ``cwd``, default the caller's, is set again)."""
        if self.process is None:
            raise VmError("libvirtd's namespace is not running")
        return [*DIE_WITH_DRIVER, "nsenter", f"--target={self.process.pid}", "--net", "--mount", f"--wd={cwd or os.getcwd()}", "--",
                *argv]

    def members(self) -> list[int]:
        """Every process in the namespace (libvirtd, qemu, dnsmasq...)."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.stat(f"/proc/{entry}/ns/net").st_ino == self.netns_inode:
                        pids.append(int(entry))
                except OSError:
                    continue
        return pids

    def stop(self, keep_state: bool = False) -> None:
        """Kill libvirtd and everything left in its namespace, and wait until they have exited:
        with the last of them the namespace, its bridge, taps and rules are gone."""
        own = os.stat("/proc/thread-self/ns/net").st_ino
        if self.process is not None and self.netns_inode not in (None, own):  # never the caller's namespace
            pidfds = []
            for pid in self.members():
                try:
                    pidfds.append(os.pidfd_open(pid))
                    signal.pidfd_send_signal(pidfds[-1], signal.SIGKILL)
                except ProcessLookupError:
                    continue
            deadline = Deadline(STOP_DEADLINE)
            for fd in pidfds:  # a pidfd becomes readable when its process has exited
                deadline.wait([fd])
                os.close(fd)
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
        self.process = None
        if not keep_state:
            shutil.rmtree(self.state, ignore_errors=True)
