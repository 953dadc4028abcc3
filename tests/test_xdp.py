"""harness.kernel.xdp: the two-instruction XDP program, as bytes and as the kernel takes it."""
import errno
import os

import pytest

from harness.kernel import capabilities, xdp


def test_the_program_is_mov_r0_action_then_exit():
    # Pinned by hand from linux/bpf_common.h: BPF_ALU64|BPF_MOV|BPF_K = 0xb7 with imm, then BPF_JMP|BPF_EXIT.
    assert xdp.program(xdp.XDP_DROP) == bytes.fromhex("b700000001000000" "9500000000000000")
    assert xdp.program(xdp.XDP_PASS)[4:8] == (2).to_bytes(4, "little")


def test_the_kernel_loads_it_and_a_wrong_program_is_one_errno():
    if capabilities.missing("xdp"):
        pytest.skip(capabilities.missing("xdp"))
    fd = xdp.load(xdp.XDP_PASS)
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:bpf-prog"
    finally:
        os.close(fd)
    # The twin: the same call with the first instruction left out (exit with r0 never set) is
    # refused by the verifier, and the error names the call and the errno.
    with pytest.raises(OSError) as refused:
        xdp.load_instructions(xdp.program(xdp.XDP_PASS)[xdp.BPF_INSN.size:])
    assert refused.value.errno == errno.EACCES and "BPF_PROG_LOAD" in str(refused.value), refused.value
