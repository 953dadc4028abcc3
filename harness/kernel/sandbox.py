"""The sandbox: a private network namespace and a private mount namespace.

The process (and, under pytest-xdist, each worker on its own) moves into fresh
network and mount namespaces, with a private tmpfs on /run so that /run/netns and
/run/xtables.lock are its own. Unprivileged users first enter a user namespace
mapping them to root. The machine's root namespaces are never touched, and when
the process exits the kernel removes everything it made.
"""
from __future__ import annotations

import contextlib
import os
import threading
import weakref
from dataclasses import dataclass

from harness.kernel import nsutil
from harness.errors import SandboxError


@dataclass(frozen=True)
class SandboxInfo:
    mode: str  # "root", "userns" or "none"
    netns_inode: int
    outer_netns_inode: int


_state: SandboxInfo | None = None
# The machine's own network and mount namespaces, kept open so a self-test can look at
# (never change) the machine from inside the sandbox. Under pytest-xdist the controller
# publishes them to its workers as /proc/PID/fd/N paths in this variable.
OUTER_ENV = "NETCONFORM_MACHINE_NS"
_outer: tuple[int, int] | None = None


def _remember_machine_namespaces() -> None:
    global _outer
    inherited = os.environ.get(OUTER_ENV)
    if inherited:
        try:
            net_path, mnt_path = inherited.split(",")
            _outer = (os.open(net_path, os.O_RDONLY | os.O_CLOEXEC), os.open(mnt_path, os.O_RDONLY | os.O_CLOEXEC))
            return
        except (OSError, ValueError):
            pass  # the publisher is gone: we are the outermost sandbox then
    net = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    mnt = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    _outer = (net, mnt)
    os.environ[OUTER_ENV] = f"/proc/{os.getpid()}/fd/{net},/proc/{os.getpid()}/fd/{mnt}"


def machine_namespaces() -> tuple[int, int]:
    """(network, mount) namespace fds of the machine this run started from."""
    if _outer is None:
        raise SandboxError("the sandbox was not entered, so there is no outside to look at")
    return _outer


def outside_preexec(uid: int | None = None, gid: int | None = None, cwd: str | None = None):
    """A ``preexec_fn`` moving a child process back to the machine's namespaces.

    Only root can do it (the machine's namespaces belong to the initial user
    namespace); optionally it then drops to ``uid``/``gid``. Entering a mount
    namespace resets the working directory, so it is set again (``cwd``, default
    the caller's).
    """
    net, mnt = machine_namespaces()
    cwd = cwd or os.getcwd()

    def preexec():
        nsutil.setns(mnt, nsutil.CLONE_NEWNS)
        nsutil.setns(net, nsutil.CLONE_NEWNET)
        os.chdir(cwd)
        if gid is not None:
            os.setgroups([])
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
    return preexec


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _enter_user_namespace() -> None:
    uid, gid = os.getuid(), os.getgid()
    if threading.active_count() > 1:
        raise SandboxError(
            "cannot enter a user namespace: the process already has threads "
            "(unshare(CLONE_NEWUSER) refuses threaded processes); start the sandbox earlier"
        )
    try:
        nsutil.unshare(nsutil.CLONE_NEWUSER)
    except OSError as exc:
        raise SandboxError(
            f"user namespaces are not allowed here ({exc.strerror}) and you are not root: "
            "run as root, or allow them (sysctl kernel.unprivileged_userns_clone=1 / "
            "user.max_user_namespaces>0, or the AppArmor userns restriction off), "
            "or pass --no-sandbox inside a throwaway VM"
        ) from None
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"0 {uid} 1")
    _write("/proc/self/gid_map", f"0 {gid} 1")


def _private_run() -> None:
    # Without MS_PRIVATE on / the tmpfs below would propagate back to the machine.
    nsutil.mount("none", "/", None, nsutil.MS_REC | nsutil.MS_PRIVATE)
    nsutil.mount("netconform-run", "/run", "tmpfs", 0, "mode=0755")
    os.mkdir(nsutil.NETNS_RUN_DIR, 0o755)
    nsutil.mount("netconform-netns", nsutil.NETNS_RUN_DIR, "tmpfs", 0, "mode=0755")
    # Shared (within the sandbox), as `ip netns add` makes it: a plugin's mount namespace (PluginState)
    # is its slave, and sees the namespaces named after it was made.
    nsutil.mount("none", nsutil.NETNS_RUN_DIR, None, nsutil.MS_SHARED)
    _private_var_lib()


VAR_LIB = "/var/lib"
PLUGIN_STATE = "/var/lib/cni"  # CNI plugins' files: host-local's reservations, flannel's, the runtime's cache


def _private_var_lib() -> None:
    """A private /var/lib/cni: plugins keep state there (host-local, flannel) and must find it writable,
    and private, as /run is. A tmpfs on it; where the machine has no /var/lib/cni to mount on, /var/lib
    first becomes an overlay whose writes land in the sandbox's /run, so that the directory can be made.
    (Not an overlay every time: sandboxes nest, in tests, and overlays stack only two deep.)"""
    try:
        if not os.path.isdir(PLUGIN_STATE):
            upper, work = "/run/netconform-var-lib/upper", "/run/netconform-var-lib/work"
            os.makedirs(upper, 0o755)
            os.makedirs(work, 0o755)
            nsutil.mount("netconform-var-lib", VAR_LIB, "overlay", 0,
                         f"lowerdir={VAR_LIB},upperdir={upper},workdir={work}")
            os.makedirs(PLUGIN_STATE, 0o755)
        nsutil.mount("netconform-cni-state", PLUGIN_STATE, "tmpfs", 0, "mode=0755")
    except OSError as exc:
        raise SandboxError(f"cannot make a private {PLUGIN_STATE} (for the plugins' state): {exc}") from None


class PluginState:
    """A mount namespace in which /var/lib/cni is ``directory``: each runtime's plugins (and what they
    delegate to) keep their files apart, where the test's checks read them.

    Made once, then entered by the calling thread around each exec (as a lab's network namespace is),
    so that the plugin is still spawned with vfork: a ``preexec_fn`` would force a full fork of the
    test process and cost a CNI ADD about a third more. A thread may change its mount namespace only
    with a root and working directory of its own (CLONE_FS); entering one resets the working
    directory, so it is put back. Without a /var/lib/cni to cover (--no-sandbox), plugins use the
    real one and nothing is entered.
    """

    def __init__(self, directory: str):
        self.directory = directory
        self.fd: int | None = None
        self._made = threading.Lock()  # parallel execs (CNI allows them) make it once

    @contextlib.contextmanager
    def entered(self):
        if not os.path.isdir(PLUGIN_STATE):
            yield
            return
        nsutil.unshare(nsutil.CLONE_FS)  # this thread's root and cwd, no longer shared with the others
        home = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        cwd = os.open(".", os.O_PATH | os.O_CLOEXEC)
        try:
            with self._made:
                if self.fd is None:
                    nsutil.unshare(nsutil.CLONE_NEWNS)
                    # A slave: namespaces named later in /run/netns still reach it; its bind does not leave.
                    nsutil.mount("none", "/", None, nsutil.MS_REC | nsutil.MS_SLAVE)
                    nsutil.mount(self.directory, PLUGIN_STATE, None, nsutil.MS_BIND)
                    self.fd = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
                    self._finalizer = weakref.finalize(self, PluginState._close_fd, self.fd)
                else:
                    nsutil.setns(self.fd, nsutil.CLONE_NEWNS)
            os.fchdir(cwd)
            yield
        finally:
            nsutil.setns(home, nsutil.CLONE_NEWNS)
            os.fchdir(cwd)
            os.close(home)
            os.close(cwd)

    @staticmethod
    def _close_fd(fd: int) -> None:
        try:
            os.close(fd)
        except OSError:
            pass  # closed already (close())

    def close(self) -> None:
        # Through the finalizer, which then never runs again: closing the number twice (here, then at
        # collection) would close whatever file reused it meanwhile (another runtime's namespace).
        if self.fd is not None:
            self._finalizer()
            self.fd = None


def enter(*, allow_userns: bool = True) -> SandboxInfo:
    """Move the calling thread (and all it spawns) into a fresh sandbox.

    Safe to call again in a child process (a pytest-xdist worker) that inherited a
    sandbox: it unshares once more, so workers never share a namespace.
    """
    global _state
    _remember_machine_namespaces()
    outer = nsutil.current_netns_fd()
    try:
        outer_inode = nsutil.netns_inode(outer)
    finally:
        os.close(outer)
    mode = "root"
    if os.geteuid() != 0:
        if not allow_userns:
            raise SandboxError("not root and user namespaces disabled by the caller")
        _enter_user_namespace()
        mode = "userns"
    try:
        nsutil.unshare(nsutil.CLONE_NEWNET | nsutil.CLONE_NEWNS)
        _private_run()
    except OSError as exc:
        raise SandboxError(f"cannot make the private network/mount namespaces: {exc}") from None
    inner = nsutil.current_netns_fd()
    try:
        # The sandbox itself sends nothing: loopback only; IPv6 on, as in the labs, without its noise.
        from harness.kernel.constants import IPV6_QUIET_SYSCTLS
        from harness.kernel.netops import set_link_up_by_name
        for key, value in IPV6_QUIET_SYSCTLS.items():
            nsutil.write_sysctl(key, value)
        set_link_up_by_name("lo")
        _state = SandboxInfo(mode=mode, netns_inode=nsutil.netns_inode(inner), outer_netns_inode=outer_inode)
    finally:
        os.close(inner)
    return _state


def mark_unsandboxed() -> SandboxInfo:
    global _state
    fd = nsutil.current_netns_fd()
    try:
        inode = nsutil.netns_inode(fd)
    finally:
        os.close(fd)
    _state = SandboxInfo(mode="none", netns_inode=inode, outer_netns_inode=inode)
    return _state


def info() -> SandboxInfo | None:
    return _state


class RunFiles:
    """What is under the sandbox's /run when made; ``remove_new()`` removes what came since: the files
    plugins keep there (tuning's /run/cni/tuning, a host-local dataDir such as kindnet's
    /run/cni-ipam-state), as a DEL would have. Never /run/netns (the labs' names, released with
    them) nor iptables' lock."""

    KEPT = ("netns", "xtables.lock")

    def __init__(self, root: str = "/run"):
        self.root = root
        self.before = self._paths()

    def _paths(self) -> set[str]:
        found = set()
        for directory, dirs, files in os.walk(self.root):
            if directory == self.root:
                dirs[:] = [d for d in dirs if d not in self.KEPT]
                files = [f for f in files if f not in self.KEPT]
            found.update(os.path.join(directory, name) for name in dirs + files)
        return found

    def remove_new(self) -> list[str]:
        """Remove what is new, deepest first; returns what was removed."""
        removed = []
        for path in sorted(self._paths() - self.before, key=lambda p: p.count("/"), reverse=True):
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    os.rmdir(path)
                else:
                    os.unlink(path)
                removed.append(path)
            except OSError:
                pass  # a mount point or a busy file: left for the sandbox's end
        return removed


def private_files() -> bool:
    """Whether this process runs in a sandbox whose /run and /var/lib/cni are its own (not --no-sandbox)."""
    return _state is not None and _state.mode != "none"
