"""Isolation by construction: the machine's own namespaces never change, the suites
pass as root, unprivileged (as a user made for the test) and under pytest-xdist, and a
machine without user namespaces gets one line saying so.

These tests look at the machine from inside the sandbox through the namespace handles
the sandbox kept (``sandbox.machine_namespaces``): reading only.
"""
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from harness.kernel import nsutil
from harness.kernel import sandbox, state

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE_TIMEOUT = 600
TEST_USER = "netconform-test"

machine_root = pytest.mark.skipif(
    os.geteuid() != 0 or sandbox.info() is None or sandbox.info().mode != "root",
    reason="needs real root: only root can look into the machine's namespaces (and only root could change them)")

# The machine's network namespace, read over netlink (harness.kernel.state: lo, the local table,
# learned neighbours and FDB entries are the kernel's and move with traffic, so they are not read),
# its firewall rulesets, and what only the machine's mount namespace shows (run as commands there).
NETNS_SECTIONS = (*state.NETLINK_SECTIONS, "iptables", "ip6tables", "nft")
OUTSIDE = {
    "proxy-neighbours": ["ip", "neigh", "show", "proxy"],
    "net-sysctls": ["sysctl", "-a", "--pattern", r"^net\."],
    "run-netns": ["ls", "-la", "/run/netns"],
    "mounts": ["cat", "/proc/self/mountinfo"],
}
# Counters and timestamps move with the machine's own traffic; they are not state we could change.
VOLATILE = [
    (re.compile(r"^net\.netfilter\.nf_conntrack_count = .*$", re.M), ""),
    (re.compile(r"^net\.ipv4\.tcp_fastopen_key = .*$", re.M), ""),
]


def outside(argv, uid=None, gid=None, cwd=None, **kwargs):
    return subprocess.run(argv, preexec_fn=sandbox.outside_preexec(uid, gid, cwd), capture_output=True, text=True,
                          **kwargs)


def snapshot() -> dict:
    """The machine as {section: entries}: its network namespace, then what only its mount namespace shows."""
    seen = state.snapshot(sandbox.machine_namespaces()[0], NETNS_SECTIONS)
    for name, argv in OUTSIDE.items():
        done = outside(argv, timeout=60)
        text = done.stdout + (f"\n[exit {done.returncode}] {done.stderr.strip()}" if done.returncode else "")
        for pattern, replacement in VOLATILE:
            text = pattern.sub(replacement, text)
        seen[name] = [line for line in text.splitlines() if line.strip()]
    return seen


def differences(before, after) -> str:
    return "\n".join(state.differences({"machine": before}, {"machine": after}, ("snapshot before", "snapshot after")))


# The document suites, and the CNI suites against one implementation that touches the
# host the most (a bridge, iptables NAT and port mappings): the whole CNI matrix would
# add minutes and nothing the machine could notice.
CNI_PROFILE = os.path.join(PROJECT, "harness", "cni", "profiles", "bridge-portmap.conflist")


def pytest_argv(*extra):
    return [sys.executable, "-m", "pytest", "suites/", "-q", "-p", "no:cacheprovider", "--cni-conf", CNI_PROFILE,
            *extra]


@machine_root
@pytest.mark.timeout(1800)
def test_machine_namespaces_are_byte_identical_after_passing_failing_and_parallel_runs(tmp_path):
    before = snapshot()
    assert snapshot() == before, "the snapshot itself is not stable; fix VOLATILE before trusting this test"
    env = dict(os.environ, PYTHONPATH=os.path.join(PROJECT, "tests", "plugins"))
    env.pop(sandbox.OUTER_ENV, None)

    passing = outside(pytest_argv(f"--basetemp={tmp_path / 'a'}"), cwd=PROJECT, env=env, timeout=SUITE_TIMEOUT)
    assert passing.returncode == 0, passing.stdout[-3000:] + passing.stderr[-2000:]
    failing = outside(pytest_argv("-p", "netconform_fault_demo", f"--basetemp={tmp_path / 'b'}"),
                      cwd=PROJECT, env=env, timeout=SUITE_TIMEOUT)
    assert failing.returncode == 1 and " failed" in failing.stdout, failing.stdout[-3000:]
    parallel = outside(pytest_argv("-n", "2", f"--basetemp={tmp_path / 'c'}"), cwd=PROJECT, env=env,
                       timeout=SUITE_TIMEOUT)
    assert parallel.returncode == 0, parallel.stdout[-3000:]

    after = snapshot()
    assert after == before, differences(before, after)


@machine_root
def test_the_snapshot_sees_a_change_in_the_machine():
    # The negative twin: were a run to change the machine, the comparison would say so.
    # It changes nothing itself: it compares against a doctored copy.
    before = snapshot()
    doctored = dict(before, links={**before["links"], "dev-leftover": {"kind": "dummy", "up": False}})
    assert "machine links dev-leftover: only in the snapshot after" in differences(before, doctored)


@pytest.fixture
def test_user():
    """A system user made for the test, removed afterwards."""
    created = False
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
                       check=True, capture_output=True, preexec_fn=sandbox.outside_preexec())
        created = True
    try:
        yield pwd.getpwnam(TEST_USER)
    finally:
        if created:
            subprocess.run(["userdel", TEST_USER], capture_output=True, preexec_fn=sandbox.outside_preexec())


@machine_root
@pytest.mark.timeout(900)
def test_suites_pass_unprivileged_with_two_workers(test_user):
    # pytest's own tmp_path sits under a 0700 directory of root's: use one the user owns.
    home = tempfile.mkdtemp(prefix="netconform-unprivileged-")
    os.chown(home, test_user.pw_uid, test_user.pw_gid)
    env = {"PATH": os.environ["PATH"], "HOME": home, "LANG": "C.UTF-8"}
    try:
        done = outside(pytest_argv("-n", "2", "-v", f"--basetemp={home}/run"), uid=test_user.pw_uid,
                       gid=test_user.pw_gid, cwd=PROJECT, env=env, timeout=SUITE_TIMEOUT)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "sandbox (userns)" in done.stdout, done.stdout[:2000]  # the header of a verbose run


def run_nonroot_without_user_namespaces(argv, home, timeout):
    """Run ``argv`` as uid 1000 inside a user namespace that may create no more of them.

    The child makes the user namespace; we (real root outside it) write its uid and gid
    maps, which a process cannot do for itself beyond its own uid; then the child, as
    root of that namespace, sets user.max_user_namespaces=0 there and drops to uid 1000.
    """
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    output = os.path.join(home, "output")
    pid = os.fork()
    if pid == 0:  # the child: syscalls and exec only
        try:
            os.close(ready_r)
            os.close(go_w)
            nsutil.unshare(nsutil.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(go_r, 1)
            with open("/proc/sys/user/max_user_namespaces", "w") as handle:
                handle.write("0")
            os.setgroups([])
            os.setresgid(1000, 1000, 1000)
            os.setresuid(1000, 1000, 1000)
            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(PROJECT)
            os.execve(argv[0], argv, {"PATH": os.environ["PATH"], "HOME": home, "LANG": "C.UTF-8"})
        finally:
            os._exit(127)
    os.close(ready_w)
    os.close(go_r)
    try:
        assert os.read(ready_r, 1) == b"1", "the child could not make a user namespace"
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{pid}/{name}", "w") as handle:
                handle.write("0 0 2000\n")
    finally:
        os.write(go_w, b"1")
        os.close(go_w)
        os.close(ready_r)
    _, status = os.waitpid(pid, 0)
    with open(output) as handle:
        return os.waitstatus_to_exitcode(status), handle.read()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to write another process's uid map")
def test_a_machine_without_user_namespaces_gets_one_line():
    home = tempfile.mkdtemp(prefix="netconform-nouserns-")
    os.chmod(home, 0o777)
    try:
        code, text = run_nonroot_without_user_namespaces(pytest_argv(f"--basetemp={home}/run"), home, 120)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    lines = [line for line in text.splitlines() if "netconform" in line]
    assert code == 4, text
    assert len(lines) == 1 and "user namespaces are not allowed here" in lines[0], text
    assert "Traceback" not in text


def test_no_sandbox_says_loudly_what_it_will_touch(tmp_path):
    # Collection only: nothing is built, so nothing is touched; the warning comes first.
    done = subprocess.run(pytest_argv("--no-sandbox", "--collect-only", f"--basetemp={tmp_path}"), cwd=PROJECT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "--no-sandbox" in done.stderr and "/run/netns" in done.stderr and "throw away" in done.stderr
    sandboxed = subprocess.run(pytest_argv("--collect-only", f"--basetemp={tmp_path}"), cwd=PROJECT,
                               capture_output=True, text=True, timeout=120)
    assert "throw away" not in sandboxed.stderr
