"""Never damage the machine, never leak: interrupted runs, killed workers, long cycles.

The machine's namespaces are compared byte for byte (tests/test_isolation.py's
snapshot) around a run interrupted with SIGINT and a run whose xdist worker is killed
with SIGKILL in the middle of a lab; 100 build/teardown cycles of every lab leave the
sandbox's names, links, descriptors and memory where they started.
"""
import os
import resource
import select
import signal
import subprocess

import time

import pytest
from test_isolation import PROJECT, differences, machine_root, pytest_argv, snapshot

from harness.kernel import sandbox
from harness.lab.build import build
from harness.lab.file import bundled_labs, load_lab
from harness.kernel.netops import ipr_in

CYCLES = 100
PROGRESS_DEADLINE = 120.0


def start_outside(argv, tmp_path):
    env = dict(os.environ)
    env.pop(sandbox.OUTER_ENV, None)
    outside = sandbox.outside_preexec(cwd=PROJECT)

    def preexec():
        # Started from a background job, this process ignores SIGINT, and the run would inherit
        # that and never hear the ^C this file sends it: give it the default back.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        outside()
    return subprocess.Popen(argv + [f"--basetemp={tmp_path / 'run'}"], cwd=PROJECT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=preexec)


def wait_for_output(process, needle: str, deadline: float) -> str:
    """Read the run's output until ``needle`` shows (a test has run, so labs are being built)."""
    seen = ""
    end = time.monotonic() + deadline
    while needle not in seen:
        left = end - time.monotonic()
        assert left > 0, f"no {needle!r} in the run's output within {deadline:g} s: {seen[-500:]}"
        ready, _, _ = select.select([process.stdout], [], [], left)
        if ready:
            chunk = os.read(process.stdout.fileno(), 65536).decode(errors="replace")
            assert chunk or process.poll() is None, f"the run ended early: {seen[-1000:]}"
            seen += chunk
    return seen


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(p) for p in handle.read().split()]


@machine_root
@pytest.mark.timeout(600)
def test_a_run_interrupted_with_sigint_leaves_the_machine_untouched(tmp_path):
    before = snapshot()
    run = start_outside(pytest_argv("-vv"), tmp_path)
    try:
        wait_for_output(run, " PASSED", PROGRESS_DEADLINE)
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 2, f"pytest did not stop as interrupted (exit {run.returncode}): {output[-1500:]}"
    after = snapshot()
    assert after == before, differences(before, after)


@machine_root
@pytest.mark.timeout(900)
def test_a_run_whose_worker_is_killed_mid_lab_leaves_the_machine_untouched(tmp_path):
    before = snapshot()
    run = start_outside(pytest_argv("-n", "2", "-vv"), tmp_path)
    try:
        wait_for_output(run, " PASSED", PROGRESS_DEADLINE)
        workers = children(run.pid)
        assert workers, "no xdist workers to kill"
        os.kill(workers[0], signal.SIGKILL)  # wherever it is: in a build, a probe, a teardown
        output, _ = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert "crashed" in output or "replacing" in output or "Killed" in output or run.returncode != 0, output[-1500:]
    after = snapshot()
    assert after == before, differences(before, after)


def _sandbox_state():
    fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        ipr = ipr_in(fd)
        links = sorted(msg.get_attr("IFLA_IFNAME") for msg in ipr.get_links())
        ipr.close()
    finally:
        os.close(fd)
    return {"run/netns": sorted(os.listdir("/run/netns")), "links": links, "fds": len(os.listdir("/proc/self/fd"))}


def _rss_kib() -> int:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))


@pytest.mark.timeout(900)
def test_100_build_teardown_cycles_of_every_lab_leak_nothing():
    labs = []
    for name in bundled_labs():
        lab = load_lab(name)
        try:
            build(lab).teardown()  # warm-up: caches, lazily imported modules
        except Exception as exc:  # noqa: BLE001 - a lab this kernel cannot build is not part of it
            if "kernel" in str(exc) or "lacks" in str(exc):
                continue
            raise
        labs.append(lab)
    start_state, start_rss = _sandbox_state(), _rss_kib()
    for _ in range(CYCLES):
        for lab in labs:
            build(lab).teardown()
    end_state, end_rss = _sandbox_state(), _rss_kib()
    assert end_state == start_state
    # Flat memory: what 100 cycles of every lab may add to this process is noise, not growth.
    assert end_rss - start_rss < 20 * 1024, f"RSS grew {start_rss} -> {end_rss} KiB over {CYCLES} cycles"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0


def test_the_leak_check_sees_a_leak():
    # Its negative twin: a lab left standing is seen (names and descriptors).
    before = _sandbox_state()
    live = build(load_lab("001-vbridge"))
    try:
        assert _sandbox_state() != before
    finally:
        live.teardown()
    assert _sandbox_state() == before



