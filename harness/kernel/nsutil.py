"""Namespaces by syscall: unshare, setns and the mounts that name a network namespace.

Everything here works on the *calling thread*. A thread switched into a network
namespace opens sockets there (netlink, packet, inet) and keeps them bound to it
after switching back; a child process forked while switched inherits it. That is
how the harness talks to many namespaces from one process without forking a
helper per operation (pyroute2 0.9's ``IPRoute(netns=...)`` and ``netns.create``
each fork one).
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os

CLONE_FS = 0x00000200
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MNT_DETACH = 2

NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


PR_SET_PDEATHSIG = 1
SIGKILL = 9


def die_with_parent(parent: int) -> None:
    """In a child between fork and exec: be SIGKILLed when the thread that forked it exits, even by
    SIGKILL (prctl PR_SET_PDEATHSIG, kept across exec), and at once if ``parent`` has already gone."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:
        os.kill(os.getpid(), SIGKILL)


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def umount(target: str) -> None:
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def current_netns_fd() -> int:
    """A new fd for the calling thread's network namespace (caller closes it)."""
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def netns_inode(fd: int) -> int:
    return os.fstat(fd).st_ino


@contextlib.contextmanager
def entered(fd: int):
    """Run the body with the calling thread inside the network namespace ``fd``."""
    home = current_netns_fd()
    try:
        setns(fd)
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(home)


def create_netns(name: str | None = None) -> int:
    """Make a new network namespace; return an fd holding it.

    With ``name`` it is also bind-mounted at /run/netns/NAME, as ``ip netns add`` does,
    so ``ip netns exec NAME`` and ``ip -n NAME`` find it.
    """
    path = None
    if name is not None:
        path = os.path.join(NETNS_RUN_DIR, name)
        os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)  # as `ip netns add` does
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, f"network namespace {name!r} already exists", path) from None
    home = current_netns_fd()
    try:
        unshare(CLONE_NEWNET)
        try:
            fd = current_netns_fd()
            if path is not None:
                mount("/proc/thread-self/ns/net", path, None, MS_BIND)
        finally:
            setns(home)
    except BaseException:
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise
    finally:
        os.close(home)
    return fd


def release_netns_name(name: str) -> None:
    """Undo the /run/netns/NAME mount; the namespace dies with its last reference."""
    path = os.path.join(NETNS_RUN_DIR, name)
    with contextlib.suppress(OSError):
        umount(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def sysctl_path(key: str) -> str:
    """/proc/sys path of a sysctl: dotted (``net.ipv4.ip_forward``) or, as sysctl(8)
    accepts for interface names with dots, slashed (``net/ipv4/conf/eth0.100/rp_filter``)."""
    return "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))


def write_sysctl(key: str, value) -> None:
    """Write a sysctl in the calling thread's namespaces (net.* follow the thread)."""
    path = sysctl_path(key)
    with open(path, "w") as handle:
        handle.write(f"{value}\n")


def read_sysctl(key: str) -> str:
    with open(sysctl_path(key)) as handle:
        return handle.read().strip()
