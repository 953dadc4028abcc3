"""XDP on a link without a compiler: a two-instruction program loaded through bpf(2).

Document 000 says of veth "支持 XDP: 可挂载 XDP 程序". The program a check needs is
``r0 = ACTION; exit``: two ``struct bpf_insn`` written here by hand, loaded with
BPF_PROG_LOAD through ctypes, and attached or detached with rtnetlink (IFLA_XDP_FD,
-1 to detach). What the program did is read back from the driver's own counters
(``ethtool -S``: veth counts ``rx_queue_N_xdp_drops``), through the SIOCETHTOOL ioctl.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

from pyroute2 import IPRoute
from pyroute2.ethtool.ioctl import IoctlEthtool

SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "s390x": 351, "ppc64le": 361}  # __NR_bpf
BPF_PROG_LOAD = 5
BPF_PROG_TYPE_XDP = 6
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX = 0, 1, 2, 3  # enum xdp_action
BPF_INSN = struct.Struct("<BBhi")  # struct bpf_insn: code, dst_reg:4 | src_reg:4, off, imm
BPF_MOV64_IMM = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K
BPF_EXIT = 0x95  # BPF_JMP | BPF_EXIT
PROG_LOAD_ATTR = struct.Struct("<IIQQIIQII16s")  # union bpf_attr, BPF_PROG_LOAD, up to prog_name

_libc = ctypes.CDLL(None, use_errno=True)


def program(action: int) -> bytes:
    """``r0 = action; exit``: the whole XDP program, as the kernel reads it."""
    return BPF_INSN.pack(BPF_MOV64_IMM, 0, 0, action) + BPF_INSN.pack(BPF_EXIT, 0, 0, 0)


def load(action: int = XDP_DROP, name: str = "netconform") -> int:
    """Load an XDP program that returns ``action`` for every frame; its file descriptor.

    Raises OSError with the kernel's errno when bpf(2) refuses (EPERM without CAP_BPF in
    the initial user namespace, ENOSYS on a kernel without BPF syscall support).
    """
    return load_instructions(program(action), name)


def load_instructions(code: bytes, name: str = "netconform") -> int:
    """Load ``code`` (struct bpf_insn, packed) as an XDP program; its file descriptor, or
    OSError with the kernel's errno (EACCES: the verifier refused it)."""
    number = SYS_BPF.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, f"no bpf(2) syscall number known for {platform.machine()}")
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = ctypes.create_string_buffer(PROG_LOAD_ATTR.pack(
        BPF_PROG_TYPE_XDP, len(code) // BPF_INSN.size, ctypes.addressof(insns), ctypes.addressof(license_),
        0, 0, 0, 0, 0, name.encode()[:15]))
    fd = _libc.syscall(number, BPF_PROG_LOAD, attr, PROG_LOAD_ATTR.size)
    if fd < 0:
        code_ = ctypes.get_errno()
        raise OSError(code_, f"bpf(2) BPF_PROG_LOAD (XDP): {os.strerror(code_)}")
    return fd


def attach(ipr: IPRoute, index: int, fd: int) -> None:
    """Attach the program ``fd`` to link ``index`` (``ip link set DEV xdp fd FD``)."""
    ipr.link("set", index=index, xdp_fd=fd)


def detach(ipr: IPRoute, index: int) -> None:
    """Take the XDP program off link ``index`` (``ip link set DEV xdp off``)."""
    ipr.link("set", index=index, xdp_fd=-1)


def attached_id(link) -> int | None:
    """The id of the XDP program a link message (RTM_NEWLINK) says is attached, or None."""
    xdp = link.get_attr("IFLA_XDP")
    return xdp.get_attr("IFLA_XDP_PROG_ID") if xdp is not None else None


def xdp_drops(ifname: str) -> int:
    """Frames the driver's XDP program dropped on ``ifname`` (every rx queue's ``*xdp_drops``),
    from the calling thread's namespace (call it inside ``LiveLab.entered``)."""
    ethtool = IoctlEthtool(ifname)
    try:
        return sum(value for key, value in ethtool.get_statistics() if key.endswith("xdp_drops"))
    finally:
        ethtool.close()
